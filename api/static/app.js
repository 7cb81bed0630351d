// The visits page: plain DOM code, no framework and no build step, so that the
// binary can embed it as is. Every call goes to the same origin, so whichever
// task the load balancer picks answers it: that is what the page shows.
"use strict";

const $ = (id) => document.getElementById(id);
const REQUEST_TIMEOUT_MS = 15000;
const METRICS_EVERY_MS = 3000;
const VISITS_EVERY_MS = 5000;
const HEALTH_EVERY_MS = 5000;
const BURST_SIZE = 50;

/** One request with a timeout; never throws: network failures come back as status 0. */
async function call(path, options = {}, timeoutMs = REQUEST_TIMEOUT_MS) {
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), timeoutMs);
  try {
    const res = await fetch(path, {
      cache: "no-store",
      ...options,
      signal: ctrl.signal,
      headers: { Accept: "application/json", ...(options.headers || {}) },
    });
    const text = await res.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch { body = { message: text }; }
    return { status: res.status, ok: res.ok, body, headers: res.headers };
  } catch (err) {
    const timedOut = err && err.name === "AbortError";
    return { status: 0, ok: false, body: null, headers: new Headers(), timedOut };
  } finally {
    clearTimeout(timer);
  }
}

/** The serving task of a response: the API's header, else a field of the JSON body. */
function taskOf(body, headers) {
  const fromHeader = headers && (headers.get("x-served-by") || headers.get("x-task-id"));
  if (fromHeader) return fromHeader;
  if (!body || typeof body !== "object") return null;
  for (const key of ["served_by", "task", "task_id", "taskId", "instance", "host"]) {
    const v = body[key];
    if (typeof v === "string" && v) return v;
    if (v && typeof v === "object" && typeof v.id === "string") return v.id;
  }
  return null;
}

/**
 * One colour per task, the same on every card: tasks get the palette's colours
 * in the order the page first meets them (so a handful of tasks never share a
 * colour), then hashed hues once the palette runs out.
 */
const PALETTE = ["#2f6fde", "#e0651b", "#1f9d55", "#c0357b", "#7b4fd6",
  "#0f9bb0", "#b8860b", "#d33f3f", "#5b7a1a", "#8a5a44"];
const taskColours = new Map();
function colourOf(task) {
  let colour = taskColours.get(task);
  if (!colour) {
    if (taskColours.size < PALETTE.length) colour = PALETTE[taskColours.size];
    else {
      let h = 2166136261;
      for (let i = 0; i < task.length; i++) { h ^= task.charCodeAt(i); h = Math.imul(h, 16777619); }
      colour = `hsl(${(h >>> 0) % 360} 68% 45%)`;
    }
    taskColours.set(task, colour);
  }
  return colour;
}

/** Short task names keep lists readable: ECS task ids are 32 hex digits. */
function shortTask(task) {
  const last = String(task).split("/").pop();
  return last.length > 16 ? last.slice(0, 12) + "…" : last;
}

function taskBadge(task) {
  const el = document.createElement("span");
  el.className = "task-badge";
  if (task) {
    el.textContent = shortTask(task);
    el.title = task;
    el.style.setProperty("--c", colourOf(task));
  } else {
    el.textContent = "unknown task";
  }
  return el;
}

function say(id, text, kind) {
  const el = $(id);
  el.textContent = text;
  if (kind) el.dataset.kind = kind; else delete el.dataset.kind;
}

function setBusy(button, busy) {
  button.disabled = busy;
  button.setAttribute("aria-busy", String(busy));
}

/** What a failed call means to a person. 503 from this API means its database is unreachable. */
function failure(res, what) {
  if (res.status === 0) return res.timedOut ? `${what}: the service did not answer in time.` : `${what}: the service is unreachable.`;
  if (res.status === 503) return `${what}: database unavailable (503). Try again in a moment.`;
  const detail = res.body && (res.body.message || res.body.error);
  return `${what}: the service answered ${res.status}${detail ? ` (${String(detail).slice(0, 120)})` : ""}.`;
}

// ---- health -------------------------------------------------------------
function showHealth(state, text) {
  const el = $("health");
  el.dataset.state = state;
  el.textContent = text;
}

async function refreshHealth() {
  // /health answers 200 while the process serves (the load balancer's check must not fail
  // for a database outage or a drain); its body says how the database is and whether the
  // task drains.
  const res = await call("/health");
  const body = res.body || {};
  if (res.ok && body.database === "unreachable") showHealth("degraded", "Database unavailable");
  else if (res.ok && body.draining === true) showHealth("degraded", "This task is draining");
  else if (res.ok) showHealth("ok", "Service healthy");
  else if (res.status === 0) showHealth("error", "Service unreachable");
  else showHealth("error", `Service error (${res.status})`);
}

// ---- visits -------------------------------------------------------------
function visitTime(v) {
  const raw = v.at || v.created_at || v.visited_at || v.timestamp || v.time;
  const d = raw ? new Date(raw) : null;
  return d && !isNaN(d) ? d : null;
}

function renderVisits(body) {
  const total = Number(body.total ?? body.count ?? 0);
  $("total").textContent = total.toLocaleString();
  const recent = Array.isArray(body.recent) ? body.recent.slice(0, 10) : [];
  const list = $("recent");
  list.replaceChildren(...recent.map((v) => {
    const li = document.createElement("li");
    li.append(taskBadge(taskOf(v)));
    const when = visitTime(v);
    const t = document.createElement("time");
    if (when) { t.dateTime = when.toISOString(); t.textContent = when.toLocaleTimeString(); }
    else t.textContent = v.id != null ? `#${v.id}` : "";
    li.append(t);
    return li;
  }));
  $("recent-empty").hidden = recent.length > 0;
}

async function refreshVisits() {
  const res = await call("/api/visits");
  const total = $("total");
  if (res.ok && res.body) {
    renderVisits(res.body);
    delete total.dataset.stale;
    say("visits-load-status", "");
  } else {
    // Keep the last numbers on screen, greyed, and say why they are not fresh.
    total.dataset.stale = "true";
    say("visits-load-status", failure(res, "Could not load visits"), "error");
    if (res.status === 503) showHealth("degraded", "Database unavailable");
  }
}

// The API takes visit posts as JSON only (a cross-site form cannot send that type).
const VISIT = { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" };

async function registerVisit() {
  const button = $("register");
  setBusy(button, true);
  say("visit-status", "Registering…", "busy");
  const res = await call("/api/visit", VISIT);
  if (res.ok) {
    const task = taskOf(res.body, res.headers);
    say("visit-status", task ? `Visit registered, served by task ${shortTask(task)}` : "Visit registered", "ok");
    await refreshVisits();
  } else {
    say("visit-status", failure(res, "Visit not registered"), "error");
    if (res.status === 503) showHealth("degraded", "Database unavailable");
  }
  setBusy(button, false);
}

// ---- 50 concurrent requests ----------------------------------------------
function renderSpread(counts, failed) {
  const entries = [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const served = entries.reduce((n, [, c]) => n + c, 0);
  const bar = $("spread-bar");
  bar.replaceChildren(...entries.map(([task, c]) => {
    const seg = document.createElement("span");
    seg.style.setProperty("--c", colourOf(task));
    seg.style.flexGrow = String(c);
    return seg;
  }));
  bar.hidden = entries.length === 0;
  const list = $("spread-list");
  list.replaceChildren(...entries.map(([task, c]) => {
    const li = document.createElement("li");
    li.dataset.task = task;
    const count = document.createElement("span");
    count.className = "count";
    count.textContent = `${c} request${c === 1 ? "" : "s"}`;
    li.append(taskBadge(task), count);
    return li;
  }));
  const tasks = entries.length;
  const summary = `${served} of ${BURST_SIZE} served by ${tasks} task${tasks === 1 ? "" : "s"}` +
    (failed ? `; ${failed} failed` : "") + ".";
  say("spread-status", summary, failed ? "error" : "ok");
}

async function burst() {
  const button = $("burst");
  setBusy(button, true);
  say("spread-status", `Sending ${BURST_SIZE} requests…`, "busy");
  const results = await Promise.all(
    Array.from({ length: BURST_SIZE }, () => call("/api/visit", VISIT)),
  );
  const counts = new Map();
  let failed = 0;
  for (const res of results) {
    if (!res.ok) { failed++; continue; }
    const task = taskOf(res.body, res.headers) || "unknown";
    counts.set(task, (counts.get(task) || 0) + 1);
  }
  renderSpread(counts, failed);
  if (results.some((r) => r.status === 503)) showHealth("degraded", "Database unavailable");
  setBusy(button, false);
  refreshVisits();
}

// ---- serving task metrics -------------------------------------------------
function pick(obj, keys) {
  for (const k of keys) if (obj[k] != null && !isNaN(Number(obj[k]))) return Number(obj[k]);
  return null;
}

function setMeter(id, percent) {
  const el = $(id);
  const p = percent == null ? 0 : Math.max(0, Math.min(100, percent));
  el.style.width = `${p}%`;
  el.classList.toggle("hot", p >= 80);
}

function formatBytes(n) {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(1)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(0)} MiB`;
  return `${(n / 1024).toFixed(0)} KiB`;
}

function renderMetrics(m, headers) {
  const task = taskOf(m, headers);
  $("task-id").replaceWith(Object.assign(taskBadge(task), { id: "task-id" }));
  const cpu = pick(m, ["cpu_percent", "cpu_utilization", "cpu_pct", "cpu"]);
  $("cpu").textContent = cpu == null ? "n/a" : `${cpu.toFixed(0)} %`;
  setMeter("cpu-meter", cpu);
  const memPct = pick(m, ["memory_percent", "memory_utilization", "mem_percent"]);
  const memBytes = pick(m, ["memory_bytes", "rss_bytes", "memory_rss_bytes"]);
  const memMb = pick(m, ["memory_mb", "memory_mib", "rss_mb"]);
  let memText = "n/a";
  if (memBytes != null) memText = formatBytes(memBytes);
  else if (memMb != null) memText = `${memMb.toFixed(0)} MiB`;
  if (memPct != null) memText = memText === "n/a" ? `${memPct.toFixed(0)} %` : `${memText} (${memPct.toFixed(0)} %)`;
  $("mem").textContent = memText;
  setMeter("mem-meter", memPct);
  const inflight = pick(m, ["in_flight", "inflight", "in_flight_requests"]);
  $("inflight").textContent = inflight == null ? "n/a" : String(inflight);
}

async function refreshMetrics() {
  const res = await call("/api/metrics");
  if (res.ok && res.body) {
    renderMetrics(res.body, res.headers);
    say("metrics-status", `Updated ${new Date().toLocaleTimeString()}`);
  } else {
    say("metrics-status", failure(res, "Metrics unavailable"), "error");
  }
}

// ---- CPU test -------------------------------------------------------------
/** The API answers /api/stress only once the burn is over, so the wait is the duration plus slack. */
async function startStress(event) {
  event.preventDefault();
  const input = $("stress-token");
  const token = input.value.trim();
  if (!token) {
    input.setAttribute("aria-invalid", "true");
    say("stress-status", "Enter the stress token first.", "error");
    input.focus();
    return;
  }
  const secs = Math.round(Number($("stress-seconds").value));
  if (!(secs >= 1 && secs <= 60)) {
    say("stress-status", "The duration must be between 1 and 60 seconds.", "error");
    $("stress-seconds").focus();
    return;
  }
  const button = $("stress");
  setBusy(button, true);
  say("stress-status", `CPU test running for ${secs} s on one task…`, "busy");
  const res = await call("/api/stress", {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ duration_s: secs }),
  }, (secs + 30) * 1000);
  if (res.ok) {
    input.removeAttribute("aria-invalid");
    const task = taskOf(res.body, res.headers);
    const burned = res.body && res.body.burned_s;
    say("stress-status", `CPU test done${task ? `: task ${shortTask(task)}` : ""} burned ${burned ?? secs} s of CPU.`, "ok");
  } else if (res.status === 401) {
    input.setAttribute("aria-invalid", "true");
    say("stress-status", "Wrong stress token: the service refused it (401).", "error");
    input.focus();
  } else if (res.status === 403) {
    say("stress-status", "The CPU test is switched off on this service (no stress token is configured).", "error");
  } else if (res.status === 429) {
    say("stress-status", "That task is already running as many CPU tests as it allows; try again shortly.", "error");
  } else {
    say("stress-status", failure(res, "CPU test failed"), "error");
  }
  setBusy(button, false);
}

// ---- wiring ---------------------------------------------------------------
/** Runs `fn` now and then every `ms`, skipping ticks while the tab is hidden. */
function every(ms, fn) {
  let running = false;
  const tick = async () => {
    if (running || document.hidden) return;
    running = true;
    try { await fn(); } finally { running = false; }
  };
  tick();
  setInterval(tick, ms);
}

document.addEventListener("DOMContentLoaded", () => {
  $("register").addEventListener("click", registerVisit);
  $("burst").addEventListener("click", burst);
  $("stress-form").addEventListener("submit", startStress);
  $("stress-token").addEventListener("input", (e) => e.target.removeAttribute("aria-invalid"));
  every(HEALTH_EVERY_MS, refreshHealth);
  every(VISITS_EVERY_MS, refreshVisits);
  every(METRICS_EVERY_MS, refreshMetrics);
});
