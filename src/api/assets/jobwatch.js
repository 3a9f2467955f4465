// jobwatch pages: sorting, filters, self-refresh, log search, API forms. No framework.
"use strict";
(function () {
  const PAGE = { "X-Jobwatch-Page": "1" };

  // Tables: a click on a th[data-sort] sorts its tbody by that column (data-value or text;
  // data-sort="num" compares numbers). The order is kept across refreshes.
  const sorted = {};
  function sortTable(table, index, kind, dir) {
    const body = table.tBodies[0];
    if (!body) return;
    const key = (row) => {
      const cell = row.cells[index];
      const v = cell ? (cell.dataset.value ?? cell.textContent.trim()) : "";
      return kind === "num" ? (v === "" ? -Infinity : Number(v)) : v.toLowerCase();
    };
    const rows = Array.from(body.rows);
    rows.sort((a, b) => {
      const x = key(a), y = key(b);
      return (x < y ? -1 : x > y ? 1 : 0) * dir;
    });
    rows.forEach((r) => body.appendChild(r));
    table.querySelectorAll("th").forEach((th) => th.removeAttribute("aria-sort"));
    const th = table.tHead.rows[0].cells[index];
    th.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
    sorted[table.id] = { index, kind, dir };
  }
  function wireSorting(root) {
    root.querySelectorAll("table[id] th[data-sort]").forEach((th) => {
      if (th.dataset.wired) return;
      th.dataset.wired = "1";
      th.addEventListener("click", () => {
        const table = th.closest("table");
        const prev = sorted[table.id];
        const dir = prev && prev.index === th.cellIndex ? -prev.dir : 1;
        sortTable(table, th.cellIndex, th.dataset.sort, dir);
      });
    });
    Object.entries(sorted).forEach(([id, s]) => {
      const table = document.getElementById(id);
      if (table && root.contains(table)) sortTable(table, s.index, s.kind, s.dir);
    });
  }

  // Filters: form.filters[data-for=<table id>]: every field names a data-* of the rows
  // (q: any text of the row); rows that do not match are hidden; #<table id>-shown counts.
  function applyFilters() {
    document.querySelectorAll("form.filters[data-for]:not([data-live])").forEach((form) => {
      const table = document.getElementById(form.dataset.for);
      if (!table || !table.tBodies[0]) return;
      const fields = Array.from(form.elements).filter((e) => e.name && e.value !== "");
      let shown = 0;
      Array.from(table.tBodies[0].rows).forEach((row) => {
        const ok = fields.every((f) => {
          if (f.name === "q") return row.textContent.toLowerCase().includes(f.value.toLowerCase());
          return (row.dataset[f.name] || "").split(" ").includes(f.value);
        });
        row.hidden = !ok;
        if (ok) shown += 1;
      });
      const counter = document.getElementById(form.dataset.for + "-shown");
      if (counter) counter.textContent = String(shown);
    });
  }
  function wireFilters() {
    document.querySelectorAll("form.filters[data-for]:not([data-live])").forEach((form) => {
      form.addEventListener("input", applyFilters);
      form.addEventListener("submit", (e) => e.preventDefault());
    });
    applyFilters();
  }

  // Self-refresh: every element with an id and data-refresh="<seconds>" is replaced by its
  // newer self, fetched from this page's URL, while the page is visible.
  let refreshNow = null;
  function wireRefresh() {
    const parts = Array.from(document.querySelectorAll("[id][data-refresh]"));
    if (parts.length === 0) return;
    const every = Math.max(2, Number(parts[0].dataset.refresh) || 10) * 1000;
    let busy = false, again = false;
    refreshNow = () => refresh();
    async function refresh() {
      if (busy) { again = true; return; }
      if (document.hidden) return;
      busy = true;
      try {
        const resp = await fetch(location.href, { headers: PAGE, credentials: "same-origin" });
        if (!resp.ok) return;
        const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
        document.querySelectorAll("[id][data-refresh]").forEach((old) => {
          const fresh = doc.getElementById(old.id);
          if (fresh) old.replaceWith(document.importNode(fresh, true));
        });
        wireSorting(document);
        applyFilters();
        document.body.dataset.refreshed = String(Date.now());
      } catch (_) {
        // The next round tries again.
      } finally {
        busy = false;
        if (again) { again = false; refresh(); }
      }
    }
    setInterval(refresh, every);
  }

  // Live filters: form[data-live] puts its fields in the page's URL (so a refresh, a reload
  // or a shared link shows the same rows) and refreshes the page's live parts at once.
  function wireLiveFilters() {
    document.querySelectorAll("form[data-live]").forEach((form) => {
      let timer = null;
      const apply = () => {
        const params = new URLSearchParams();
        Array.from(form.elements).forEach((el) => {
          if (el.name && el.value !== "") params.set(el.name, el.value);
        });
        const query = params.toString();
        history.replaceState(null, "", location.pathname + (query ? "?" + query : ""));
        if (refreshNow) refreshNow();
      };
      const later = () => { clearTimeout(timer); timer = setTimeout(apply, 250); };
      form.addEventListener("input", later);
      form.addEventListener("change", later);
      form.addEventListener("submit", (e) => { e.preventDefault(); apply(); });
    });
  }

  // Log search: input[data-log-search=<pre id>] marks matches and counts them.
  function wireLogSearch() {
    document.querySelectorAll("input[data-log-search]").forEach((input) => {
      const pre = document.getElementById(input.dataset.logSearch);
      if (!pre) return;
      const original = pre.textContent;
      const counter = document.getElementById(input.dataset.logSearch + "-matches");
      input.addEventListener("input", () => {
        const needle = input.value;
        pre.textContent = "";
        let count = 0;
        if (needle === "") {
          pre.textContent = original;
        } else {
          const hay = original.toLowerCase(), n = needle.toLowerCase();
          let at = 0;
          for (;;) {
            const i = hay.indexOf(n, at);
            if (i < 0) break;
            pre.appendChild(document.createTextNode(original.slice(at, i)));
            const m = document.createElement("mark");
            m.textContent = original.slice(i, i + n.length);
            pre.appendChild(m);
            at = i + n.length;
            count += 1;
          }
          pre.appendChild(document.createTextNode(original.slice(at)));
          const first = pre.querySelector("mark");
          if (first) first.scrollIntoView({ block: "nearest" });
        }
        if (counter) counter.textContent = needle === "" ? "" : count + " found";
      });
    });
  }

  // API forms: form[data-api] sends its fields as JSON (textarea[data-lines]: one list item a
  // line) with the page header; button[data-delete] sends a DELETE. Then the page reloads.
  async function send(method, url, body, out) {
    const headers = Object.assign({ "Content-Type": "application/json" }, PAGE);
    const resp = await fetch(url, { method, headers, body, credentials: "same-origin" });
    if (resp.ok) {
      location.reload();
      return;
    }
    let message = resp.status + " " + resp.statusText;
    try { message = (await resp.json()).error.message; } catch (_) { /* keep the status */ }
    if (out) { out.textContent = message; out.hidden = false; }
  }
  function wireForms() {
    document.querySelectorAll("form[data-api]").forEach((form) => {
      form.addEventListener("submit", (e) => {
        e.preventDefault();
        const body = {};
        Array.from(form.elements).forEach((el) => {
          if (!el.name || el.value === "") return;
          if (el.dataset.lines !== undefined) {
            body[el.name] = el.value.split("\n").map((l) => l.trim()).filter((l) => l !== "");
          } else if (el.type === "datetime-local") {
            // The browser's local time, sent as RFC 3339 UTC.
            body[el.name] = new Date(el.value).toISOString();
          } else {
            body[el.name] = el.value;
          }
        });
        // An end given overrides the duration.
        if (body.ends_at !== undefined) delete body.duration;
        send(form.dataset.method || "POST", form.dataset.api, JSON.stringify(body),
          form.querySelector(".form-error"));
      });
    });
    document.querySelectorAll("button[data-delete]").forEach((b) => {
      b.addEventListener("click", () => send("DELETE", b.dataset.delete, null,
        document.getElementById(b.dataset.errorIn || "")));
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    wireSorting(document);
    wireFilters();
    wireRefresh();
    wireLiveFilters();
    wireLogSearch();
    wireForms();
    document.body.dataset.ready = "1";
  });
})();
