// pixelx dashboard: live updates. The server sends the registry's change token over
// server-sent events; when it differs from the token this page was rendered with, the page
// fetches itself again and swaps its #live part in place (no reload: scroll position, open
// sections and the rest of the page stay).
(() => {
  "use strict";
  const state = document.getElementById("live-state");
  let busy = false;
  let again = false;
  let updates = 0;

  async function refresh() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    try {
      const res = await fetch(location.pathname, { cache: "no-store" });
      if (res.ok) {
        const doc = new DOMParser().parseFromString(await res.text(), "text/html");
        const fresh = doc.getElementById("live");
        const current = document.getElementById("live");
        if (fresh && current) {
          const open = new Set(Array.from(current.querySelectorAll("details[open]"), (d) => d.id));
          fresh.querySelectorAll("details").forEach((d) => {
            if (open.has(d.id)) d.open = true;
          });
          current.replaceWith(document.adoptNode(fresh));
          updates += 1;
          document.body.dataset.updates = String(updates);
          if (doc.title) document.title = doc.title;
        }
      }
    } catch (e) {
      // The next change event tries again.
    }
    busy = false;
    if (again) {
      again = false;
      refresh();
    }
  }

  const events = new EventSource("/events");
  events.addEventListener("open", () => {
    if (state) state.textContent = "● live";
  });
  events.addEventListener("error", () => {
    if (state) state.textContent = "reconnecting…";
  });
  events.addEventListener("change", (ev) => {
    const current = document.getElementById("live");
    if (current && current.dataset.token !== ev.data) refresh();
  });
})();
