// Keeps page parts current: every element with data-live-url is refreshed from that URL
// (server-rendered HTML) often while it holds something [data-running], and, when it is marked
// data-live-idle, now and then while nothing runs (a job started in another tab appears).
// Polling pauses while the tab is hidden. The part is only replaced when it changed, and the
// control that had the focus keeps it (keyboard users are not thrown back to the top).
(function () {
  "use strict";
  var INTERVAL_MS = 1500;
  var IDLE_INTERVAL_MS = 5000;
  var RETRY_MS = 6000;
  var FOCUSABLE = "a[href], button, input, select, textarea, [tabindex]";

  function running(el) {
    return el.querySelector("[data-running]") !== null;
  }

  // What identifies a control across two renderings of the same part.
  function focusKey(node) {
    if (node.id) return "#" + node.id;
    var action = node.form ? node.form.getAttribute("action") : "";
    return [node.tagName, node.getAttribute("href") || "", action || "", node.textContent.trim()].join("|");
  }

  function swap(el, html) {
    var active = document.activeElement;
    var key = active && active !== el && el.contains(active) ? focusKey(active) : null;
    el.innerHTML = html;
    if (key) {
      var same = Array.prototype.filter.call(el.querySelectorAll(FOCUSABLE), function (node) {
        return focusKey(node) === key;
      })[0];
      if (same) same.focus();
    }
    // A heading outside the part follows it (the file name is known once the file arrived).
    var heading = el.dataset.liveHeading && document.getElementById(el.dataset.liveHeading);
    var source = el.querySelector("[data-heading]");
    if (heading && source && heading.textContent !== source.dataset.heading) {
      heading.textContent = source.dataset.heading;
      document.title = source.dataset.heading + " · ccweb";
    }
  }

  function watch(el) {
    var idle = el.hasAttribute("data-live-idle");
    var timer = null;
    var busy = false;
    var last = null;

    function later(ms) {
      window.clearTimeout(timer);
      timer = window.setTimeout(refresh, ms);
    }

    function next() {
      timer = null;
      if (running(el)) later(INTERVAL_MS);
      else if (idle) later(IDLE_INTERVAL_MS);
    }

    function refresh() {
      timer = null;
      if (busy || document.hidden) return; // a visible tab starts again
      busy = true;
      fetch(el.dataset.liveUrl, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.text();
        })
        .then(function (html) {
          busy = false;
          if (html !== last) {
            last = html;
            swap(el, html);
          }
          next();
        })
        .catch(function () {
          // A network hiccup: keep the last view and try again a little later.
          busy = false;
          later(RETRY_MS);
        });
    }

    document.addEventListener("visibilitychange", function () {
      if (!document.hidden && timer === null && !busy && (idle || running(el))) refresh();
    });
    next();
  }

  document.querySelectorAll("[data-live-url]").forEach(watch);
})();
