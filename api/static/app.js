// cpwatch dashboard: hand-written, no build step, no dependencies.
"use strict";

const $ = (sel) => document.querySelector(sel);
const FEED_MAX = 100;
const REFRESH_MS = 10000; // holders, alerts, health
const HEALTH_MS = 5000;

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => (
    { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
// Highlights come HTML-encoded with <em> marks (encoder "html"): decode each piece between
// marks as text, re-escape it, keep only the marks, so nothing else can become markup.
const decoder = document.createElement("textarea");
function decode(html) { decoder.innerHTML = html; return decoder.value; }
function highlighted(text) {
  return String(text ?? "").split(/(<\/?em>)/).map((part) =>
    (part === "<em>" || part === "</em>") ? part : esc(decode(part))).join("");
}
function usd(v) {
  const n = Number(v);
  if (!isFinite(n)) return "–";
  const a = Math.abs(n);
  if (a >= 1e9) return `$${(n / 1e9).toFixed(2)}B`;
  if (a >= 1e6) return `$${(n / 1e6).toFixed(1)}M`;
  if (a >= 1e3) return `$${(n / 1e3).toFixed(1)}k`;
  return `$${n.toFixed(0)}`;
}
function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : d.toISOString().replace("T", " ").slice(0, 16) + "Z";
}
function tags(list) {
  return (list || []).map((t) => `<span class="tag">${esc(t)}</span>`).join("");
}
async function getJSON(url) {
  const resp = await fetch(url, { headers: { accept: "application/json" } });
  if (!resp.ok) throw new Error(`${url}: HTTP ${resp.status}`);
  return resp.json();
}

// ------------------------------------------------------------- live feed (SSE)
const seen = new Map(); // event id -> <li>
// The feed is ordered by publication, newest first, whatever order events arrive in.
function publishedAt(ev) {
  const t = Date.parse(ev.published || ev.ingested_at);
  return isNaN(t) ? 0 : t;
}
function placeInFeed(li) {
  const feed = $("#feed");
  const t = Number(li.dataset.published);
  const after = [...feed.children].find((other) => Number(other.dataset.published) < t);
  feed.insertBefore(li, after || null);
}

function addEvent(ev, live) {
  const li = seen.get(ev.id) || document.createElement("li");
  li.dataset.id = ev.id;
  li.dataset.published = String(publishedAt(ev));
  li.innerHTML = `<div class="title">${esc(ev.title)}</div>
    <div class="meta">${[when(ev.published || ev.ingested_at), ev.source,
      ev.severity != null ? `severity ${Number(ev.severity).toFixed(2)}` : ""]
      .filter(Boolean).map(esc).join(" · ")}</div>
    <div>${tags(ev.categories)}${tags(ev.countries)}${tags(ev.orgs)}${tags(ev.holders)}</div>`;
  seen.set(ev.id, li);
  placeInFeed(li); // a known event moves if its publication time changed
  if (live) { li.classList.remove("new"); void li.offsetWidth; li.classList.add("new"); }
  while ($("#feed").children.length > FEED_MAX) {
    const last = $("#feed").lastElementChild;
    seen.delete(last.dataset.id);
    last.remove();
  }
  $("#feed-empty").hidden = seen.size > 0;
}

function connectFeed() {
  const src = new EventSource("/api/events/stream");
  let backlog = true;
  const conn = $("#conn");
  src.onopen = () => { conn.textContent = "live"; conn.className = "badge on"; };
  src.onerror = () => { conn.textContent = "reconnecting…"; conn.className = "badge off"; };
  src.addEventListener("policy-event", (m) => addEvent(JSON.parse(m.data), !backlog));
  src.addEventListener("heartbeat", () => {
    backlog = false; // the first heartbeat follows the backlog
    conn.textContent = "live"; conn.className = "badge on";
  });
  src.addEventListener("problem", (m) => {
    conn.textContent = JSON.parse(m.data).detail; conn.className = "badge off";
  });
}

// ------------------------------------------------------------- treasury charts (SVG)
const SVG = "http://www.w3.org/2000/svg";
function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function drawChart(box, series) {
  const W = 600, H = 110, L = 56, R = 6, T = 6, B = 16;
  const pts = series.points.filter((p) => isFinite(p.value_usd));
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img" });
  const values = pts.map((p) => p.value_usd);
  // Keep levels on the chart only when near the data, so a $10B rule does not flatten a $500M line.
  const lo0 = Math.min(...values), hi0 = Math.max(...values);
  const near = series.levels.filter((l) => l.threshold_usd <= hi0 * 1.5 && l.threshold_usd >= lo0 / 1.5);
  let lo = Math.min(lo0, ...near.map((l) => l.threshold_usd));
  let hi = Math.max(hi0, ...near.map((l) => l.threshold_usd));
  if (hi === lo) { hi += Math.abs(hi) * 0.05 || 1; lo -= Math.abs(lo) * 0.05 || 1; }
  const pad = (hi - lo) * 0.08; lo -= pad; hi += pad;
  const t0 = Date.parse(pts[0].ts), t1 = Date.parse(pts[pts.length - 1].ts);
  const x = (ts) => L + (t1 === t0 ? (W - L - R) / 2 : ((Date.parse(ts) - t0) / (t1 - t0)) * (W - L - R));
  const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  for (const v of [hi - pad, lo + pad]) {
    el("text", { x: 2, y: y(v) + 3 }, svg).textContent = usd(v);
  }
  el("text", { x: L, y: H - 3 }, svg).textContent = when(pts[0].ts);
  el("text", { x: W - R, y: H - 3, "text-anchor": "end" }, svg).textContent = when(pts[pts.length - 1].ts);
  for (const l of near) {
    el("line", { class: "level", x1: L, x2: W - R, y1: y(l.threshold_usd), y2: y(l.threshold_usd) }, svg);
    el("text", { x: W - R, y: y(l.threshold_usd) - 2, "text-anchor": "end" }, svg)
      .textContent = `${l.id} ${usd(l.threshold_usd)}`;
  }
  el("polyline", { class: "line", points: pts.map((p) => `${x(p.ts)},${y(p.value_usd)}`).join(" ") }, svg);
  if (pts.length <= 60) {
    for (const p of pts) el("circle", { class: "pt", cx: x(p.ts), cy: y(p.value_usd), r: 2 }, svg);
  }
  // Policy events linked to this holder: a marker at the publication time, title on hover.
  for (const ev of series.events || []) {
    const t = Date.parse(ev.published);
    if (isNaN(t) || t < t0 || t > t1) continue;
    const g = el("g", { class: "event-marker", "data-id": ev.id }, svg);
    el("line", { x1: x(ev.published), x2: x(ev.published), y1: T, y2: H - B }, g);
    el("circle", { cx: x(ev.published), cy: T + 3, r: 3.5 }, g);
    el("title", {}, g).textContent = `${when(ev.published)} ${ev.title}`;
  }
  box.querySelector("svg")?.remove();
  box.appendChild(svg);
  box.dataset.points = String(pts.length);
}

async function refreshHolders() {
  const { holders } = await getJSON("/api/holders");
  $("#charts-empty").hidden = holders.length > 0;
  for (const h of holders.slice(0, 12)) {
    const id = `chart-${encodeURIComponent(h.holder).replace(/[^a-zA-Z0-9-]/g, "_")}`;
    let box = document.getElementById(id);
    if (!box) {
      box = document.createElement("div");
      box.id = id; box.className = "chart"; box.dataset.holder = h.holder;
      box.innerHTML = `<div><span class="name"></span> <span class="meta"></span></div>`;
      $("#charts").appendChild(box);
    }
    box.querySelector(".name").textContent = h.name || h.holder;
    box.querySelector(".meta").textContent =
      `${usd(h.value_usd)} · ${Number(h.btc).toLocaleString()} BTC @ ${usd(h.price)} · ${when(h.ts)}`;
    const series = await getJSON(`/api/holders/${encodeURIComponent(h.holder)}/series?size=1000`);
    if (series.points.length) drawChart(box, series);
  }
}

// ------------------------------------------------------------- alerts
// A below-cost threshold is a cost per coin: compare it with the price, never with the value.
function compared(a) {
  return a.measure === "price"
    ? `BTC ${usd(a.price)} vs cost ${usd(a.threshold_usd)}/BTC`
    : `${usd(a.value_usd)} vs ${usd(a.threshold_usd)}`;
}
function alertItem(a) {
  const arrow = a.direction === "down" ? "↓" : "↑";
  return `<li class="alert ${esc(a.direction)}">${arrow} <b>${esc(a.holder)}</b> ${esc(a.rule)}:
    ${esc(compared(a))} <span class="meta">${esc(when(a.ts))}</span></li>`;
}
// An alert storm (one rule and direction for many holders within STORM_S, as a subscriber's
// default group_by sends it) is one row that expands to its alerts.
const STORM_S = 60;
function storms(alerts) {
  const groups = [];
  for (const a of alerts) {
    const g = groups[groups.length - 1];
    const t = Date.parse(a.ts) / 1000;
    if (g && g.rule === a.rule && g.direction === a.direction && g.first - t <= STORM_S) {
      g.items.push(a);
    } else {
      groups.push({ rule: a.rule, direction: a.direction, first: t, items: [a] });
    }
  }
  return groups;
}
function stormItem(g) {
  if (g.items.length === 1) return alertItem(g.items[0]);
  const arrow = g.direction === "down" ? "↓" : "↑";
  return `<li class="storm ${esc(g.direction)}"><details><summary>${arrow}
    <b>${g.items.length} holders</b> ${esc(g.rule)}
    <span class="meta">${esc(when(g.items[g.items.length - 1].ts))}</span></summary>
    <ul>${g.items.map(alertItem).join("")}</ul></details></li>`;
}
async function refreshAlerts() {
  const { firing, recent } = await getJSON("/api/dashboard/alerts");
  $("#firing-count").textContent = `(${firing.length})`;
  $("#firing").innerHTML = firing.map(alertItem).join("") || `<li class="muted">none</li>`;
  $("#recent").innerHTML =
    storms(recent).slice(0, 15).map(stormItem).join("") || `<li class="muted">none</li>`;
}

// ------------------------------------------------------------- pipeline health
let lastHealth = null;
async function refreshHealth() {
  let h;
  try { h = await getJSON("/api/dashboard/health"); } catch { h = { status: "unknown" }; }
  $("#health-status").textContent = h.status;
  const firing = h.alerts_firing == null ? "" : ` · ${h.alerts_firing} firing`;
  if (h.status !== "ok") { $("#health-detail").textContent = firing.slice(3); lastHealth = null; return; }
  const lag = Object.values(h.lag).reduce((a, b) => a + b, 0);
  let rate = "";
  if (lastHealth) {
    const dt = h.ts - lastHealth.ts;
    const total = (recs, key) => Object.values(recs).reduce((a, r) => a + (r[key] || 0), 0);
    const per = (key) => ((total(h.records, key) - total(lastHealth.records, key)) / dt).toFixed(1);
    if (dt > 0) rate = ` · in ${per("in")}/s · out ${per("out")}/s · failed ${per("failed")}/s`;
  }
  $("#health-detail").textContent = `lag ${lag}${rate}${firing}`;
  $("#health-detail").title = `lag per topic ${JSON.stringify(h.lag)}\nrecords per stage ${JSON.stringify(h.records)}`;
  lastHealth = h;
}

// ------------------------------------------------------------- search
const FACET_PARAM = { categories: "category", countries: "country", orgs: "org" };
const filters = new URLSearchParams();

async function runSearch() {
  const params = new URLSearchParams(filters);
  params.set("q", $("#q").value.trim());
  params.set("index", $("#index").value);
  params.set("size", "20");
  let res;
  try {
    const resp = await fetch(`/api/search?${params}`);
    res = await resp.json();
    if (!resp.ok) { $("#search-summary").textContent = res.detail || `HTTP ${resp.status}`; return; }
  } catch (err) { $("#search-summary").textContent = String(err); return; }
  const active = [...filters.entries()].map(([k, v]) => `${k}=${v}`).join(", ");
  $("#search-summary").textContent = `${res.total} hits${active ? ` · filters: ${active} (click to clear)` : ""}`;
  $("#hits").innerHTML = res.hits.map((h) => {
    const snip = Object.values(h.highlight || {}).flat().slice(0, 2).map(highlighted).join(" … ");
    return `<li><div class="title">${esc(h.title)}</div>
      <div class="meta">${esc(when(h.published))} · ${esc(h.index)}</div>
      <div>${tags(h.categories)}${tags(h.countries)}</div><div class="meta">${snip}</div></li>`;
  }).join("");
  $("#facets").innerHTML = Object.entries(res.facets || {}).map(([name, buckets]) =>
    buckets.length ? `<h4>${esc(name)}</h4><ul>${buckets.slice(0, 8).map(([k, n]) =>
      `<li>${FACET_PARAM[name] ? `<a href="#" data-p="${esc(FACET_PARAM[name])}" data-v="${esc(k)}">${esc(k)}</a>`
        : esc(k === "" ? "(none)" : k)} <span class="muted">${n}</span></li>`).join("")}</ul>` : "").join("");
}

$("#search-form").addEventListener("submit", (e) => { e.preventDefault(); runSearch(); });
$("#facets").addEventListener("click", (e) => {
  const a = e.target.closest("a[data-p]");
  if (!a) return;
  e.preventDefault();
  filters.append(a.dataset.p, a.dataset.v);
  runSearch();
});
$("#search-summary").addEventListener("click", () => {
  if ([...filters.keys()].length) { for (const k of [...filters.keys()]) filters.delete(k); runSearch(); }
});

// ------------------------------------------------------------- start
function every(fn, ms) {
  const run = () => fn().catch((err) => console.warn(err));
  run();
  setInterval(run, ms);
}
connectFeed();
every(refreshHolders, REFRESH_MS);
every(refreshAlerts, REFRESH_MS);
every(refreshHealth, HEALTH_MS);
