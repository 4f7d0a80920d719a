// twinchain dashboard: one small vanilla module per page, rendered from the dashboard's JSON
// endpoints (which enforce the chain's read rights); live updates over server-sent events.
// Text goes in with textContent only: nothing the chain holds is ever parsed as HTML.

const $ = (sel, root = document) => root.querySelector(sel);
const csrf = () => $('meta[name="csrf"]')?.content || "";
const main = () => $("#main");
const put = (root, ...kids) => root.replaceChildren(...kids.flat().filter((k) => k !== null && k !== undefined && k !== false));

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

async function api(path, opts = {}) {
  const init = { credentials: "same-origin", headers: { Accept: "application/json" }, ...opts };
  if (opts.body !== undefined) {
    init.method = "POST";
    init.headers = { ...init.headers, "Content-Type": "application/json", "X-CSRF-Token": csrf() };
    init.body = JSON.stringify(opts.body);
  }
  const r = await fetch(path, init);
  const data = r.headers.get("content-type")?.includes("json") ? await r.json() : await r.text();
  if (!r.ok) {
    if (r.status === 401 && document.body.dataset.page !== "login") location.href = "/login";
    const err = new Error(data?.error?.message || `HTTP ${r.status}`);
    err.status = r.status;
    err.code = data?.error?.code;
    throw err;
  }
  return data;
}

const fmtTime = (ms) => (ms ? new Date(ms).toLocaleString() : "–");
const fmtIn = (ms) => {
  if (!ms) return "–";
  const d = ms - Date.now();
  if (d <= 0) return "due now";
  const m = Math.round(d / 60000);
  return m < 120 ? `in ${m} min` : `in ${Math.round(m / 60)} h`;
};
const fmtDur = (ms) => (ms == null ? "–" : ms < 120000 ? `${Math.round(ms / 1000)} s` : ms < 7200000 ? `${Math.round(ms / 60000)} min` : ms < 172800000 ? `${(ms / 3600000).toFixed(1)} h` : `${(ms / 86400000).toFixed(1)} days`);
const pct = (v) => (v == null ? "–" : `${v.toFixed(1)} %`);

// Status is text and icon, with colour as a third cue, never the only one.
const STATUS = {
  OK: ["✔", "ok"],
  WARNING: ["▲", "warn"],
  ALARM: ["✖", "alarm"],
  MAINTENANCE: ["⚙", "maint"],
  "active-unacknowledged": ["✖", "alarm"],
  acknowledged: ["▲", "warn"],
  cleared: ["✔", "ok"],
};
function badge(status) {
  const [icon, cls] = STATUS[status] || ["•", "neutral"];
  return el("span", { class: `badge ${cls}`, "data-status": status }, `${icon} ${status}`);
}

function table(cols, rows, rowAttrs = () => ({})) {
  return el(
    "table",
    {},
    el("thead", {}, el("tr", {}, cols.map((c) => el("th", { scope: "col" }, c[0])))),
    el("tbody", {}, rows.map((r) => el("tr", rowAttrs(r), cols.map((c) => el("td", { "data-col": c[0] }, c[1](r)))))),
  );
}

function showError(where, e) {
  put(where, el("p", { class: "error", role: "alert" }, `⚠ ${e.message}`));
}

// -------------------------------------------------------------------------- live updates
const live = { source: null, handlers: [] };
function connectLive(twin) {
  const url = twin == null ? "/api/events" : `/api/events?twin=${twin}`;
  live.source?.close();
  const src = new EventSource(url);
  live.source = src;
  src.addEventListener("head", (ev) => {
    const d = JSON.parse(ev.data);
    $("#live").textContent = `● finalized #${d.number}`;
    $("#live").className = "live on";
    for (const h of live.handlers) h(d);
  });
  src.onerror = () => {
    $("#live").textContent = "○ reconnecting…";
    $("#live").className = "live off";
  };
}
const onHead = (fn) => live.handlers.push(fn);

// -------------------------------------------------------------------------- sign-in
async function pageLogin(root) {
  const c = await api("/api/login/challenge");
  const chText = JSON.stringify(c);
  const sig = el("textarea", { id: "signature", rows: 4, placeholder: '{"account": …, "signature": …}' });
  const key = el("input", { id: "apikey", type: "password", autocomplete: "off", placeholder: "API key" });
  const status = el("p", { id: "login-status", role: "status" });
  const go = async (body) => {
    try {
      await api("/api/login", { body });
      location.href = "/";
    } catch (e) {
      status.textContent = `⚠ ${e.message}`;
      status.className = "error";
    }
  };
  put(root, 
    el("h1", {}, "Sign in"),
    el("section", { class: "card" },
      el("h2", {}, "With your key"),
      el("p", {}, "Sign this challenge where your key lives, then paste the answer. Or run ",
        el("code", {}, `twinchain dashboard login --url ${location.origin} --key KEY`),
        " for a one-time sign-in link."),
      el("pre", { id: "challenge" }, chText),
      el("p", {}, el("code", {}, "twinchain dashboard sign --key KEY"), " (paste the challenge, it prints the answer)"),
      sig,
      el("button", { id: "signin", onclick: () => {
        let auth;
        try { auth = JSON.parse(sig.value); } catch { status.textContent = "⚠ the answer must be the JSON the command printed"; return; }
        go({ challenge: c.nonce, auth });
      } }, "Sign in"),
    ),
    el("section", { class: "card" },
      el("h2", {}, "With an API key"),
      el("p", {}, "A key the node's operator issued (twinchain node api-key create)."),
      key,
      el("button", { id: "signin-apikey", onclick: () => go({ apiKey: key.value }) }, "Sign in with API key"),
    ),
    status,
  );
}

// -------------------------------------------------------------------------- overview
async function pageOverview(root) {
  const fac = document.body.dataset.facility;
  const state = { filter: "", status: "", scope: fac ? fac : "all" };
  let data = null;
  const tiles = el("div", { class: "tiles" });
  const list = el("div", { id: "machines" });
  const render = () => {
    if (!data) return;
    const rows = data.machines.filter(
      (m) =>
        (!state.filter || `${m.name} ${m.facilityName} ${m.class}`.toLowerCase().includes(state.filter)) &&
        (!state.status || m.status === state.status),
    );
    const count = (s) => data.machines.filter((m) => m.status === s).length;
    put(tiles, 
      ...["OK", "WARNING", "ALARM", "MAINTENANCE"].map((s) =>
        el("div", { class: `tile ${STATUS[s][1]}` }, el("div", { class: "big" }, count(s)), badge(s)),
      ),
    );
    put(list, 
      table(
        [
          ["Machine", (m) => el("a", { href: `/machine/${m.id}` }, m.name)],
          ["Facility", (m) => m.facilityName],
          ["Status", (m) => badge(m.status)],
          ["Health", (m) => el("span", { class: "big-num" }, m.health == null ? "–" : `${m.health.toFixed(0)} %`)],
          ["Open alarms", (m) => el("span", { class: "big-num" }, m.openAlarms + (m.unacknowledged ? ` (${m.unacknowledged} new)` : ""))],
          ["Next maintenance", (m) => (m.nextMaintenance ? fmtIn(m.nextMaintenance) : m.failureBy ? `before ${fmtTime(m.failureBy)}` : "none planned")],
        ],
        rows,
        (m) => ({ "data-twin": m.id }),
      ),
    );
  };
  const load = async () => {
    try {
      data = await api(`/api/overview?facility=${state.scope}`);
      render();
    } catch (e) {
      showError(list, e);
    }
  };
  const filter = el("input", { id: "filter", type: "search", placeholder: "Filter machines", oninput: (e) => { state.filter = e.target.value.toLowerCase(); render(); } });
  const status = el("select", { id: "status-filter", onchange: (e) => { state.status = e.target.value; render(); } },
    el("option", { value: "" }, "every status"), ...["OK", "WARNING", "ALARM", "MAINTENANCE"].map((s) => el("option", { value: s }, s)));
  const scope = el("select", { id: "scope", onchange: (e) => { state.scope = e.target.value; load(); } },
    el("option", { value: fac || "all" }, fac ? "this facility" : "every facility"), el("option", { value: "all" }, "every facility"));
  put(root, el("h1", {}, "Plant overview"), tiles, el("div", { class: "filters" }, filter, status, scope), list);
  performance.mark("overview-start");
  await load();
  performance.mark("overview-drawn");
  window.__overviewMs = performance.measure("overview", "overview-start", "overview-drawn").duration;
  let pending = false;
  onHead(() => {
    if (pending) return;
    pending = true;
    setTimeout(async () => { pending = false; await load(); }, 300);
  });
  connectLive(null);
}

// -------------------------------------------------------------------------- machine
const RANGES = { "5 min": 300e3, "1 h": 3600e3, "24 h": 86400e3, "7 days": 7 * 86400e3, "30 days": 30 * 86400e3 };

async function pageMachine(root) {
  const twin = Number(location.pathname.split("/").pop());
  const m = await api(`/api/machines/${twin}`);
  const params = new URLSearchParams(location.search);
  const chartBox = el("div", { id: "chart", class: "chart" });
  const chartInfo = el("p", { id: "chart-info", class: "muted", role: "status" });
  const liveValue = el("div", { id: "live-value", class: "big" }, "–");
  const metricSel = el("select", { id: "metric" },
    m.metrics.map((x) => el("option", { value: x.name, disabled: !x.readable }, `${x.name}${x.unit ? ` (${x.unit})` : ""}${x.public ? "" : x.readable ? " · private" : " · private, no access"}`)));
  const first = params.get("metric") || (m.metrics.find((x) => x.public) || m.metrics.find((x) => x.readable))?.name;
  if (first) metricSel.value = first;
  const rangeSel = el("select", { id: "range" }, Object.keys(RANGES).map((k) => el("option", { value: k }, k)));
  rangeSel.value = params.get("range") || "1 h";
  const sourceSel = el("select", { id: "source" }, el("option", { value: "raw" }, "raw readings"), el("option", { value: "windows" }, "window means (chain)"));
  let plot = null;
  let series = null;
  const draw = async (from, to) => {
    const metric = metricSel.value;
    const span = RANGES[rangeSel.value];
    const hi = to ?? Date.now() + (params.get("to") ? 0 : 0);
    const lo = from ?? hi - span;
    const width = Math.max(300, chartBox.clientWidth || 800);
    performance.mark("chart-start");
    window.__chartDone = false;
    try {
      const q = new URLSearchParams({ metric, from: Math.floor(lo), to: Math.ceil(params.get("to") && to == null ? Number(params.get("to")) : hi), width, source: sourceSel.value });
      if (params.get("from") && from == null) q.set("from", params.get("from"));
      series = await api(`/api/machines/${twin}/series?${q}`);
    } catch (e) {
      chartInfo.textContent = `⚠ ${e.message}`;
      chartInfo.className = "error";
      plot?.destroy();
      plot = null;
      return;
    }
    const info = m.metrics.find((x) => x.name === metric) || {};
    const opts = {
      width, height: 360,
      scales: { x: { time: true } },
      axes: [{ stroke: "#ddd", grid: { stroke: "#333" } }, { stroke: "#ddd", grid: { stroke: "#333" }, size: 70 }],
      series: [{}, { label: `${metric}${info.unit ? ` (${info.unit})` : ""}`, stroke: "#4fc3f7", width: 2 }],
      cursor: { drag: { x: true, y: false } },
      // uPlot draws in a microtask after its constructor: the measure ends in its draw hook.
      hooks: { draw: [() => { if (!window.__chartDone) { window.__chartDone = true; performance.mark("chart-drawn"); window.__chartMs = performance.measure("chart", "chart-start", "chart-drawn").duration; } }], setSelect: [(u) => { if (u.select.width > 4) { const a = u.posToVal(u.select.left, "x"), b = u.posToVal(u.select.left + u.select.width, "x"); draw(a * 1000, b * 1000); } }] },
    };
    plot?.destroy();
    plot = new uPlot(opts, [series.t, series.v], chartBox);
    chartInfo.className = "muted";
    chartInfo.textContent = `${series.total.toLocaleString()} readings, ${series.points.toLocaleString()} drawn · ${series.source} · drag to zoom, double-click to reset`;
    chartBox.dataset.points = series.points;
    chartBox.dataset.total = series.total;
  };
  for (const s of [metricSel, rangeSel, sourceSel]) s.addEventListener("change", () => draw());
  chartBox.addEventListener("dblclick", () => draw());
  const prog = m.alarms.filter((a) => a.state !== "cleared");
  const progBox = prog.length
    ? prog.map((a) => {
        const p = a.prognosis;
        return el("div", { class: "card prog", "data-alarm": a.id },
          el("div", { class: "big" }, `${a.probability.toFixed(0)} %`),
          el("p", {}, `chance of ${a.kind}${a.metric ? ` (${a.metric})` : ""} within ${fmtDur(a.horizonMs)}`),
          p ? el("p", { class: "big-num" }, `remaining life P10 ${fmtDur(p.rulP10Ms)} · P50 ${fmtDur(p.rulP50Ms)} · P90 ${fmtDur(p.rulP90Ms)}`) : null,
          p ? el("p", { class: "muted" }, `failure mode ${p.mode}`) : null,
          badge(a.state));
      })
    : [el("p", { class: "ok-text" }, "✔ no open alarm: no failure predicted")];
  put(root, 
    el("h1", {}, m.name, " ", badge(m.status)),
    el("div", { class: "tiles" },
      el("div", { class: "tile" }, el("div", { class: "big" }, m.health == null ? "–" : `${m.health.toFixed(0)} %`), "health"),
      el("div", { class: "tile" }, liveValue, el("span", { id: "live-label" }, "latest reading")),
      el("div", { class: "tile" }, el("div", { class: "big" }, m.alarms.filter((a) => a.state !== "cleared").length), "open alarms"),
      el("div", { class: "tile" }, el("div", { class: "big", id: "oee" }, m.facilityReports.length ? pct(m.facilityReports[m.facilityReports.length - 1].oee) : m.kpis.length ? pct(m.kpis[m.kpis.length - 1].oee) : "–"), m.facilityReports.length ? "OEE (last facility report)" : "OEE (last period, chain)"),
    ),
    el("section", { class: "card" }, el("h2", {}, "Readings"), el("div", { class: "filters" }, metricSel, rangeSel, sourceSel), chartBox, chartInfo),
    el("section", {}, el("h2", {}, "Failure risk and remaining life"), ...progBox),
    el("section", { class: "card" }, el("h2", {}, "KPI and OEE trend"), el("div", { id: "kpi-chart", class: "chart" }),
      m.kpis.length ? null : el("p", { class: "muted" }, "no closed KPI period yet")),
    el("section", { class: "card", id: "facility-reports" }, el("h2", {}, "Facility KPI reports (from private readings)"),
      m.facilityReports.length
        ? table([["Window", (r) => `${new Date(r.from).toLocaleTimeString()}–${new Date(r.to).toLocaleTimeString()}`], ["OEE", (r) => pct(r.oee)], ["Availability", (r) => pct(r.availability)],
            ["Performance", (r) => pct(r.performance)], ["Quality", (r) => pct(r.quality)], ["Units", (r) => r.units ?? "–"], ["Energy / good (mWh)", (r) => r.energyPerGood ?? "–"], ["Alerts", (r) => r.alerts]], m.facilityReports)
        : el("p", { class: "muted" }, m.mayReadPrivate ? "no report anchored yet" : "🔒 the chain does not let you read this machine's facility reports")),
    el("section", { class: "card" }, el("h2", {}, "Maintenance history"),
      table([["Order", (o) => `#${o.id}`], ["Kind", (o) => o.kind], ["Status", (o) => o.status], ["Created", (o) => fmtTime(o.createdAt)], ["Provider", (o) => o.provider || "–"]], m.orders),
      m.serviceHistory.length ? el("pre", {}, JSON.stringify(m.serviceHistory, null, 1)) : null),
    el("section", { class: "card" }, el("h2", {}, "Provenance"),
      table([["#", (p) => p.index ?? "–"], ["Event", (p) => p.kind || p.event || JSON.stringify(p)], ["Block", (p) => p.block ?? "–"]], m.provenance.slice(-20)),
      el("p", { class: "muted" }, `chain head of the provenance: ${m.provenanceHead || "–"}`)),
    el("section", { class: "card" }, el("h2", {}, "Documents"),
      m.documents.length
        ? table([["Kind", (d) => d.kind], ["Hash", (d) => el("a", { href: `/api/machines/${twin}/documents/${d.hash}` }, d.hash.slice(0, 18) + "…")]], m.documents)
        : el("p", { id: "documents-hidden", class: "muted" }, m.documentsHidden ? `🔒 ${m.documentsHidden} document(s): the chain does not let you read this machine's documents` : "no documents")),
  );
  if (m.kpis.length) {
    const k = m.kpis.filter((r) => r.period != null);
    new uPlot({ width: Math.max(300, root.clientWidth - 40), height: 220, scales: { x: { time: false } },
      axes: [{ stroke: "#ddd" }, { stroke: "#ddd" }],
      series: [{ label: "period" }, { label: "OEE %", stroke: "#81c784", width: 2 }, { label: "availability %", stroke: "#ffb74d", width: 2, dash: [6, 4] }, { label: "quality %", stroke: "#ce93d8", width: 2, dash: [2, 3] }] },
      [k.map((r) => r.period), k.map((r) => r.oee), k.map((r) => r.availability), k.map((r) => r.quality)], $("#kpi-chart"));
  }
  await draw();
  onHead((d) => {
    const metric = m.metrics.find((x) => x.name === metricSel.value);
    const mine = (d.readings || []).filter((r) => metric && r.metric === metric.id);
    if (!mine.length) return;
    const last = mine[mine.length - 1];
    liveValue.textContent = `${last.v.toFixed(2)}${metric.unit ? " " + metric.unit : ""}`;
    $("#live-label").textContent = `${metric.name}, ${new Date(last.t * 1000).toLocaleTimeString()}`;
    window.__lastLive = { number: d.number, seenAt: d.seenAt, shownAt: Date.now(), t: last.t };
    if (plot && series && sourceSel.value === "raw" && !params.get("to")) {
      series.t.push(...mine.map((r) => r.t));
      series.v.push(...mine.map((r) => r.v));
      plot.setData([series.t, series.v]);
    }
  });
  connectLive(twin);
}

// -------------------------------------------------------------------------- alarms
function signDialog(prep, onDone) {
  const sig = el("textarea", { id: "sign-signature", rows: 2, placeholder: "0x… (the signature the command printed)" });
  const status = el("p", { id: "sign-status", role: "status" });
  const dlg = el("dialog", { id: "sign-dialog" },
    el("h2", {}, prep.description),
    el("p", {}, "This action is recorded on chain and signed by you. Sign it where your key lives: copy this request into ",
      el("code", {}, "twinchain dashboard sign --key YOUR_KEY"), ", then paste the signature."),
    el("pre", { id: "sign-request" }, JSON.stringify(prep.request)),
    sig,
    el("div", { class: "row" },
      el("button", { id: "sign-submit", onclick: async () => {
        status.textContent = "submitting, waiting for finality…";
        try {
          const r = await api(`/api/actions/${prep.action}/submit`, { body: { signature: sig.value.trim() } });
          status.textContent = `✔ finalized in ${r.block.slice(0, 12)}… (${r.events.join(", ")})`;
          status.className = "ok-text";
          setTimeout(() => { dlg.close(); dlg.remove(); onDone(); }, 600);
        } catch (e) {
          status.textContent = `⚠ ${e.message}`;
          status.className = "error";
        }
      } }, "Submit signed action"),
      el("button", { class: "ghost", onclick: () => { dlg.close(); dlg.remove(); } }, "Cancel"),
    ),
    status,
  );
  document.body.append(dlg);
  dlg.showModal();
}

async function startAction(body, onDone) {
  try {
    signDialog(await api("/api/actions", { body }), onDone);
  } catch (e) {
    alert(e.message);
  }
}

async function pageAlarms(root) {
  const fac = document.body.dataset.facility;
  const list = el("div", { id: "alarms" });
  const stateSel = el("select", { id: "state-filter" }, el("option", { value: "" }, "every state"),
    ...["active-unacknowledged", "acknowledged", "cleared"].map((s) => el("option", { value: s }, s)));
  const load = async () => {
    let d;
    try {
      d = await api(`/api/alarms?facility=${fac || "all"}&state=${stateSel.value}`);
    } catch (e) {
      return showError(list, e);
    }
    const can = new Set(d.actions);
    put(list, 
      d.alarms.length === 0 ? el("p", { class: "ok-text" }, "✔ no alarms") :
      table(
        [
          ["#", (a) => a.id],
          ["Machine", (a) => el("a", { href: `/machine/${a.twin}` }, a.machine)],
          ["State", (a) => badge(a.state)],
          ["What", (a) => `${a.kind}${a.metric ? ` · ${a.metric}` : ""}${a.probability ? ` · ${a.probability.toFixed(0)} % within ${fmtDur(a.horizonMs)}` : ""}`],
          ["Raised", (a) => fmtTime(a.raisedAt)],
          ["Assignee", (a) => a.assignee || "–"],
          ["Notes", (a) => [a.acknowledgedBy ? `✔ ack by ${a.acknowledgedBy.slice(0, 10)}…` : "", ...a.comments.map((c) => `💬 ${c.text}`)].filter(Boolean).join(" · ") || "–"],
          ["Work order", (a) => (a.workOrder != null ? el("a", { href: "/orders" }, `#${a.workOrder}`) : "–")],
          ["", (a) => el("div", { class: "row" },
            a.state === "active-unacknowledged" && can.has("acknowledge_alert") ? el("button", { class: "ack", onclick: () => startAction({ kind: "acknowledge", alert: a.id }, load) }, "Acknowledge") : null,
            a.state !== "cleared" && can.has("assign_alert") ? el("button", { class: "assign ghost", onclick: () => { const who = prompt("Assign to (address)"); if (who) startAction({ kind: "assign", alert: a.id, account: who }, load); } }, "Assign") : null,
            a.state !== "cleared" && can.has("comment_alert") ? el("button", { class: "comment ghost", onclick: () => { const t = prompt("Comment"); if (t) startAction({ kind: "comment", alert: a.id, text: t }, load); } }, "Comment") : null,
            a.state !== "cleared" && a.workOrder == null && can.has("create_from_alert") ? el("button", { class: "order ghost", onclick: () => startAction({ kind: "create_order", alert: a.id }, load) }, "Work order") : null,
          )],
        ],
        d.alarms,
        (a) => ({ "data-alarm": a.id, "data-state": a.state }),
      ),
    );
  };
  stateSel.addEventListener("change", load);
  put(root, el("h1", {}, "Alarms"), el("div", { class: "filters" }, stateSel), list);
  await load();
  let pending = false;
  onHead(() => { if (!pending && !$("#sign-dialog")) { pending = true; setTimeout(async () => { pending = false; await load(); }, 200); } });
  connectLive(null);
}

// -------------------------------------------------------------------------- work orders
const ORDER_STEPS = ["Created", "Assigned", "Scheduled", "InProgress", "Claimed", "Verified"]; // Claimed: the provider says it is done; Verified: the telemetry or an inspector agrees
async function pageOrders(root) {
  const fac = document.body.dataset.facility;
  const list = el("div", { id: "orders" });
  const load = async () => {
    try {
      const d = await api(`/api/orders?facility=${fac || "all"}`);
      put(list, d.orders.length === 0 ? el("p", {}, "no work orders yet: create one from an alarm") :
        table(
          [
            ["#", (o) => o.id],
            ["Machine", (o) => el("a", { href: `/machine/${o.twin}` }, o.machine)],
            ["From alarm", (o) => (o.alert == null ? "–" : `#${o.alert}`)],
            ["Progress", (o) => el("ol", { class: "steps" }, ORDER_STEPS.map((s) => el("li", { class: ORDER_STEPS.indexOf(s) <= ORDER_STEPS.indexOf(o.status) ? "done" : "" }, ORDER_STEPS.indexOf(s) <= ORDER_STEPS.indexOf(o.status) ? `✔ ${s}` : s)))],
            ["Status", (o) => el("strong", {}, o.status)],
            ["Escrow", (o) => o.payment],
            ["Verification", (o) => `${o.verification}${o.okWindows ? ` (${o.okWindows} good windows)` : ""}`],
            ["Provider", (o) => o.provider || "–"],
          ],
          d.orders,
          (o) => ({ "data-order": o.id }),
        ));
    } catch (e) {
      showError(list, e);
    }
  };
  put(root, el("h1", {}, "Work orders"), list);
  await load();
  onHead(load);
  connectLive(null);
}

// -------------------------------------------------------------------------- reports
async function pageReports(root) {
  const fac = document.body.dataset.facility;
  const d = await api(`/api/reports?facility=${fac || "all"}`);
  const cols = [["Machine", (r) => r.machine], ["Period", (r) => r.period], ["OEE", (r) => pct(r.oee)], ["Availability", (r) => pct(r.availability)],
    ["Performance", (r) => pct(r.performance)], ["Quality", (r) => pct(r.quality)], ["Energy / good unit (mWh)", (r) => r.energyPerGood ?? "–"], ["MTBF", (r) => fmtDur(r.mtbf)], ["MTTR", (r) => fmtDur(r.mttr)]];
  put(root, 
    el("h1", {}, "KPI report"),
    el("div", { class: "row no-print" },
      el("a", { id: "csv", class: "button", href: `/api/reports.csv?facility=${fac || "all"}`, download: "kpi-report.csv" }, "⬇ CSV"),
      el("button", { id: "print", onclick: () => window.print() }, "🖶 Print")),
    el("p", { class: "muted" }, `Periods of ${fmtDur(d.periodMs)} computed on chain by the Analytics pallet from public window aggregates; finalized block #${d.head?.number ?? "–"}.`),
    d.facility && d.facility.length ? el("section", { class: "card" }, el("h2", {}, "Facility"), table(cols.slice(1), d.facility)) : null,
    el("section", { class: "card" }, el("h2", {}, "Machines"), d.rows.length ? table(cols, d.rows) : el("p", {}, "no closed period yet")),
  );
  connectLive(null);
}

// -------------------------------------------------------------------------- network
async function pageNetwork(root) {
  const load = async () => {
    const d = await api("/api/network");
    put(root, 
      el("h1", {}, "Network"),
      el("div", { class: "tiles" },
        el("div", { class: "tile" }, el("div", { class: "big" }, `#${d.best}`), "best block"),
        el("div", { class: "tile" }, el("div", { class: "big", id: "finalized" }, `#${d.finalized}`), "finalized"),
        el("div", { class: "tile" }, el("div", { class: "big" }, d.best - d.finalized), "blocks behind"),
        el("div", { class: "tile" }, el("div", { class: "big" }, d.peers), "peers")),
      el("section", { class: "card" }, el("h2", {}, "Facilities"),
        table([["#", (f) => f.id], ["Name", (f) => f.name], ["Verified", (f) => (f.verified ? badge("OK") : el("span", { class: "badge alarm" }, "✖ not verified"))], ["Validator", (f) => f.validator], ["Operator", (f) => f.operator]], d.facilities)),
      el("section", { class: "card" }, el("h2", {}, "Validators (authority set)"), el("ul", {}, d.validators.map((v) => el("li", {}, el("code", {}, v))))),
      el("section", { class: "card" }, el("h2", {}, "Peers of this node"),
        d.peerList.length ? table([["Peer", (p) => p.peerId], ["Roles", (p) => p.roles], ["Best", (p) => p.best]], d.peerList) : el("p", {}, `${d.peers} peers`)),
      el("p", { class: "muted" }, `chain ${d.chain}, genesis ${d.genesis}`),
    );
  };
  await load();
  let t = 0;
  onHead(() => { if (Date.now() - t > 2000) { t = Date.now(); load(); } });
  connectLive(null);
}

// -------------------------------------------------------------------------- boot
const PAGES = { login: pageLogin, overview: pageOverview, machine: pageMachine, alarms: pageAlarms, orders: pageOrders, reports: pageReports, network: pageNetwork };
document.querySelectorAll("nav a").forEach((a) => { if (a.dataset.nav === document.body.dataset.page) a.setAttribute("aria-current", "page"); });
$("#logout")?.addEventListener("click", async () => { await api("/api/logout", { body: {} }); location.href = "/login"; });
const page = PAGES[document.body.dataset.page];
page(main()).then(() => { window.__readyMs = performance.now(); document.body.dataset.ready = "1"; }, (e) => { showError(main(), e); document.body.dataset.ready = "error"; });
