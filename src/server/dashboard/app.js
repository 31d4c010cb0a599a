// The dashboard: one card per improvement, refreshed every two seconds from
// /v1/fleet/improvements. Every number shown is taken from that API as is.
"use strict";

const STATES = [
  ["protected", "protected"], ["installed", "installed, restart needed"], ["downloading", "downloading"],
  ["available", "available, not installed"], ["failed", "failed"], ["rolled_back", "rolled back"], ["opted_out", "opted out"],
];
const charts = new Map();

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

function time(t) { return new Date(t * 1000).toLocaleString(); }

function card(imp) {
  const id = imp.id.replace(/[^a-zA-Z0-9]/g, "_");
  let c = document.getElementById("imp-" + id);
  if (!c) {
    c = el("section", { class: "card", id: "imp-" + id, "data-improvement": imp.id });
    document.getElementById("improvements").append(c);
  }
  c.replaceChildren();
  const title = el("h2", {}, `${imp.component} ${imp.base} (${imp.label})`);
  if (imp.urgency === "critical") title.append(el("span", { class: "pill critical" }, "critical"));
  if (imp.exploited) title.append(el("span", { class: "pill critical" }, "exploited in the wild"));
  if (imp.revoked) title.append(el("span", { class: "pill critical" }, "revoked"));
  const r = imp.rollout || {};
  title.append(r.halted ? el("span", { class: "pill halted", "data-field": "rollout-state" }, "halted")
                        : el("span", { class: "pill live", "data-field": "rollout-state" }, "rolling out"));
  c.append(title);
  c.append(el("div", { class: "meta" },
    `Fixes ${(imp.cves || []).join(", ") || "—"} · rollout `,
    el("b", { "data-field": "rollout-percent" }, String(r.percent ?? 0)), "% · patch ",
    `${Math.round((imp.patch_bytes || 0) / 1024)} KiB`,
    r.halted && r.reason ? ` · ${r.reason}` : ""));
  const counts = el("div", { class: "counts" });
  for (const [key, label] of STATES) {
    counts.append(el("div", { class: "count" },
      el("b", { "data-state": key }, String(imp.devices[key] ?? 0)), el("span", {}, label)));
  }
  c.append(counts);
  const chartBox = el("div", {}, el("canvas", { id: "chart-" + id }));
  const side = el("div", {});
  side.append(el("h3", {}, "Failure reasons"));
  if ((imp.failure_reasons || []).length === 0) side.append(el("div", { class: "empty" }, "none"));
  else {
    const t = el("table", {});
    for (const f of imp.failure_reasons) t.append(el("tr", {}, el("td", {}, f.error || "(no reason)"), el("td", {}, String(f.devices))));
    side.append(t);
  }
  side.append(el("h3", {}, "Rollout history"));
  if ((imp.history || []).length === 0) side.append(el("div", { class: "empty" }, "published"));
  else {
    const t = el("table", {});
    for (const h of imp.history.slice(-8)) {
      const d = h.details || {};
      const what = d.halted === true ? "halt" : d.halted === false ? "resume" : d.percent !== undefined ? `${d.percent}%` : h.action;
      t.append(el("tr", {}, el("td", {}, time(h.time)), el("td", {}, `${h.action}: ${what}`), el("td", {}, h.result)));
    }
    side.append(t);
  }
  c.append(el("div", { class: "grid2" }, chartBox, side));
  drawChart(id, imp);
}

function drawChart(id, imp) {
  // Seconds since publication (the signed "published" time; the first protection otherwise).
  const series = imp.protected_series || [];
  const start = imp.published || (series.length ? series[0][0] : 0);
  const data = [{ x: 0, y: 0 }].concat(series.map(([t, n]) => ({ x: Math.max(0, t - start), y: n })));
  const canvas = document.getElementById("chart-" + id);
  if (typeof Chart === "undefined") return;
  const old = charts.get(id);
  if (old) old.destroy();
  charts.set(id, new Chart(canvas, {
    type: "line",
    data: { datasets: [{ label: "devices protected", data, stepped: true, borderColor: "#1a7f4b", fill: false }] },
    options: { animation: false, parsing: true,
               scales: { x: { type: "linear", title: { display: true, text: "seconds since publication" } },
                         y: { beginAtZero: true, ticks: { precision: 0 } } } },
  }));
}

// The fleet views need the viewer (or admin) token. It comes once in the address
// (https://server/#token=...), is kept for this tab only, and is taken out of the address
// bar and history.
function viewerToken() {
  const m = location.hash.match(/^#token=([^&]+)/);
  if (m) {
    sessionStorage.setItem("qp-token", decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem("qp-token") || "";
}

async function refresh() {
  try {
    const res = await fetch("/v1/fleet/improvements", {
      cache: "no-store", headers: { Authorization: "Bearer " + viewerToken() } });
    if (res.status === 401) {
      document.getElementById("updated").textContent =
        "open this page as /#token=VIEWER_TOKEN (the fleet views need the viewer token)";
      return;
    }
    const body = await res.json();
    const list = body.improvements || [];
    if (list.length) {
      const empty = document.querySelector("#improvements > .empty");
      if (empty) empty.remove();
    }
    for (const imp of list) card(imp);
    document.getElementById("updated").textContent = "updated " + time(body.generated);
    document.body.dataset.loaded = "true";
  } catch (e) {
    document.getElementById("updated").textContent = "cannot reach the server: " + e;
  }
}

refresh();
setInterval(refresh, 2000);
