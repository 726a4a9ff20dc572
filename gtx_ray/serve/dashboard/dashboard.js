// gtx_ray campus dashboard: polls the REST API of its own origin (ETag / If-None-Match, so an
// unchanged interval costs a bodiless 304) and updates the page in place. Plain JavaScript and
// inline SVG; no library, nothing fetched from elsewhere. The DOM stays bounded for any fleet:
// the API aggregates by building type and building (at most 100 buildings, 500 meter rows).
"use strict";

(() => {
  const POLL_MS = 1000; // live data and the clock
  const SLOW_EVERY = 5; // 2030.5 status, DR and price: every 5th poll
  const HIDDEN_POLL_MS = 5000; // while the tab is hidden
  const API = {
    now: "api/campus/now",
    today: "api/campus/today",
    clock: "api/simulation",
    ieee: "api/ieee2030_5/status",
    // Answered by the built-in 2030.5 server's registry (503 when it is not running).
    dr: "api/ieee2030_5/dr/events?active=true",
    price: "api/ieee2030_5/tariff",
  };
  const SVG_NS = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);

  // ---- formatting -------------------------------------------------------------------------
  function fmt(value, digits = 1) {
    if (value === null || value === undefined || !Number.isFinite(value)) return "–";
    const [whole, fraction] = Math.abs(value).toFixed(digits).split(".");
    const sign = value < 0 && Number(whole + "." + (fraction || "0")) !== 0 ? "−" : "";
    const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return sign + grouped + (fraction ? "." + fraction : "");
  }

  // A number into an element: the exact value in data-value, the rounded one as text.
  function setNumber(el, value, digits = 1) {
    const raw = value === null || value === undefined ? "" : String(value);
    if (el.dataset.value !== raw) {
      el.dataset.value = raw;
      el.textContent = fmt(value, digits);
    }
  }

  function setText(el, text) {
    if (el.textContent !== text) el.textContent = text;
  }

  let utcOffsetS = null; // the campus's, from /api/campus/today

  function localTime(epochS, withDate = true) {
    if (epochS === null || epochS === undefined) return "–";
    const offset = utcOffsetS ?? 0;
    const iso = new Date((epochS + offset) * 1000).toISOString();
    const text = withDate ? iso.slice(0, 16).replace("T", " ") : iso.slice(11, 16);
    return utcOffsetS === null ? text + " UTC" : text;
  }

  function offsetLabel() {
    if (utcOffsetS === null) return "";
    const sign = utcOffsetS < 0 ? "−" : "+";
    const minutes = Math.abs(utcOffsetS) / 60;
    const hh = String(Math.floor(minutes / 60)).padStart(2, "0");
    const mm = String(minutes % 60).padStart(2, "0");
    return ` (UTC${sign}${hh}:${mm})`;
  }

  // ---- HTTP -------------------------------------------------------------------------------
  const etags = new Map(); // path → ETag of the body below
  const bodies = new Map(); // path → last body with an ETag

  // {status, changed, body}: a 304 gives back the body held for the path, changed = false.
  async function getJSON(path) {
    const headers = { Accept: "application/json" };
    if (etags.has(path)) headers["If-None-Match"] = etags.get(path);
    const response = await fetch(path, { headers, cache: "no-store" });
    if (response.status === 304 && bodies.has(path)) {
      return { status: 200, changed: false, body: bodies.get(path) };
    }
    const type = response.headers.get("content-type") || "";
    const body = type.includes("json") ? await response.json() : null;
    const etag = response.headers.get("ETag");
    if (response.ok && etag) {
      etags.set(path, etag);
      bodies.set(path, body);
    } else {
      etags.delete(path);
      bodies.delete(path);
    }
    return { status: response.status, changed: true, body };
  }

  // ---- the campus now ---------------------------------------------------------------------
  const COLUMNS = [
    ["consumption_kw", 1],
    ["generation_kw", 1],
    ["battery_kw", 1],
    ["battery_level_pct", 1],
    ["import_kw", 1],
    ["export_kw", 1],
    ["curtailed_kw", 1],
  ];

  function numberCells(row) {
    const cells = {};
    for (const [name] of COLUMNS) {
      const td = row.insertCell();
      td.className = "num";
      td.dataset.field = name;
      cells[name] = td;
    }
    return cells;
  }

  function fillNumbers(cells, values) {
    for (const [name, digits] of COLUMNS) setNumber(cells[name], values[name], digits);
  }

  function renderKpis(now) {
    const t = now.totals;
    setNumber($("kpi-consumption"), t.consumption_kw);
    setNumber($("kpi-generation"), t.generation_kw);
    setNumber($("kpi-import"), t.import_kw);
    setNumber($("kpi-export"), t.export_kw);
    setNumber($("kpi-net-grid"), t.net_grid_kw);
    setNumber($("kpi-battery"), t.battery_kw);
    setNumber($("kpi-soc"), t.battery_level_pct);
    setNumber($("kpi-meters"), t.meters, 0);
    setNumber($("kpi-buildings"), t.buildings, 0);
  }

  // Rows (or row groups) keyed by name, updated in place and kept in the order of ``items``
  // right after ``after`` (null: at the start of ``parent``); unlisted ones are removed.
  function syncRows(parent, after, items, keyOf, rowsByKey, create, update) {
    const seen = new Set();
    let previous = after;
    for (const item of items) {
      const key = keyOf(item);
      seen.add(key);
      let entry = rowsByKey.get(key);
      if (!entry) {
        entry = create(item);
        rowsByKey.set(key, entry);
      }
      update(entry, item);
      const expected = previous ? previous.nextSibling : parent.firstChild;
      if (entry.node !== expected) parent.insertBefore(entry.node, expected);
      previous = entry.node;
    }
    for (const [key, entry] of rowsByKey) {
      if (!seen.has(key)) {
        entry.node.remove();
        rowsByKey.delete(key);
      }
    }
  }

  function createTypeRow(t) {
    const node = document.createElement("tr");
    const name = document.createElement("th");
    name.scope = "row";
    name.textContent = t.building_type;
    node.appendChild(name);
    const buildings = node.insertCell();
    const meters = node.insertCell();
    buildings.className = meters.className = "num";
    const cells = numberCells(node);
    node.insertCell(); // DER control: per meter only
    return { node, buildings, meters, cells };
  }

  function updateTypeRow(entry, t) {
    setNumber(entry.buildings, t.buildings, 0);
    setNumber(entry.meters, t.meters, 0);
    fillNumbers(entry.cells, t);
  }

  // A building is a tbody: its totals row, then its meters' rows.
  function createBuilding(b) {
    const node = document.createElement("tbody");
    node.className = "building";
    node.dataset.building = b.building;
    const head = node.insertRow();
    head.className = "building-row";
    const name = document.createElement("th");
    name.scope = "rowgroup";
    name.textContent = b.building;
    head.appendChild(name);
    const type = head.insertCell();
    type.textContent = b.building_type;
    const meters = head.insertCell();
    meters.className = "num";
    const cells = numberCells(head);
    head.insertCell(); // DER control: per meter only
    return { node, head, meters, cells, meterRows: new Map() };
  }

  function createMeterRow(m) {
    const node = document.createElement("tr");
    node.className = "meter-row";
    node.dataset.meter = m.meter_id;
    const name = document.createElement("th");
    name.scope = "row";
    name.textContent = m.meter_id;
    node.appendChild(name);
    const type = node.insertCell();
    type.textContent = `${m.meter_type.replace("_", " ")}, floor ${m.floor}`;
    node.insertCell();
    const cells = numberCells(node);
    const der = node.insertCell();
    der.className = "der";
    return { node, cells, der };
  }

  // The DER control modes holding a meter ("event: export_limit", "none"; empty without a DER).
  function updateMeterRow(row, m) {
    fillNumbers(row.cells, m);
    const text = m.der_control ?? "";
    setText(row.der, text);
    row.der.dataset.der = text;
    row.der.classList.toggle("controlled", text.startsWith("event"));
  }

  function updateBuilding(entry, b) {
    setNumber(entry.meters, b.meters, 0);
    fillNumbers(entry.cells, b);
    syncRows(
      entry.node,
      entry.head,
      b.meter_rows || [],
      (m) => m.meter_id,
      entry.meterRows,
      createMeterRow,
      updateMeterRow,
    );
  }

  const typeRows = new Map();
  const buildingGroups = new Map();

  function renderTables(now) {
    syncRows($("types").tBodies[0], null, now.building_types, (t) => t.building_type, typeRows, createTypeRow, updateTypeRow);
    const table = $("buildings");
    syncRows(table, table.tHead, now.buildings, (b) => b.building, buildingGroups, createBuilding, updateBuilding);
    let note;
    if (now.buildings_order === "consumption") {
      note = `the ${fmt(now.buildings.length, 0)} largest consumers of ${fmt(now.buildings_total, 0)}`;
    } else {
      note = `all ${fmt(now.buildings_total, 0)}`;
    }
    if (now.meter_rows_shown < now.meter_rows_total) {
      note += `; meters of ${fmt(now.meter_rows_shown, 0)} of ${fmt(now.meter_rows_total, 0)} shown`;
    }
    setText($("buildings-note"), `(${note})`);
  }

  let latestNow = null; // the last /api/campus/now, for the DR and price lines

  let lastDr = null; // the last answers of the slow endpoints, drawn again with each new frame
  let lastPrice = null;

  function renderNow(now) {
    latestNow = now;
    setText($("curtailed"), `${fmt(now.curtailed_kw ?? null, 1)} kW`);
    if (lastDr) renderDr(lastDr);
    if (lastPrice) renderPrice(lastPrice);
    setText($("campus"), now.campus);
    renderKpis(now);
    renderTables(now);
    setText($("sim-interval"), localTime(Date.parse(now.timestamp) / 1000) + offsetLabel());
    document.body.dataset.interval = now.timestamp;
    // for tests and the curious: milliseconds from navigation to the first data on screen
    document.body.dataset.firstRenderMs ??= String(Math.round(performance.now()));
  }

  // ---- charts -----------------------------------------------------------------------------
  const W = 800;
  const H = 260;
  const PAD = { left: 58, right: 46, top: 12, bottom: 28 };

  function svg(name, attributes, parent) {
    const el = document.createElementNS(SVG_NS, name);
    for (const [k, v] of Object.entries(attributes)) el.setAttribute(k, v);
    if (parent) parent.appendChild(el);
    return el;
  }

  function niceRange(lo, hi) {
    if (!(hi > lo)) {
      hi = lo + 1;
    }
    const step0 = (hi - lo) / 4;
    const magnitude = 10 ** Math.floor(Math.log10(step0));
    const step = [1, 2, 5, 10].map((f) => f * magnitude).find((s) => s >= step0);
    return { lo: Math.floor(lo / step) * step, hi: Math.ceil(hi / step) * step, step };
  }

  // One chart = persistent groups (grid, lines); a redraw replaces the grid's few children and
  // the lines' "d", so the DOM does not grow however long the page stays open.
  function makeChart(el, series) {
    svg("rect", { class: "plot", x: PAD.left, y: PAD.top, width: W - PAD.left - PAD.right, height: H - PAD.top - PAD.bottom }, el);
    const grid = svg("g", { class: "grid" }, el);
    const lines = {};
    for (const s of series) lines[s.key] = svg("path", { class: `line ${s.cls}`, d: "" }, el);
    const empty = svg("text", { class: "empty", x: W / 2, y: H / 2, "text-anchor": "middle" }, el);
    return { el, grid, lines, series, empty };
  }

  function drawChart(chart, today) {
    const { grid, lines, series } = chart;
    const times = today.timestamp.map((t) => Date.parse(t) / 1000);
    const dayStart = today.date ? Date.parse(today.date + "T00:00:00Z") / 1000 - today.utc_offset_s : 0;
    const x = (t) => PAD.left + ((t - dayStart) / 86400) * (W - PAD.left - PAD.right);
    let lo = 0;
    let hi = 0;
    for (const s of series) {
      if (s.axis === "right") continue;
      for (const v of today[s.key]) {
        if (v === null) continue;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
    const left = niceRange(lo, hi);
    const plotH = H - PAD.top - PAD.bottom;
    const yLeft = (v) => PAD.top + (1 - (v - left.lo) / (left.hi - left.lo)) * plotH;
    const yRight = (v) => PAD.top + (1 - v / 100) * plotH;

    const parts = [];
    for (let v = left.lo; v <= left.hi + left.step / 2; v += left.step) {
      const y = yLeft(v).toFixed(1);
      parts.push(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, class: v === 0 ? "zero" : "" }));
      const label = svg("text", { x: PAD.left - 6, y: Number(y) + 4, "text-anchor": "end" });
      label.textContent = fmt(v, Math.max(0, -Math.floor(Math.log10(left.step))));
      parts.push(label);
    }
    if (series.some((s) => s.axis === "right")) {
      for (const v of [0, 50, 100]) {
        const label = svg("text", { x: W - PAD.right + 6, y: yRight(v) + 4, "text-anchor": "start", class: "right" });
        label.textContent = `${v}%`;
        parts.push(label);
      }
    }
    for (let h = 0; h <= 24; h += 3) {
      const xx = x(dayStart + h * 3600).toFixed(1);
      parts.push(svg("line", { x1: xx, x2: xx, y1: PAD.top, y2: H - PAD.bottom, class: "vertical" }));
      const label = svg("text", { x: xx, y: H - PAD.bottom + 16, "text-anchor": "middle" });
      label.textContent = `${String(h).padStart(2, "0")}:00`;
      parts.push(label);
    }
    grid.replaceChildren(...parts);

    for (const s of series) {
      const y = s.axis === "right" ? yRight : yLeft;
      let d = "";
      let pen = "M";
      today[s.key].forEach((v, i) => {
        if (v === null) {
          pen = "M";
          return;
        }
        d += `${pen}${x(times[i]).toFixed(1)},${y(v).toFixed(1)}`;
        pen = "L";
      });
      lines[s.key].setAttribute("d", d);
    }
    chart.empty.textContent = times.length ? "" : "no intervals yet today";
  }

  let powerChart = null;
  let batteryChart = null;

  function renderToday(today) {
    utcOffsetS = today.utc_offset_s;
    powerChart ??= makeChart($("chart-power"), [
      { key: "consumption_kw", cls: "consumption" },
      { key: "generation_kw", cls: "generation" },
      { key: "net_grid_kw", cls: "net-grid" },
    ]);
    batteryChart ??= makeChart($("chart-battery"), [
      { key: "battery_kw", cls: "battery" },
      { key: "battery_level_pct", cls: "soc", axis: "right" },
    ]);
    drawChart(powerChart, today);
    drawChart(batteryChart, today);
    for (const el of document.querySelectorAll(".today-date")) setText(el, today.date || "today");
    document.body.dataset.todayPoints = String(today.points);
  }

  // ---- clock and controls -----------------------------------------------------------------
  function renderClock(result) {
    const state = $("sim-state");
    if (result.status !== 200) {
      setText(state, result.status === 503 ? "starting" : `unavailable (${result.status})`);
      state.dataset.state = "unavailable";
      return;
    }
    const c = result.body;
    setText($("sim-time"), localTime(c.next_start_s) + offsetLabel());
    setText($("sim-speed"), c.speed === "max" ? "max" : `${fmt(c.speed, c.speed < 10 ? 1 : 0)}×`);
    let text = "running";
    if (c.error) text = "error";
    else if (c.finished) text = "finished";
    else if (c.paused) text = "paused";
    else if (!c.running) text = "stopped";
    setText(state, text);
    state.dataset.state = text;
    $("pause").disabled = text !== "running";
    $("resume").disabled = text !== "paused";
  }

  async function control(command) {
    const message = $("control-message");
    const headers = { "Content-Type": "application/json" };
    const token = sessionStorage.getItem("gtx-admin-token");
    if (token) headers.Authorization = `Bearer ${token}`;
    setText(message, "…");
    try {
      const response = await fetch(API.clock, { method: "POST", headers, body: JSON.stringify(command), cache: "no-store" });
      const body = await response.json().catch(() => null);
      if (response.status === 403) {
        $("token-label").hidden = false;
        setText(message, (body && body.error) || "refused");
        return;
      }
      setText(message, response.ok ? "" : (body && body.error) || `HTTP ${response.status}`);
      if (response.ok) renderClock({ status: 200, body });
    } catch (err) {
      setText(message, `no answer: ${err.message}`);
    }
  }

  function wireControls() {
    $("pause").addEventListener("click", () => control({ action: "pause" }));
    $("resume").addEventListener("click", () => control({ action: "resume" }));
    $("speed-select").addEventListener("change", (event) => {
      const value = event.target.value;
      event.target.value = "";
      if (value) control({ speed: value === "max" ? "max" : Number(value) });
    });
    $("token").addEventListener("change", (event) => {
      sessionStorage.setItem("gtx-admin-token", event.target.value);
    });
    $("show-meters").addEventListener("change", (event) => {
      $("buildings").classList.toggle("hide-meters", !event.target.checked);
    });
  }

  // ---- 2030.5, DR and price ---------------------------------------------------------------
  function renderIeee(result) {
    if (result.status !== 200 || !result.body) {
      setText($("ieee-server"), `unavailable (${result.status})`);
      return;
    }
    const s = result.body;
    let server = "not running";
    if (s.running) server = `running${s.port ? ` on port ${s.port}` : ""}`;
    else if (s.enabled) server = "enabled, not listening";
    setText($("ieee-server"), server);
    setNumber($("ieee-devices"), s.registered_devices ?? null, 0);
    setNumber($("ieee-posts-ok"), s.clients ? s.clients.posts_ok : null, 0);
    setNumber($("ieee-posts-failed"), s.clients ? s.clients.posts_failed : null, 0);
  }

  // Active demand-response events: "20 % cut, 14:00–15:00 (2 meters)"; none: "none".
  function describeEvents(events) {
    if (!events.length) return "none";
    return events
      .map((e) => {
        const cut = e.reduction_pct != null ? `${fmt(e.reduction_pct, 0)} % cut`
          : e.reduction_kw != null ? `${fmt(e.reduction_kw, 0)} kW cut`
          : e.duty_cycle_pct != null ? `cooling duty cycle ${fmt(e.duty_cycle_pct, 0)} %`
          : `cooling +${fmt(e.cooling_offset_c, 0)} °C`;
        const reach = e.targets ? `${e.targets.length} meter${e.targets.length === 1 ? "" : "s"}` : "all meters";
        return `${cut} until ${localTime(e.end)} (${reach})`;
      })
      .join("; ");
  }

  // The tariff in force: "4.58 THB/kWh on-peak 09:00–22:00, 3.00 off-peak".
  function describeTariff(body) {
    const t = body && body.in_force;
    if (!t) return "none";
    const hour = (h) => `${String(Math.floor(h)).padStart(2, "0")}:${String(Math.round((h % 1) * 60)).padStart(2, "0")}`;
    const on = t.on_peak_thb_per_kwh + t.ft_thb_per_kwh;
    const off = t.off_peak_thb_per_kwh + t.ft_thb_per_kwh;
    return `${fmt(on, 2)} THB/kWh on-peak ${hour(t.on_peak_start_hour)}–${hour(t.on_peak_end_hour)} weekdays, ${fmt(off, 2)} off-peak`;
  }

  // What the meters do, from the readings: the fallback when no 2030.5 server answers.
  function describeShedding(now) {
    if (!now || !now.meters_shedding) return "none";
    return `${now.meters_shedding} meter${now.meters_shedding === 1 ? "" : "s"} cutting ${fmt(now.shed_kw, 1)} kW`;
  }

  function renderDr(result) {
    lastDr = result;
    const el = $("dr-event");
    const events = result.status === 200 && result.body ? result.body.result : null;
    setText(el, events ? describeEvents(events) : describeShedding(latestNow));
    el.dataset.status = String(result.status);
  }

  // The price in force (from the readings) and, when the server publishes it, the tariff.
  function renderPrice(result) {
    lastPrice = result;
    const el = $("price");
    const parts = [];
    if (latestNow && latestNow.price_thb_per_kwh != null) parts.push(`${fmt(latestNow.price_thb_per_kwh, 2)} THB/kWh now`);
    if (result.status === 200 && result.body) parts.push(describeTariff(result.body.result));
    setText(el, parts.length ? parts.join("; ") : "none");
    el.dataset.status = String(result.status);
  }

  // ---- the poll loop ----------------------------------------------------------------------
  let polls = 0;

  async function poll() {
    const slow = polls % SLOW_EVERY === 0;
    const wanted = { now: API.now, today: API.today, clock: API.clock };
    if (slow) Object.assign(wanted, { ieee: API.ieee, dr: API.dr, price: API.price });
    const names = Object.keys(wanted);
    const results = await Promise.allSettled(names.map((n) => getJSON(wanted[n])));
    const got = {};
    const failures = [];
    names.forEach((n, i) => {
      if (results[i].status === "fulfilled") got[n] = results[i].value;
      else failures.push(`${wanted[n]}: ${results[i].reason.message || results[i].reason}`);
    });

    if (got.today && got.today.status === 200 && got.today.changed) renderToday(got.today.body);
    if (got.now) {
      if (got.now.status === 200 && got.now.changed) renderNow(got.now.body);
      else if (got.now.status === 503) setText($("updated"), (got.now.body && got.now.body.error) || "starting");
    }
    if (got.clock) renderClock(got.clock);
    if (got.ieee) renderIeee(got.ieee);
    if (got.dr) renderDr(got.dr);
    if (got.price) renderPrice(got.price);

    const banner = $("banner");
    banner.hidden = failures.length === 0;
    setText(banner, failures.length ? `The API does not answer (${failures[0]}); retrying…` : "");
    if (got.now && got.now.status === 200) {
      setText($("updated"), `updated ${new Date().toLocaleTimeString()} · interval ${got.now.body.timestamp}`);
    }
    polls += 1;
    document.body.dataset.polls = String(polls);
  }

  async function loop() {
    try {
      await poll();
    } catch (err) {
      const banner = $("banner");
      banner.hidden = false;
      setText(banner, `Dashboard error: ${err.message}`);
    }
    setTimeout(loop, document.hidden ? HIDDEN_POLL_MS : POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", () => {
    wireControls();
    loop();
  });
})();
