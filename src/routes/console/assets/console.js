// idemhook console: draws the overview's chart and keeps its table fresh, and makes the
// action buttons call the admin API with the session's CSRF token. Every value is written
// with textContent or an SVG attribute, never as markup.
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";
const SVG = "http://www.w3.org/2000/svg";

function age(secs) {
  if (secs === null || secs === undefined) return "—";
  if (secs < 60) return `${secs} s`;
  if (secs < 3600) return `${Math.floor(secs / 60)} min ${secs % 60} s`;
  return `${Math.floor(secs / 3600)} h ${Math.floor((secs % 3600) / 60)} min`;
}

function svg(name, attrs, parent) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  parent.appendChild(el);
  return el;
}

// Stacked bars per minute, all sources together: new, duplicates, failed + rejected.
function drawChart(box, overview) {
  const n = overview.starts.length;
  const minutes = Array.from({ length: n }, () => ({ new: 0, duplicates: 0, bad: 0 }));
  for (const source of overview.sources) {
    source.minutes.forEach((m, i) => {
      minutes[i].new += m.new;
      minutes[i].duplicates += m.duplicates;
      minutes[i].bad += m.failed + m.rejected;
    });
  }
  const max = Math.max(1, ...minutes.map((m) => m.new + m.duplicates + m.bad));
  const width = 720, height = 160, slot = width / 61;
  box.replaceChildren();
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "img", "aria-label": "events per minute, last hour" }, box);
  minutes.forEach((m, i) => {
    const x = (61 - n + i) * slot;
    let y = height;
    for (const [kind, value] of [["new", m.new], ["duplicates", m.duplicates], ["failed", m.bad]]) {
      if (!value) continue;
      const h = (value / max) * height;
      y -= h;
      const bar = svg("rect", { x: x + 1, y, width: slot - 2, height: h, class: kind }, chart);
      svg("title", {}, bar).textContent = `${overview.starts[i]}: ${value} ${kind}`;
    }
  });
  const axis = document.createElement("div");
  axis.className = "axis";
  for (const text of ["60 min ago", `now · top of the scale ${max}/min`]) {
    const label = document.createElement("span");
    label.textContent = text;
    axis.appendChild(label);
  }
  box.appendChild(axis);
}

function fillTable(overview) {
  for (const row of overview.sources) {
    const tr = [...document.querySelectorAll("#sources tr[data-source]")].find((r) => r.dataset.source === row.source);
    if (!tr) continue;
    const set = (field, text) => {
      const cell = tr.querySelector(`[data-field="${field}"]`);
      if (cell && field !== "dead") cell.textContent = text;
      if (cell && field === "dead") {
        const link = cell.querySelector("a");
        if (link) link.textContent = text; else cell.textContent = text;
      }
    };
    set("per_minute", row.per_minute.toFixed(1));
    for (const f of ["new", "duplicates", "failed", "rejected", "refused", "overloaded"]) set(f, String(row.total[f]));
    set("pending", String(row.pending));
    set("dead", String(row.dead));
    set("oldest_pending", age(row.oldest_pending_secs));
  }
}

async function refreshOverview(box) {
  try {
    const answer = await fetch(box.dataset.src, { credentials: "same-origin" });
    if (answer.status === 401) { location.assign("/console/login"); return; }
    if (!answer.ok) return;
    const overview = await answer.json();
    drawChart(box, overview);
    fillTable(overview);
  } catch (_) { /* the next tick tries again */ }
}

async function call(url) {
  const answer = await fetch(url, { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrf } });
  let body = {};
  try { body = await answer.json(); } catch (_) { /* no JSON */ }
  return { ok: answer.ok, status: answer.status, body };
}

async function followJob(id, out) {
  for (;;) {
    const answer = await fetch(`/jobs/${id}`, { credentials: "same-origin" });
    const job = await answer.json();
    out.textContent = `Job ${job.id}: ${job.status} · matched ${job.matched} · done ${job.done} · failed ${job.failed} · skipped ${job.skipped}`;
    out.dataset.state = job.status;
    if (job.status !== "running") return job;
    await new Promise((r) => setTimeout(r, 500));
  }
}

function wireButtons() {
  const out = document.getElementById("action-result");
  for (const button of document.querySelectorAll("button[data-post]")) {
    button.addEventListener("click", async () => {
      if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
      button.disabled = true;
      const result = await call(button.dataset.post);
      if (!result.ok) {
        out.textContent = `Refused (${result.status}): ${result.body.error ?? "no reason given"}`;
        out.dataset.state = "error";
        button.disabled = false;
        return;
      }
      if (button.dataset.job) {
        await followJob(result.body.id, out);
        return;
      }
      out.textContent = `Done (${result.status}): ${JSON.stringify(result.body)}`;
      out.dataset.state = "ok";
      setTimeout(() => location.reload(), 700);
    });
  }
}

// On an event page whose delivery is pending, follow it until it settles.
function followDelivery() {
  const status = document.getElementById("delivery-status");
  const api = status?.dataset.api;
  if (!status || !api || status.textContent !== "pending") return;
  const tick = async () => {
    try {
      const answer = await fetch(api, { credentials: "same-origin" });
      if (answer.ok) {
        const event = await answer.json();
        const now = event.delivery?.status ?? "";
        if (now && now !== "pending") { location.reload(); return; }
      }
    } catch (_) { /* try again */ }
    setTimeout(tick, 1000);
  };
  setTimeout(tick, 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("chart");
  if (box) {
    refreshOverview(box);
    setInterval(() => refreshOverview(box), 2000);
  }
  wireButtons();
  followDelivery();
});
