// Keeps a page part current while a conversion runs: every element with data-live-url is
// refreshed from that URL (server-rendered HTML) as long as it holds something [data-running].
(function () {
  "use strict";
  var INTERVAL_MS = 1500;

  function running(el) {
    return el.querySelector("[data-running]") !== null;
  }

  function watch(el) {
    if (!running(el)) return;
    window.setTimeout(function refresh() {
      fetch(el.dataset.liveUrl, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.text();
        })
        .then(function (html) {
          el.innerHTML = html;
          if (running(el)) window.setTimeout(refresh, INTERVAL_MS);
        })
        .catch(function () {
          // A network hiccup: keep the last view and try again a little later.
          window.setTimeout(refresh, INTERVAL_MS * 4);
        });
    }, INTERVAL_MS);
  }

  document.querySelectorAll("[data-live-url]").forEach(watch);
})();
