// The live part of the dashboard: one EventSource on /api/stream, and the page's numbers,
// tables and chart redrawn from each snapshot. Everything else works without it.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const status = $("status");

  function showStatus(text) {
    status.textContent = text;
    status.hidden = false;
  }

  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  // Same markup as the server's top_table (dashboard.rs).
  function topTable(t) {
    const section = document.createElement("section");
    section.className = "top";
    section.dataset.param = t.param;
    const h = document.createElement("h3");
    h.textContent = t.param;
    const table = document.createElement("table");
    const body = document.createElement("tbody");
    for (const [value, n] of t.values) {
      const tr = document.createElement("tr");
      tr.append(cell(value), cell(String(n), "n"));
      body.append(tr);
    }
    table.append(body);
    section.append(h, table);
    return section;
  }

  // Same markup as the server's ab_table (dashboard.rs).
  function abTable(ab) {
    const frag = document.createDocumentFragment();
    const h = document.createElement("h3");
    h.textContent = "A/B: " + ab.param + " → " + ab.goal;
    const table = document.createElement("table");
    const head = document.createElement("thead");
    const hr = document.createElement("tr");
    for (const name of ["variant", "hits", "goals", "conversion"]) {
      const th = document.createElement("th");
      th.textContent = name;
      hr.append(th);
    }
    head.append(hr);
    const body = document.createElement("tbody");
    for (const v of ab.variants) {
      const tr = document.createElement("tr");
      tr.dataset.variant = v.name;
      tr.append(
        cell(v.name),
        cell(String(v.hits), "n hits"),
        cell(String(v.goals), "n goals"),
        cell((v.conversion * 100).toFixed(2) + "%", "n conversion"),
      );
      body.append(tr);
    }
    table.append(head, body);
    frag.append(h, table);
    return frag;
  }

  function chart(points) {
    const canvas = $("chart");
    const ctx = canvas.getContext("2d");
    const w = canvas.width, h = canvas.height, pad = 22;
    ctx.clearRect(0, 0, w, h);
    const max = Math.max(1, ...points.map((p) => p[1]));
    const bar = (w - pad) / Math.max(1, points.length);
    ctx.fillStyle = "#2f6fde";
    points.forEach((p, i) => {
      const bh = ((h - pad) * p[1]) / max;
      ctx.fillRect(pad + i * bar, h - pad - bh, Math.max(1, bar - 0.5), bh);
    });
    ctx.fillStyle = "#5b6475";
    ctx.font = "11px sans-serif";
    ctx.fillText(String(max) + "/s", 2, 12);
    ctx.fillText("0", 2, h - pad);
    ctx.fillText("now", w - 24, h - 6);
  }

  function render(s) {
    $("rate-now").textContent = String(s.rate_now);
    $("rate-minute").textContent = s.rate_minute.toFixed(1);
    $("total").textContent = String(s.total);
    $("malformed").textContent = String(s.malformed);
    $("uniques-minute").textContent = String(s.uniques.minute);
    $("uniques-window").textContent = String(s.uniques.window);
    $("uniques-today").textContent = String(s.uniques.today);
    for (const el of document.querySelectorAll(".window")) el.textContent = String(s.window_minutes);
    $("top").replaceChildren(...s.top.map(topTable));
    $("ab").replaceChildren(s.ab ? abTable(s.ab) : "");
    chart(s.per_second);
    $("updated").textContent = "live · " + new Date(s.now * 1000).toISOString().replace(".000Z", "Z");
    status.hidden = true;
    document.body.dataset.live = "yes";
  }

  const source = new EventSource("/api/stream" + location.search);
  source.addEventListener("snapshot", (e) => render(JSON.parse(e.data)));
  source.addEventListener("unavailable", (e) => {
    showStatus(JSON.parse(e.data).error + " — the numbers shown are not live.");
    document.body.dataset.live = "no";
  });
  source.onerror = () => {
    showStatus("Lost the connection to pixelpipe; retrying…");
    document.body.dataset.live = "no";
  };
})();
