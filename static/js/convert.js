// The new-conversion page with JavaScript: drop or pick several files; each gets its own job
// (created by ccweb) and is uploaded straight to that job's upload URL with its own progress
// bar and a cancel button, then followed until its converted files can be downloaded from
// its row. The output picker and the options follow the files chosen.
// Without JavaScript the form posts to ccweb and the next page holds a plain upload form.
(function () {
  "use strict";
  var form = document.getElementById("convert-form");
  if (!form || !window.FormData || !window.fetch || !window.XMLHttpRequest) return;

  var catalogue = JSON.parse(document.getElementById("catalogue").textContent);
  var dropZone = document.getElementById("drop-zone");
  var fileInput = document.getElementById("id_files");
  var list = document.getElementById("file-list");
  var output = form.elements.output_format;
  var applyAll = document.getElementById("id_apply_all");
  var errorBox = document.getElementById("convert-error");
  var submit = form.querySelector("button[type=submit]");
  var maxSize = parseInt(form.dataset.maxSize, 10);
  var csrf = form.elements.csrfmiddlewaretoken.value;
  var allOutputs = Array.prototype.map.call(output.options, function (o) { return o.value; });
  // A format chosen by the server (a preset, a form sent back with errors) stands without files.
  var chosenByServer = output.querySelector("option[selected]") !== null;
  var placeholder = document.createElement("option");
  placeholder.value = "";
  placeholder.textContent = "Choose a file first";
  output.insertBefore(placeholder, output.firstChild);
  var entries = []; // {file, row, select, xhr, job, state}
  var FOLLOW_MS = 1500;
  var RETRY_MS = 6000;
  var CANCELLABLE = ["ready", "creating", "uploading"];

  dropZone.hidden = false;
  document.querySelectorAll(".js-hide").forEach(function (el) { el.hidden = true; });

  function inputFormat(name) {
    var ext = (name.split(".").pop() || "").toLowerCase();
    return { jpeg: "jpg", tif: "tiff", htm: "html" }[ext] || ext;
  }

  function outputsFor(name) {
    return Object.keys(catalogue.pairs[inputFormat(name)] || {});
  }

  function humanSize(bytes) {
    var units = ["bytes", "KB", "MB", "GB"], i = 0;
    while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i++; }
    return (i ? bytes.toFixed(1) : bytes) + " " + units[i];
  }

  // The main picker offers what every chosen file can become (nothing before a file or a URL is
  // given: it says so); options follow the pairs in use.
  function refresh() {
    var pending = entries.filter(function (e) { return e.state === "ready"; });
    var waiting = !pending.length && !chosenByServer && !form.elements.source_url.value.trim();
    var allowed = waiting ? [] : allOutputs.filter(function (fmt) {
      return pending.every(function (e) { return outputsFor(e.file.name).indexOf(fmt) !== -1; });
    });
    Array.prototype.forEach.call(output.options, function (o) {
      o.hidden = o.disabled = o === placeholder ? !waiting : allowed.indexOf(o.value) === -1;
    });
    // One picker for several files: it may set them all, or each keeps its own.
    document.getElementById("apply-all").hidden = pending.length < 2;
    if (waiting) output.value = "";
    else if ((!output.value || output.selectedOptions[0].disabled) && allowed.length) output.value = allowed[0];
    pending.forEach(function (e) {
      if (applyAll.checked && outputsFor(e.file.name).indexOf(output.value) !== -1) e.select.value = output.value;
      e.select.disabled = applyAll.checked;
    });
    var used = {};
    (pending.length ? pending : [null]).forEach(function (e) {
      var target = e ? e.select.value : output.value;
      Object.keys(catalogue.pairs).forEach(function (inp) {
        if (e && inp !== inputFormat(e.file.name)) return;
        (catalogue.pairs[inp][target] || []).forEach(function (name) { used[name] = true; });
      });
    });
    var shown = 0;
    document.querySelectorAll("[data-option-field]").forEach(function (field) {
      field.hidden = !used[field.dataset.optionField];
      if (!field.hidden) shown++;
    });
    var none = document.getElementById("no-options");
    if (none) {
      none.hidden = shown > 0;
      none.textContent = waiting ? "The options appear once you choose a file." : "This conversion has no options.";
    }
  }

  function addFiles(files) {
    errorBox.hidden = true;
    Array.prototype.forEach.call(files, function (file) {
      var row = document.createElement("li");
      row.className = "file";
      row.innerHTML =
        '<span class="name"></span> <span class="muted size"></span> ' +
        '<label class="inline-label">to <select class="file-output"></select></label> ' +
        '<progress max="100" value="0"></progress> <span class="state" role="status">Ready</span> ' +
        '<span class="results"></span> <button type="button" class="link remove">Remove</button>';
      row.querySelector(".name").textContent = file.name;
      row.querySelector(".name").title = file.name;
      row.querySelector("progress").setAttribute("aria-label", "Progress of " + file.name);
      row.querySelector(".size").textContent = humanSize(file.size);
      var select = row.querySelector("select");
      var choices = outputsFor(file.name);
      choices.forEach(function (fmt) {
        var option = document.createElement("option");
        option.value = fmt;
        option.textContent = fmt.toUpperCase();
        select.appendChild(option);
      });
      var entry = { file: file, row: row, select: select, state: "ready" };
      select.setAttribute("aria-label", "Convert " + file.name + " to");
      select.addEventListener("change", refresh);
      row.querySelector(".remove").setAttribute("aria-label", "Remove " + file.name);
      row.querySelector(".remove").addEventListener("click", function () { cancel(entry); });
      if (!choices.length) {
        setState(entry, "failed", "This kind of file cannot be converted here.");
      } else if (file.size > maxSize) {
        setState(entry, "failed", "Too large: files may be up to " + humanSize(maxSize) + ".");
      }
      list.appendChild(row);
      entries.push(entry);
    });
    refresh();
  }

  function setState(entry, state, text) {
    entry.state = state;
    entry.row.dataset.state = state;
    entry.row.querySelector(".state").textContent = text;
    var button = entry.row.querySelector(".remove");
    button.textContent = state === "ready" ? "Remove" : "Cancel";
    button.setAttribute("aria-label", button.textContent + " " + entry.file.name);
    // Once its upload has ended a file can no longer be taken back here.
    button.hidden = CANCELLABLE.indexOf(state) === -1;
  }

  function cancel(entry) {
    if (entry.state === "ready") {
      entry.row.remove();
      entries.splice(entries.indexOf(entry), 1);
      return refresh();
    }
    if (entry.xhr) entry.xhr.abort();
    setState(entry, "cancelled", "Cancelled");
    if (entry.job) {
      fetch(entry.job.job_url + "cancel/", {
        method: "POST", credentials: "same-origin",
        headers: { "X-CSRFToken": csrf, Accept: "application/json" },
      });
    }
    settle();
  }

  function settle() {
    var busy = entries.some(function (e) { return e.state === "creating" || e.state === "uploading"; });
    if (busy) return;
    submit.disabled = false;
    if (entries.some(function (e) { return e.state === "converting" || e.state === "finished"; })) {
      document.getElementById("convert-done").hidden = false;
    }
  }

  // The job after its upload: percent while it converts, then its files' download links on the
  // row (or what went wrong), as the dashboard would show them.
  function follow(entry) {
    fetch(entry.job.job_url + "status/", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (job) {
        if (job.status === "finished") {
          entry.row.querySelector("progress").value = 100;
          setState(entry, "finished", "Finished");
          var results = entry.row.querySelector(".results");
          job.files.forEach(function (f) {
            var link = document.createElement("a");
            link.className = "download";
            link.href = f.url;
            link.title = f.filename;
            link.setAttribute("download", "");
            link.textContent = f.filename;
            results.appendChild(link);
          });
        } else if (job.status === "error") {
          setState(entry, "failed", job.error);
        } else {
          if (job.status === "processing") {
            entry.row.querySelector("progress").value = job.percent;
            entry.row.querySelector(".state").textContent = "Converting " + job.percent + "%";
          }
          window.setTimeout(function () { follow(entry); }, FOLLOW_MS);
        }
      })
      .catch(function () {
        window.setTimeout(function () { follow(entry); }, RETRY_MS);
      });
  }

  // A refused upload leaves its job waiting for a file that will not come: ccweb ends it (after
  // asking the API) and it does not count against the day's conversions.
  function reportRefusal(entry, xhr) {
    var code = xhr.status === 413 ? "FILE_TOO_LARGE" : "UPLOAD_REFUSED";
    try {
      code = JSON.parse(xhr.responseText).code || code;
    } catch (error) { /* not the engine: CloudConvert's storage answers XML */ }
    fetch(entry.job.job_url + "?upload_error=" + encodeURIComponent(code), { credentials: "same-origin" });
  }

  function showOptionErrors(errors) {
    Object.keys(errors).forEach(function (key) {
      var field = document.querySelector('[data-option-field="' + key.replace(/^option_/, "") + '"]');
      if (!field || key.indexOf("option_") !== 0) return;
      var box = field.querySelector("[data-js-error]");
      if (!box) {
        box = document.createElement("p");
        box.className = "error";
        box.setAttribute("data-js-error", "");
        field.appendChild(box);
      }
      box.textContent = errors[key][0].message;
      field.querySelector("input, select").setAttribute("aria-invalid", "true");
    });
  }

  function clearOptionErrors() {
    document.querySelectorAll("[data-js-error]").forEach(function (box) { box.remove(); });
    document.querySelectorAll("[data-option-field] [aria-invalid]").forEach(function (input) {
      input.removeAttribute("aria-invalid");
    });
  }

  function upload(entry) {
    var target = entry.job.upload;
    var body = new FormData();
    Object.keys(target.parameters).forEach(function (name) { body.append(name, target.parameters[name]); });
    body.append("file", entry.file, entry.file.name); // the upload form wants the file last
    var xhr = (entry.xhr = new XMLHttpRequest());
    xhr.open("POST", target.url);
    xhr.upload.addEventListener("progress", function (event) {
      if (!event.lengthComputable) return;
      var percent = Math.round((event.loaded / event.total) * 100);
      entry.row.querySelector("progress").value = percent;
      entry.row.querySelector(".state").textContent = "Uploading " + percent + "%";
    });
    xhr.addEventListener("load", function () {
      if (entry.state === "cancelled") return;
      if (xhr.status >= 200 && xhr.status < 300) {
        entry.row.querySelector("progress").value = 0;
        setState(entry, "converting", "Uploaded, converting");
        var link = document.createElement("a");
        link.href = entry.job.job_url;
        link.textContent = "Open";
        link.setAttribute("aria-label", "Open the conversion of " + entry.file.name);
        entry.row.appendChild(link);
        window.setTimeout(function () { follow(entry); }, FOLLOW_MS);
      } else {
        reportRefusal(entry, xhr);
        if (xhr.status === 413) {
          setState(entry, "failed", "Too large for the conversion service. Choose a smaller file.");
        } else {
          setState(entry, "failed", "The upload was refused (HTTP " + xhr.status + "). Please try again.");
        }
      }
      settle();
    });
    xhr.addEventListener("error", function () {
      setState(entry, "failed", "The upload did not reach the conversion service. Check your connection and try again.");
      settle();
    });
    setState(entry, "uploading", "Uploading 0%");
    xhr.send(body);
  }

  function start(entry) {
    var data = new FormData(form);
    data.set("output_format", entry.select.value);
    data.set("filename", entry.file.name);
    setState(entry, "creating", "Starting");
    fetch(form.action || window.location.href, {
      method: "POST", body: data, credentials: "same-origin", headers: { Accept: "application/json" },
    })
      .then(function (response) {
        return response.json().then(function (json) { return { ok: response.ok, json: json }; });
      })
      .then(function (result) {
        if (entry.state === "cancelled") return;
        if (!result.ok) {
          var errors = result.json.errors || {};
          showOptionErrors(errors);
          var first = Object.keys(errors).map(function (k) { return errors[k][0].message; })[0];
          setState(entry, "failed", result.json.error || first || "The conversion could not be started.");
          return settle();
        }
        entry.job = result.json;
        upload(entry);
      })
      .catch(function () {
        setState(entry, "failed", "ccweb could not be reached. Check your connection and try again.");
        settle();
      });
  }

  fileInput.addEventListener("change", function () {
    addFiles(fileInput.files);
    fileInput.value = "";
  });
  ["dragenter", "dragover"].forEach(function (type) {
    dropZone.addEventListener(type, function (event) { event.preventDefault(); dropZone.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (type) {
    dropZone.addEventListener(type, function () { dropZone.classList.remove("over"); });
  });
  dropZone.addEventListener("drop", function (event) {
    event.preventDefault();
    if (event.dataTransfer && event.dataTransfer.files.length) addFiles(event.dataTransfer.files);
  });
  output.addEventListener("change", refresh);
  applyAll.addEventListener("change", refresh);
  form.elements.source_url.addEventListener("input", refresh);

  form.addEventListener("submit", function (event) {
    var ready = entries.filter(function (e) { return e.state === "ready"; });
    // No file but a URL: the plain form post imports it and opens the job page.
    if (!ready.length && form.elements.source_url.value) return;
    event.preventDefault();
    errorBox.hidden = true;
    clearOptionErrors();
    if (!ready.length) {
      errorBox.textContent = "Choose or drop at least one file, or give a URL to import.";
      errorBox.hidden = false;
      return;
    }
    submit.disabled = true;
    ready.forEach(start); // in parallel: each file has its own job and upload
  });

  // Files chosen before this script ran (a quick user, or a browser restoring the form) count too.
  if (fileInput.files.length) addFiles(fileInput.files);
  refresh();
})();
