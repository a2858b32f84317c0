// Handoff control tower: polls the JSON API every 1.5 s and draws with inline SVG.
// No framework and no CDN: the page must work on an air-gapped operator laptop.
"use strict";

const POLL_MS = 1500;
const SVG_NS = "http://www.w3.org/2000/svg";

const STATUS_COLOURS = {
  requested: "#98a2b3", quoted: "#98a2b3", allocated: "#6b8afd",
  picked_up: "#4f7cf7", in_transit: "#2f6fed", out_for_delivery: "#1d4ed8",
  delivery_attempt_failed: "#e07b00", available_for_pickup: "#0ea5a4",
  exception: "#d64545", returning_to_sender: "#a06ae0", delivered: "#1f9d55",
  returned_to_sender: "#7c6aa8", cancelled: "#b0b7c3", rejected: "#c2410c",
  allocation_failed: "#9333ea", unknown: "#98a2b3",
};
const SERIES_COLOURS = ["#2f6fed", "#1f9d55", "#d98a00", "#d64545", "#7a5af8", "#0ea5a4", "#db2777", "#64748b"];

const $ = (id) => document.getElementById(id);
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const fmtInt = (n) => (n == null ? "–" : Math.round(n).toLocaleString("en"));
const fmtPct = (r) => (r == null ? "–" : (100 * r).toFixed(1) + "%");
const human = (s) => String(s).replace(/_/g, " ");

function fmtRate(n) {
  if (n == null) return "–";
  if (n >= 100) return Math.round(n).toLocaleString("en");
  if (n >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

function fmtMoney(m) {
  // Amounts arrive as integer minor units; the currency decides its decimals.
  const nf = new Intl.NumberFormat("en", { style: "currency", currency: m.currency });
  const digits = nf.resolvedOptions().maximumFractionDigits;
  return nf.format(m.amount / 10 ** digits);
}

function fmtTime(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return d.toLocaleString("en-GB", { day: "2-digit", month: "short", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function ago(iso, now) {
  if (!iso) return "–";
  let s = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000));
  if (s < 90) return s + " s";
  const m = Math.round(s / 60);
  if (m < 90) return m + " min";
  const h = Math.round(m / 60);
  if (h < 48) return h + " h";
  return Math.round(h / 24) + " d";
}

function svg(tag, attrs, text) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  if (text != null) el.textContent = text;
  return el;
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// Replace a container's HTML only when it changed: a row that is re-created under
// the pointer between mousedown and mouseup would swallow the click.
const rendered = new Map();
function setHTML(id, html) {
  if (rendered.get(id) === html) return;
  rendered.set(id, html);
  $(id).innerHTML = html;
}

async function getJSON(url) {
  const res = await fetch(url, { cache: "no-store" });
  if (!res.ok) throw new Error(url + " → " + res.status);
  return res.json();
}

// ---------------------------------------------------------------- board

function renderSummary(s) {
  const el = $("kpi-shipments");
  el.textContent = fmtInt(s.shipments);
  el.dataset.value = String(s.shipments);
  $("kpi-tenants").textContent = s.tenants + (s.tenants === 1 ? " tenant" : " tenants");
  $("kpi-in-flight").textContent = fmtInt(s.in_flight);
  $("kpi-exceptions").textContent = fmtInt(s.exceptions_open);
  $("kpi-exception-kinds").textContent = s.exceptions_by_kind.map((k) => `${k.count} ${human(k.kind)}`).join(" · ");
  $("kpi-on-time").textContent = fmtPct(s.kpi.on_time_rate);
  $("kpi-delivered").textContent = fmtInt(s.kpi.delivered) + " delivered";
  $("kpi-first-attempt").textContent = fmtPct(s.kpi.first_attempt_rate);
  $("records-read").textContent = `${fmtInt(s.records_read.state)} state and ${fmtInt(s.records_read.kpis)} KPI records read`;
  renderStatusChart(s.by_status);
}

function renderStatusChart(rows) {
  const box = $("status-chart");
  const rowH = 21, labelW = 150, valueW = 56, width = 560;
  const barW = width - labelW - valueW;
  const max = niceMax(Math.max(1, ...rows.map((r) => r.count)));
  const root = svg("svg", { viewBox: `0 0 ${width} ${rows.length * rowH + 4}`, role: "img", "aria-label": "shipments by status" });
  rows.forEach((r, i) => {
    const y = i * rowH + 2;
    const g = svg("g", { "data-status": r.status });
    g.appendChild(svg("text", { x: labelW - 10, y: y + 14, "text-anchor": "end", class: "label" }, human(r.status)));
    g.appendChild(svg("rect", { x: labelW, y: y + 3, width: barW, height: rowH - 7, rx: 3, fill: "#f1f3f8" }));
    const w = r.count ? Math.max(2, (barW * r.count) / max) : 0;
    g.appendChild(svg("rect", { x: labelW, y: y + 3, width: w, height: rowH - 7, rx: 3, fill: STATUS_COLOURS[r.status] || "#98a2b3" }));
    g.appendChild(svg("text", { x: labelW + barW + 8, y: y + 14, class: "value" }, fmtInt(r.count)));
    const title = svg("title", {}, `${human(r.status)}: ${r.count}`);
    g.appendChild(title);
    root.appendChild(g);
  });
  box.replaceChildren(root);
}

function kindBadge(kind) {
  const known = ["late", "stuck", "failed_attempt", "delivery_attempt_failed", "allocation_failed", "carrier_exception", "exception", "returned_to_sender", "returning_to_sender"];
  return `<span class="badge k-${known.includes(kind) ? kind : "other"}">${esc(human(kind))}</span>`;
}

function statusChip(status) {
  return `<span class="st" style="--c:${STATUS_COLOURS[status] || "#98a2b3"}">${esc(human(status))}</span>`;
}

function renderQueue(q, now) {
  $("queue-count").textContent = q.total ? fmtInt(q.total) : "";
  if (!q.items.length) {
    setHTML("queue-body", `<tr><td colspan="5" class="empty">Nothing needs attention.</td></tr>`);
    return;
  }
  setHTML("queue-body", q.items.map((r) => `
    <tr class="queue-row" data-shipment="${esc(r.shipment_id)}" title="open the timeline">
      <td><div class="mono">${esc(r.shipment_id)}</div><div class="sub nowrap">${esc(r.tenant_id)} · ${esc(r.order_id)}</div></td>
      <td>${r.kinds.map(kindBadge).join("")}</td>
      <td>${statusChip(r.status)}</td>
      <td>${esc(r.carrier || "–")}</td>
      <td class="num" title="${esc(fmtTime(r.since))}">${esc(ago(r.since, now))}</td>
    </tr>`).join(""));
}

function meter(rate, good, ok) {
  if (rate == null) return `<span class="sub">–</span>`;
  const colour = rate >= good ? "var(--green)" : rate >= ok ? "var(--amber)" : "var(--red)";
  return `<div class="meter"><div class="track"><div class="fill" style="width:${(100 * rate).toFixed(1)}%;background:${colour}"></div></div><span class="pct">${fmtPct(rate)}</span></div>`;
}

function renderCarriers(c) {
  if (!c.items.length) {
    setHTML("carrier-body", `<tr><td colspan="8" class="empty">No KPI snapshots yet.</td></tr>`);
    return;
  }
  setHTML("carrier-body", c.items.map((r) => `
    <tr class="carrier-row" data-carrier="${esc(r.carrier)}">
      <td><strong>${esc(r.carrier)}</strong><div class="sub">${r.lanes} lane${r.lanes === 1 ? "" : "s"} · ${r.days} day${r.days === 1 ? "" : "s"}</div></td>
      <td class="num">${fmtInt(r.delivered)}</td>
      <td class="num">${fmtInt(r.active_shipments)}</td>
      <td>${meter(r.on_time_rate, 0.95, 0.85)}</td>
      <td>${meter(r.first_attempt_rate, 0.9, 0.8)}</td>
      <td class="num">${r.cost_per_delivery.length ? r.cost_per_delivery.map(fmtMoney).join("<br>") : "–"}</td>
      <td class="num">${r.average_transit_hours == null ? "–" : r.average_transit_hours.toFixed(1) + " h"}</td>
      <td class="num">${fmtPct(r.exception_rate)}</td>
    </tr>`).join(""));
}

function renderThroughput(services) {
  const width = 560, height = 190, left = 44, right = 10, top = 10, bottom = 22;
  const series = services.items.filter((s) => s.series.length);
  const all = series.flatMap((s) => s.series);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "throughput per service" });
  const tEnd = all.length ? Math.max(...all.map((p) => p[0])) : Date.now();
  const span = Math.max(60_000, (services.scrape_every_s || 2) * 1000 * 150);
  const tStart = tEnd - span;
  const yMax = niceMax(Math.max(1, ...all.map((p) => p[1])));
  const x = (t) => left + ((t - tStart) / span) * (width - left - right);
  const y = (v) => top + (1 - v / yMax) * (height - top - bottom);
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    root.appendChild(svg("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), class: "grid-line" }));
    root.appendChild(svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, fmtRate(v)));
  }
  for (const m of [0, 1, 2, 3, 4, 5]) {
    const t = tEnd - m * 60_000;
    if (t < tStart) break;
    root.appendChild(svg("text", { x: x(t), y: height - 6, "text-anchor": "middle" }, m ? `-${m} min` : "now"));
  }
  services.items.forEach((s, i) => {
    if (!s.series.length) return;
    const pts = s.series.filter((p) => p[0] >= tStart).map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`);
    if (pts.length) {
      root.appendChild(svg("polyline", { points: pts.join(" "), fill: "none", stroke: SERIES_COLOURS[i % SERIES_COLOURS.length], "stroke-width": 2, "stroke-linejoin": "round", "data-service": s.name }));
    }
  });
  if (!all.length) root.appendChild(svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle" }, "waiting for the first scrapes…"));
  $("throughput-chart").replaceChildren(root);
  setHTML("throughput-legend", services.items.map((s, i) =>
    `<span><i style="background:${SERIES_COLOURS[i % SERIES_COLOURS.length]}"></i>${esc(human(s.name))}</span>`).join(""));
}

function renderServices(services) {
  const total = services.items.reduce((a, s) => a + (s.up ? s.records_per_s : 0), 0);
  $("kpi-throughput").textContent = fmtRate(total);
  const maxLag = niceMax(Math.max(1, ...services.items.map((s) => s.lag_total || 0)));
  setHTML("service-body", services.items.map((s) => {
    const lag = s.lag_total || 0;
    const stages = Object.entries(s.lag_by_stage).map(([k, v]) => `${k}: ${fmtInt(v)}`).join(", ");
    const state = s.up ? (s.ready === false ? "not ready" : "up") : "down";
    return `
    <tr class="service-row" data-service="${esc(s.name)}">
      <td><span class="up-dot ${s.up ? "" : "down"}"></span>${esc(human(s.name))}</td>
      <td class="sub" title="${esc(s.error || s.url)}">${esc(state)}</td>
      <td class="num">${s.up ? fmtRate(s.records_per_s) : "–"}</td>
      <td><div class="lagbar" title="${esc(stages)}"><div class="track"><div class="fill" style="width:${((100 * lag) / maxLag).toFixed(1)}%"></div></div><span class="n">${s.lag_total == null ? "–" : fmtInt(lag)}</span></div></td>
      <td class="num">${s.dlq_total ? `<span class="badge k-late">${fmtInt(s.dlq_total)}</span>` : s.dlq_total === 0 ? "0" : "–"}</td>
      <td class="num">${s.batch_ms == null ? "–" : s.batch_ms.toFixed(1) + " ms"}</td>
    </tr>`;
  }).join(""));
  renderThroughput(services);
}

// ---------------------------------------------------------------- shipment detail

function fact(label, value) {
  return `<div><dt>${esc(label)}</dt><dd title="${esc(value)}">${value == null || value === "" ? "–" : esc(value)}</dd></div>`;
}

function renderShipment(doc) {
  const s = doc.state;
  const money = s.price ? fmtMoney(s.price) : null;
  const facts = [
    fact("Tenant", s.tenant_id), fact("Order", s.order_id), fact("Carrier", s.carrier ? `${s.carrier}${s.service ? " · " + s.service : ""}` : null),
    fact("Tracking number", s.tracking_number), fact("Promised by", s.promised_by ? fmtTime(s.promised_by) : null),
    fact("Estimated delivery", s.estimated_delivery_date), fact("Delivered", s.delivered_at ? fmtTime(s.delivered_at) : null),
    fact("Price", money), fact("Service level", s.service_level), fact("Lane", s.lane),
    fact("Attempts", String(s.attempts.length)), fact("Version", String(s.version)),
  ].join("");
  const alerts = doc.open_exceptions.map((e) =>
    `<div class="alert">${kindBadge(e.kind)} since ${esc(fmtTime(e.since))}${e.detail ? " — " + esc(e.detail) : ""}</div>`).join("");
  const entries = doc.timeline.map((h) => {
    const colour = STATUS_COLOURS[h.status] || "#c0c6d2";
    const where = h.location ? [h.location.city, h.location.postal_code, h.location.country].filter(Boolean).join(" ") : "";
    const meta = [h.source, h.carrier_code ? `code ${h.carrier_code}` : "", where, h.applied ? "" : "not applied" + (h.note ? `: ${h.note}` : "")].filter(Boolean);
    return `
      <li class="tl-entry${h.applied ? "" : " skipped"}" style="--c:${colour}" data-event="${esc(h.event_id)}">
        <div class="tl-time">${esc(fmtTime(h.occurred_at))}</div>
        <div class="tl-title">${h.status ? esc(human(h.status)) : esc(h.type)}${h.sub_status ? ` <span class="sub">· ${esc(human(h.sub_status))}</span>` : ""}</div>
        ${h.description ? `<div>${esc(h.description)}</div>` : ""}
        <div class="tl-meta"><code>${esc(h.type)}</code>${meta.length ? " · " + esc(meta.join(" · ")) : ""}</div>
      </li>`;
  }).join("");
  setHTML("shipment-content", `
    <div class="ship-head"><h1 id="shipment-id">${esc(s.shipment_id)}</h1>${statusChip(s.status)}${s.sub_status ? `<span class="sub">${esc(human(s.sub_status))}</span>` : ""}</div>
    <div class="sub">updated ${esc(fmtTime(s.updated_at))}</div>
    <dl class="facts">${facts}</dl>
    ${alerts ? `<div class="alerts">${alerts}</div>` : ""}
    <h2>Timeline <span class="hint">${doc.timeline.length} events, in event time</span></h2>
    <ol class="timeline" id="timeline">${entries || `<li class="empty">No events recorded.</li>`}</ol>`);
}

// ---------------------------------------------------------------- routing and polling

function currentShipment() {
  const hash = location.hash.match(/^#\/shipments\/(.+)$/);
  if (hash) return decodeURIComponent(hash[1]);
  const path = location.pathname.match(/^\/shipments\/(.+)$/);
  if (path && (!location.hash || location.hash === "#")) return decodeURIComponent(path[1]);
  return null;
}

function showView() {
  const id = currentShipment();
  $("board-view").hidden = id !== null;
  $("shipment-view").hidden = id === null;
  if (id !== null) setHTML("shipment-content", `<p class="sub">Loading ${esc(id)}…</p>`);
  tick();
}

function setLive(kind, text) {
  const el = $("live");
  el.className = "live " + kind;
  $("live-text").textContent = text;
}

let inFlight = false;
async function tick() {
  if (inFlight) return;
  inFlight = true;
  try {
    const id = currentShipment();
    if (id !== null) {
      const res = await fetch("/api/shipments/" + encodeURIComponent(id), { cache: "no-store" });
      if (res.status === 404) {
        setHTML("shipment-content", `<p>No state for <code>${esc(id)}</code> on the state topic (yet).</p>`);
      } else if (res.ok) {
        renderShipment(await res.json());
      }
    }
    const [summary, queue, carriers, services] = await Promise.all([
      getJSON("/api/summary"), getJSON("/api/exceptions?limit=100"), getJSON("/api/carriers"), getJSON("/api/services"),
    ]);
    const now = Date.now();
    renderSummary(summary);
    renderQueue(queue, now);
    renderCarriers(carriers);
    renderServices(services);
    const when = new Date(summary.generated_at).toLocaleTimeString("en-GB");
    if (summary.caught_up) setLive("ok", `live · ${when}`);
    else setLive("stale", `catching up with the topics… · ${when}`);
  } catch (err) {
    setLive("down", "control tower unreachable — retrying");
  } finally {
    inFlight = false;
  }
}

document.addEventListener("click", (ev) => {
  const row = ev.target.closest(".queue-row");
  if (row) location.hash = "#/shipments/" + encodeURIComponent(row.dataset.shipment);
});
window.addEventListener("hashchange", showView);
showView();
setInterval(tick, POLL_MS);
