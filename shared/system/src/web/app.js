// The executor dev page: recent executions (refreshed every second), one execution's timeline
// and outputs, and the failure piles — all read from the public HTTP API with an API key.
// Every value from the API is put in the page as text (never as HTML).
"use strict";

const REFRESH_MS = 1000;
let timer = null;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function route() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query] = raw.split("?");
  const params = new URLSearchParams(query || "");
  if (params.has("key")) {
    sessionStorage.setItem("executor-key", params.get("key"));
    params.delete("key");
    const rest = params.toString();
    history.replaceState(null, "", "#" + path + (rest ? "?" + rest : ""));
  }
  return { path, params };
}

function key() {
  return sessionStorage.getItem("executor-key");
}

class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.title)) || "HTTP " + status);
    this.status = status;
  }
}

async function api(path) {
  const resp = await fetch(path, { headers: { Authorization: "Bearer " + key() } });
  const body = await resp.json().catch(() => null);
  if (!resp.ok) throw new ApiError(resp.status, body);
  return body;
}

function setLive(ok) {
  const live = document.getElementById("live");
  live.className = "live " + (ok ? "on" : "off");
  live.textContent = ok ? "live" : "disconnected";
}

function ago(iso) {
  if (!iso) return "";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return Math.round(s) + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 86400) return Math.round(s / 3600) + " h ago";
  return new Date(iso).toLocaleString();
}

function ms(n) {
  if (n === null || n === undefined) return "";
  return n < 1000 ? n + " ms" : (n / 1000).toFixed(n < 10000 ? 2 : 1) + " s";
}

function usd(micros) {
  if (micros === null || micros === undefined) return "";
  return "$" + (micros / 1e6).toFixed(4);
}

// The public status (queued, starting, processing, then the outcome, which never changes),
// coloured by what it means; the outcome's delivery is a badge of its own.
const TERMINAL = ["succeeded", "failed", "canceled", "timed_out"];

function statusCell(status) {
  return el("span", { class: "status " + status, "data-status": status, text: status ? status.replace("_", " ") : "" });
}

function deliveryCell(d) {
  if (!d) return el("span", { class: "muted", text: "—" });
  const attempts = d.attempts ? " (" + d.attempts + (d.attempts === 1 ? " attempt)" : " attempts)") : "";
  return el("span", { class: "delivery " + d.state, "data-delivery": d.state, title: d.updated_at, text: d.state + attempts });
}

// Once an execution is terminal its outputs never change: fetched once, kept for the list.
const outputsCache = new Map();

function mediaUrl(o) {
  // A URL, a data: URL, or base64 bytes with their media type (OpenAI's b64_json).
  let url = o.url || null;
  if (!url && typeof o.data === "string") {
    if (o.data.startsWith("data:")) url = o.data;
    else if (o.mime_type && ["image", "audio", "video"].includes(o.kind) && /^[A-Za-z0-9+/=\s]+$/.test(o.data)) url = "data:" + o.mime_type + ";base64," + o.data;
  }
  return url && /^(https?:|data:)/.test(url) ? url : null;
}

function thumbnails(x) {
  const outputs = outputsCache.get(x.id);
  if (!outputs) return x.status === "succeeded" ? el("span", { class: "muted", text: "…" }) : el("span", { class: "muted", text: "—" });
  const nodes = outputs.slice(0, 4).map((o, i) => {
    const url = mediaUrl(o);
    if (url && o.kind === "image") return el("img", { class: "thumb", src: url, alt: "output " + i });
    if (url && o.kind === "video") return el("video", { class: "thumb", src: url, muted: "", preload: "metadata" });
    return el("span", { class: "thumb-text muted", text: o.kind + (o.mime_type ? " " + o.mime_type : "") });
  });
  if (!nodes.length) return el("span", { class: "muted", text: "no outputs" });
  return el("span", { class: "thumbs" }, ...nodes);
}

async function fillOutputs(list) {
  const missing = list.data.filter((x) => x.status === "succeeded" && !outputsCache.has(x.id)).slice(0, 8);
  await Promise.all(
    missing.map(async (x) => {
      const full = await api("/v1/executions/" + encodeURIComponent(x.id));
      outputsCache.set(x.id, full.outputs || []);
    }),
  );
}

function show(...nodes) {
  // replaceChildren turns a null into the text "null": an absent section is left out instead
  // (a failed execution's missing outputs once read "nullnull").
  const view = document.getElementById("view");
  view.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined));
}

function showError(err) {
  if (err instanceof ApiError && err.status === 401) {
    sessionStorage.removeItem("executor-key");
    document.getElementById("key-form").hidden = false;
    show(el("p", { class: "error", text: "The API key was refused: " + err.message }));
  } else {
    setLive(false);
    show(el("p", { class: "error", text: String(err.message || err) }));
  }
}

// --- Executions -----------------------------------------------------------------------------

async function renderList() {
  const list = await api("/v1/executions?limit=50");
  await fillOutputs(list);
  setLive(true);
  const rows = list.data.map((x) =>
    el(
      "tr",
      { class: "row", id: "ex-" + x.id, "data-status": x.status, onclick: () => (location.hash = "#/executions/" + x.id) },
      el("td", {}, el("a", { class: "mono", href: "#/executions/" + x.id, text: x.id })),
      el("td", { text: x.model }),
      el("td", {}, statusCell(x.status)),
      el("td", {}, deliveryCell(x.delivery)),
      el("td", { class: "muted", text: x.shape }),
      el("td", { title: x.created_at, text: ago(x.created_at) }),
      el("td", { class: "outputs-cell" }, x.error ? el("span", { class: "error", text: x.error.class + ": " + x.error.message }) : thumbnails(x)),
      el("td", { text: x.cost ? usd(x.cost.provider_usd_micros) : "" }),
    ),
  );
  const table = el(
    "table",
    { id: "executions" },
    el("thead", {}, el("tr", {}, ...["execution", "model", "status", "delivery", "shape", "created", "outputs", "cost"].map((h) => el("th", { text: h })))),
    el("tbody", {}, ...rows),
  );
  show(
    el("h2", { text: "Recent executions" }),
    rows.length ? table : el("p", { class: "muted", id: "empty", text: "No executions yet. Create one with POST /v1/executions or `executor run`." }),
  );
}

// --- One execution --------------------------------------------------------------------------

function outputNode(o, i) {
  // At its real size (the page scrolls sideways for a larger one).
  const safe = mediaUrl(o);
  let media;
  if (safe && o.kind === "image") media = el("img", { src: safe, alt: "output " + i });
  else if (safe && o.kind === "video") media = el("video", { src: safe, controls: "" });
  else if (safe && o.kind === "audio") media = el("audio", { src: safe, controls: "" });
  else if (o.kind === "text") media = el("pre", { text: typeof o.data === "string" ? o.data : JSON.stringify(o.data) });
  else if (o.data !== null && o.data !== undefined) media = el("pre", { text: JSON.stringify(o.data, null, 2) });
  else media = el("p", { class: "muted", text: o.url ? "not displayable here: " + o.url : "no content" });
  const caption = [o.kind, o.mime_type, o.width && o.height ? o.width + "×" + o.height : null, o.duration_seconds ? o.duration_seconds + " s" : null]
    .filter(Boolean)
    .join(" · ");
  return el(
    "figure",
    { class: "output", "data-kind": o.kind },
    media,
    el("figcaption", {}, caption, safe && !safe.startsWith("data:") ? el("br") : null, safe && !safe.startsWith("data:") ? el("a", { href: safe, text: safe, target: "_blank", rel: "noreferrer" }) : null),
  );
}

function detailText(d) {
  if (d === null || d === undefined) return "";
  if (typeof d !== "object") return String(d);
  return Object.entries(d)
    .filter(([k, v]) => k !== "cost_lines" && v !== null && v !== undefined && !(Array.isArray(v) && v.length === 0))
    .map(([k, v]) => k + "=" + (typeof v === "object" ? JSON.stringify(v) : v))
    .join("  ");
}

// Cost lines (the timeline's finalize detail, the execution's cost) as a small table.
function costTable(lines) {
  if (!Array.isArray(lines) || !lines.length) return null;
  const num = (n) => (typeof n === "number" ? String(Math.round(n * 1e6) / 1e6) : "");
  return el(
    "table",
    { class: "cost-lines" },
    el("thead", {}, el("tr", {}, ...["quantity", "unit", "unit price", "amount", "from"].map((h) => el("th", { text: h })))),
    el(
      "tbody",
      {},
      ...lines.map((l) =>
        el(
          "tr",
          { class: "cost-line" },
          el("td", { class: "num", text: num(l.quantity) }),
          el("td", { text: l.unit }),
          el("td", { class: "num", text: "$" + num(l.unit_price_usd) }),
          el("td", { class: "num", text: usd(l.amount_usd_micros) }),
          el("td", { class: "muted mono", text: l.source || "" }),
        ),
      ),
    ),
  );
}

function timelineRow(t) {
  const calls = (t.calls || []).map((c) =>
    el(
      "span",
      { class: "call mono" },
      c.method + " " + c.url + " → " + (c.status ?? "no answer") + " in " + ms(c.latency_ms) + (c.retried ? " (retried)" : "") + (c.error ? " — " + c.error : ""),
    ),
  );
  const failure = t.failure ? el("span", { class: "error", text: t.failure.class + ": " + t.failure.message }) : null;
  const internal = el("span", { class: "internal muted", title: "the lifecycle's internal statuses (docs/transitions.md)", text: (t.from || "new") + " → " + t.to });
  return el(
    "tr",
    { class: "event", "data-event": t.event },
    el("td", { class: "mono", title: t.at, text: "+" + ms(t.since_created_ms) }),
    el("td", { text: "v" + t.version }),
    el("td", { text: t.action }),
    el("td", { text: t.event }),
    el("td", {}, statusCell(t.status), t.delivery ? " " : null, t.delivery ? deliveryCell({ state: t.delivery }) : null, el("br"), internal),
    el("td", {}, ...calls, failure, el("span", { class: "muted mono", text: detailText(t.detail) }), costTable((t.detail || {}).cost_lines)),
  );
}

async function renderExecution(id) {
  const [x, events] = await Promise.all([api("/v1/executions/" + encodeURIComponent(id)), api("/v1/executions/" + encodeURIComponent(id) + "/events")]);
  setLive(true);
  const facts = [
    ["id", el("span", { class: "mono", text: x.id })],
    ["model", x.model + " (" + x.provider + ", " + x.shape + ")"],
    ["status", statusCell(x.status)],
    ["created", x.created_at + " (" + ago(x.created_at) + ")"],
    ["completed", x.completed_at || ""],
    ["provider job", x.provider_job_id || ""],
    ["provider status", x.provider_status || ""],
    ["waiting", x.waiting ? x.waiting.reason + (x.waiting.detail ? ": " + x.waiting.detail : "") : ""],
    ["error", x.error ? el("span", { class: "error", text: x.error.class + ": " + x.error.message + (x.error.detail ? " — " + x.error.detail : "") }) : ""],
    ["callbacks", (x.callbacks_received || []).length ? x.callbacks_received.length + " received: " + x.callbacks_received.join(", ") : ""],
    ["refused callbacks", (x.callbacks_rejected || []).length ? el("span", { class: "error", text: x.callbacks_rejected.map((r) => r.at + " " + r.reason).join("; ") }) : ""],
    ["delivery", x.delivery ? el("span", {}, deliveryCell(x.delivery), x.delivery.next_attempt_at ? " next attempt " + x.delivery.next_attempt_at : "", x.delivery.last_error ? el("span", { class: "error", text: " — " + x.delivery.last_error }) : null, x.delivery.error ? el("span", { class: "error", text: " — " + x.delivery.error.class + ": " + x.delivery.error.message }) : null) : ""],
    ["cost", x.cost ? el("span", { id: "cost" }, usd(x.cost.provider_usd_micros) + (x.cost.billable ? " (billable)" : " (not billable)"), costTable(x.cost.lines)) : ""],
  ].filter(([, v]) => v !== "");
  const dl = el("dl", { class: "facts" });
  for (const [k, v] of facts) dl.append(el("dt", { text: k }), el("dd", {}, v));
  const outputs = (x.outputs || []).map(outputNode);
  // A terminal execution without outputs says why instead of showing nothing (or worse).
  let noOutputs = null;
  if (!outputs.length && TERMINAL.includes(x.status)) {
    noOutputs = el("p", { class: "muted", id: "no-outputs", text: x.status === "succeeded" ? "The provider returned no outputs." : "No outputs: the execution " + x.status.replace("_", " ") + (x.error ? " (" + x.error.class + ": " + x.error.message + ")." : ".") });
  }
  const timeline = el(
    "table",
    { id: "timeline" },
    el("thead", {}, el("tr", {}, ...["time", "version", "action", "event", "status", "calls, failure, detail"].map((h) => el("th", { text: h })))),
    el("tbody", {}, ...events.data.map(timelineRow)),
  );
  show(
    el("p", {}, el("a", { href: "#/", text: "← executions" })),
    el("h2", { text: "Execution" }),
    dl,
    TERMINAL.includes(x.status) ? el("h2", { text: "Outputs" }) : null,
    outputs.length ? el("div", { class: "outputs", id: "outputs" }, ...outputs) : noOutputs,
    el("h2", { text: "Timeline" }),
    timeline,
  );
  // Settled: the outcome is final and its delivery too (only a redrive changes a degraded one).
  return !!x.delivery && x.delivery.state !== "pending";
}

// --- Failure piles --------------------------------------------------------------------------

async function renderFailures(since) {
  const piles = await api("/v1/failures?since=" + encodeURIComponent(since));
  setLive(true);
  const rows = piles.data.map((p) =>
    el(
      "tr",
      { class: "pile" },
      el("td", { text: p.count }),
      el("td", { class: "error", text: p.error_class }),
      el("td", { text: p.provider }),
      el("td", { text: p.model }),
      el("td", { text: p.message }),
      el("td", { title: p.first_seen, text: ago(p.first_seen) }),
      el("td", { title: p.last_seen, text: ago(p.last_seen) }),
      el("td", {}, el("a", { class: "mono", href: "#/executions/" + p.example_execution_id, text: p.example_execution_id })),
    ),
  );
  show(
    el("h2", { text: "Failure piles, last " + since + " (" + piles.failed + " failed or degraded)" }),
    rows.length
      ? el(
          "table",
          { id: "piles" },
          el("thead", {}, el("tr", {}, ...["count", "class", "provider", "model", "message", "first seen", "last seen", "example"].map((h) => el("th", { text: h })))),
          el("tbody", {}, ...rows),
        )
      : el("p", { class: "muted", text: "No failures in this window." }),
    ...parkedPiles(piles),
  );
}

// Executions the reconciler could not re-drive 5 times in a row (still retried with backoff).
function parkedPiles(piles) {
  const parked = piles.parked_piles || [];
  if (!parked.length) return [];
  const rows = parked.map((p) =>
    el(
      "tr",
      { class: "pile parked" },
      el("td", { text: p.count }),
      el("td", { text: p.status }),
      el("td", { text: p.provider }),
      el("td", { text: p.model }),
      el("td", { text: p.reason }),
      el("td", { text: p.failures }),
      el("td", { title: p.first_failure, text: ago(p.first_failure) }),
      el("td", { title: p.last_failure, text: ago(p.last_failure) }),
      el("td", {}, el("a", { class: "mono", href: "#/executions/" + p.example_execution_id, text: p.example_execution_id })),
    ),
  );
  return [
    el("h2", { text: "Parked by the reconciler (" + piles.parked + ")" }),
    el(
      "table",
      { id: "parked-piles" },
      el("thead", {}, el("tr", {}, ...["count", "status", "provider", "model", "reason", "tries", "first failure", "last failure", "example"].map((h) => el("th", { text: h })))),
      el("tbody", {}, ...rows),
    ),
  ];
}

// --- Router ---------------------------------------------------------------------------------

async function render() {
  clearTimeout(timer);
  const { path, params } = route();
  document.getElementById("nav-executions").className = path === "/" ? "current" : "";
  document.getElementById("nav-failures").className = path === "/failures" ? "current" : "";
  if (!key()) {
    document.getElementById("key-form").hidden = false;
    show();
    return;
  }
  document.getElementById("key-form").hidden = true;
  let again = true;
  try {
    const m = path.match(/^\/executions\/([A-Za-z0-9_]+)$/);
    if (m) again = !(await renderExecution(m[1]));
    else if (path === "/failures") await renderFailures(params.get("since") || "24h");
    else await renderList();
  } catch (err) {
    showError(err);
    if (err instanceof ApiError && err.status < 500) again = false;
  }
  if (again) timer = setTimeout(render, REFRESH_MS);
}

window.addEventListener("hashchange", render);
window.addEventListener("DOMContentLoaded", () => {
  document.getElementById("key-entry").addEventListener("submit", (e) => {
    e.preventDefault();
    const k = document.getElementById("key-input").value.trim();
    if (k) sessionStorage.setItem("executor-key", k);
    render();
  });
  render();
});
