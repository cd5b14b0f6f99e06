// The console's changes and uploads: each step asks the console to prepare and sign an S3
// request in the visitor's name, then sends that request to the gateway's S3 API and shows its
// answer. What the API refuses (Object Lock, a policy) is shown with its S3 error code; text
// only. A file larger than one part goes up as a multipart upload, a part at a time.
"use strict";
(function () {
  const status = document.getElementById("action-status");

  function show(text) {
    status.textContent = text;
  }

  async function change(form) {
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
    show("working");
    // Not `form.action`: the form has a field named "action", which that property would name.
    const prepared = await fetch(form.getAttribute("action"), { method: "POST", body: new URLSearchParams(new FormData(form)) });
    if (!prepared.ok) {
      show("The console refused the change (" + prepared.status + ").");
      return;
    }
    const request = await prepared.json();
    const answer = await fetch(request.url, {
      method: request.method,
      headers: request.headers,
      body: request.body === "" ? undefined : request.body,
      credentials: "omit",
    });
    if (answer.ok) {
      window.location.assign(form.dataset.then || window.location.href);
      return;
    }
    const error = new DOMParser().parseFromString(await answer.text(), "application/xml");
    const field = (name) => error.getElementsByTagName(name)[0]?.textContent ?? "";
    show("Refused: " + (field("Code") || answer.status) + ": " + field("Message"));
  }

  /** Asks the console to prepare one step of `form`'s work: `fields` beside its token and bucket. */
  async function prepare(form, fields) {
    const body = new URLSearchParams({ csrf: form.elements.csrf.value, bucket: form.elements.bucket.value, ...fields });
    const prepared = await fetch(form.getAttribute("action"), { method: "POST", body });
    if (!prepared.ok) throw new Error("the console refused the step (" + prepared.status + ")");
    return prepared.json();
  }

  /** Sends a prepared request with `body` (or its own), reporting bytes sent to `progress`. */
  function send(request, body, progress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(request.method, request.url);
      for (const [name, value] of Object.entries(request.headers)) xhr.setRequestHeader(name, value);
      if (progress) xhr.upload.onprogress = (event) => progress(event.loaded);
      xhr.onload = () => resolve({ status: xhr.status, etag: xhr.getResponseHeader("ETag"), text: xhr.responseText });
      xhr.onerror = () => reject(new Error("the request did not complete"));
      xhr.send(body ?? (request.body === "" ? null : request.body));
    });
  }

  /** The S3 error of a refused answer, as "Code: message". */
  function refusal(answer) {
    const error = new DOMParser().parseFromString(answer.text, "application/xml");
    const field = (name) => error.getElementsByTagName(name)[0]?.textContent ?? "";
    return (field("Code") || answer.status) + ": " + field("Message");
  }

  async function upload(form) {
    const file = form.elements.file.files[0];
    const key = form.elements.key.value || form.dataset.prefix + file.name;
    const type = file.type || "application/octet-stream";
    const partSize = Number(form.dataset.partSize);
    const bar = document.getElementById("upload-progress");
    const shown = (sent) => { bar.value = file.size ? (100 * sent) / file.size : 100; };
    bar.hidden = false;
    const ok = (answer) => answer.status === 200 && !answer.text.includes("<Error>");
    if (file.size <= partSize) {
      const answer = await send(await prepare(form, { action: "upload", key, type }), file, shown);
      if (!ok(answer)) return show("Refused: " + refusal(answer));
    } else {
      const created = await send(await prepare(form, { action: "upload-create", key, type }));
      if (!ok(created)) return show("Refused: " + refusal(created));
      const id = new DOMParser().parseFromString(created.text, "application/xml").getElementsByTagName("UploadId")[0].textContent;
      const parts = [];
      for (let start = 0, number = 1; start < file.size; start += partSize, number++) {
        const step = await prepare(form, { action: "upload-part", key, part: String(number), upload: id });
        const answer = await send(step, file.slice(start, start + partSize), (sent) => shown(start + sent));
        if (answer.status !== 200) {
          await send(await prepare(form, { action: "upload-abort", key, upload: id }));
          return show("Refused: " + refusal(answer));
        }
        parts.push(number + " " + answer.etag);
      }
      const done = await send(await prepare(form, { action: "upload-complete", key, upload: id, parts: parts.join("\n") }));
      if (!ok(done)) return show("Refused: " + refusal(done));
    }
    const bucket = form.elements.bucket.value;
    window.location.assign("/_console/objects/" + encodeURIComponent(bucket) + "/" + key.split("/").map(encodeURIComponent).join("/"));
  }

  const uploadForm = document.querySelector("form[data-upload]");
  if (uploadForm) {
    uploadForm.addEventListener("submit", (event) => {
      event.preventDefault();
      upload(uploadForm).catch((err) => show("The upload failed: " + err.message));
    });
  }

  for (const form of document.querySelectorAll("form[data-change]")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      change(form).catch((err) => show("The change failed: " + err.message));
    });
  }
})();
