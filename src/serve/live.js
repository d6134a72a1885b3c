// pixelx dashboard: live updates. The server sends the registry's change token over
// server-sent events; when it differs from the token this page was rendered with, the page
// fetches itself again and swaps its #live part in place (no reload: scroll position, open
// sections and the rest of the page stay).
//
// Refreshes are spaced by at least a second and by four times what the last one took, so a
// page of a thousand runs redraws every couple of seconds at most and the dashboard never
// competes with training for the CPU.
(() => {
  "use strict";
  const state = document.getElementById("live-state");
  let busy = false;
  let again = false;
  let timer = null;
  let lastEnd = 0;
  let lastCost = 0;
  let updates = 0;

  function schedule() {
    if (timer) return; // the pending refresh will fetch the newest state anyway
    if (busy) {
      again = true;
      return;
    }
    const wait = Math.max(0, lastEnd + Math.max(1000, 4 * lastCost) - Date.now());
    timer = setTimeout(() => {
      timer = null;
      refresh();
    }, wait);
  }

  async function refresh() {
    busy = true;
    const start = Date.now();
    try {
      const res = await fetch(location.pathname + location.search, { cache: "no-store" });
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
    lastEnd = Date.now();
    lastCost = lastEnd - start;
    if (again) {
      again = false;
      schedule();
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
    if (current && current.dataset.token !== ev.data) schedule();
  });
})();
