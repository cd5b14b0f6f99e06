// The live feed: events from the console's stream, newest first. Text only, never HTML: what
// an event names (keys, metadata) is shown as text.
"use strict";
(function () {
  const list = document.getElementById("feed");
  const state = document.getElementById("feed-state");
  const pause = document.getElementById("feed-pause");
  const source = new EventSource(list.dataset.stream);
  const held = [];
  let paused = false;
  const MAX = 500;

  function show(event) {
    const item = document.createElement("li");
    const when = new Date(event.created_at).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
    const seq = document.createElement("a");
    seq.href = "/_console/events/" + event.sequence;
    seq.textContent = "#" + event.sequence;
    const text = document.createElement("span");
    text.textContent = " " + when + "  " + event.event_type + "  " + event.subject_id + "  by " + event.actor;
    item.append(seq, text);
    item.dataset.type = event.event_type;
    list.prepend(item);
    while (list.children.length > MAX) list.lastElementChild.remove();
  }

  source.addEventListener("open", () => { state.textContent = paused ? "paused" : "live"; });
  source.addEventListener("error", () => { state.textContent = "reconnecting"; });
  source.addEventListener("message", (message) => {
    const event = JSON.parse(message.data);
    if (paused) {
      held.push(event);
      if (held.length > MAX) held.shift();
      state.textContent = "paused, " + held.length + " waiting";
      return;
    }
    show(event);
  });
  pause.addEventListener("click", () => {
    paused = !paused;
    pause.textContent = paused ? "Resume" : "Pause";
    pause.setAttribute("aria-pressed", String(paused));
    if (!paused) { held.splice(0).forEach(show); state.textContent = "live"; }
    else { state.textContent = "paused"; }
  });
})();
