// With JavaScript the new-conversion form takes the file too: it asks ccweb to create the job,
// then uploads the file straight to the job's upload URL with a progress bar.
// Without JavaScript the form posts to ccweb and the next page holds a plain upload form.
(function () {
  "use strict";
  var form = document.getElementById("convert-form");
  if (!form || !window.FormData || !window.fetch) return;

  var picker = document.getElementById("file-picker");
  var fileInput = document.getElementById("id_file");
  var progress = document.getElementById("upload-progress");
  var errorBox = document.getElementById("convert-error");
  picker.hidden = false;
  document.querySelectorAll(".js-hide").forEach(function (el) { el.hidden = true; });

  function fail(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
    form.querySelector("button[type=submit]").disabled = false;
  }

  function upload(target, file) {
    var body = new FormData();
    Object.keys(target.parameters).forEach(function (name) { body.append(name, target.parameters[name]); });
    body.append("file", file, file.name); // the upload form wants the file last
    var xhr = new XMLHttpRequest();
    xhr.open("POST", target.url);
    xhr.upload.addEventListener("progress", function (event) {
      if (!event.lengthComputable) return;
      var percent = Math.round((event.loaded / event.total) * 100);
      progress.querySelector("progress").value = percent;
      progress.querySelector("span").textContent = "Uploading " + percent + "%";
    });
    xhr.addEventListener("load", function () {
      if (xhr.status >= 200 && xhr.status < 300) {
        window.location.assign(form.dataset.dashboardUrl);
      } else if (xhr.status === 413) {
        fail("The file is too large for the conversion service. Choose a smaller file.");
      } else {
        fail("The upload was refused (HTTP " + xhr.status + "). Please try again.");
      }
    });
    xhr.addEventListener("error", function () {
      fail("The upload did not reach the conversion service. Check your connection and try again.");
    });
    progress.hidden = false;
    xhr.send(body);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    errorBox.hidden = true;
    var file = fileInput.files[0];
    if (!file) return fail("Choose a file to convert.");
    form.elements.filename.value = file.name;
    form.querySelector("button[type=submit]").disabled = true;
    fetch(form.action || window.location.href, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (response) {
        return response.json().then(function (data) { return { ok: response.ok, data: data }; });
      })
      .then(function (result) {
        if (!result.ok) {
          var errors = result.data.errors || {};
          var first = Object.keys(errors).map(function (k) { return errors[k][0].message; })[0];
          return fail(result.data.error || first || "The conversion could not be started.");
        }
        upload(result.data.upload, file);
      })
      .catch(function () { fail("ccweb could not be reached. Check your connection and try again."); });
  });
})();
