// The console's changes: each form asks the console to prepare and sign an S3 request in the
// visitor's name, then sends that request to the gateway's S3 API and shows its answer. What
// the API refuses (Object Lock, a policy) is shown with its S3 error code; text only.
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

  for (const form of document.querySelectorAll("form[data-change]")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      change(form).catch((err) => show("The change failed: " + err.message));
    });
  }
})();
