// AgentPulse dashboard: plain JS over the collector's JSON API. No framework, no build step, no CDN.
"use strict";

(function () {
  const view = document.getElementById("view");
  const KEY_STORE = "agentpulse.apiKey";
  const TZ = -new Date().getTimezoneOffset();
  const PALETTE = ["#3157d5", "#7a4fd6", "#1f9d55", "#d98300", "#d33a3a", "#0f9fb5", "#b5489a", "#6b8e23", "#8c6d31", "#5a6b7d"];
  let refreshTimer = null;
  let renderSeq = 0;

  // -- helpers ------------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const el = tag === "svg" || attrs && attrs.svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false || k === "svg") continue;
      if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (k === "text") el.textContent = String(v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function s(tag, attrs, ...children) {
    return h(tag, Object.assign({ svg: true }, attrs), ...children);
  }

  function money(v) {
    if (v === null || v === undefined) return "—";
    const n = Number(v);
    if (n === 0) return "$0.00";
    if (Math.abs(n) < 0.01) return "$" + n.toFixed(4);
    return "$" + n.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }

  function num(v) {
    if (v === null || v === undefined) return "—";
    const n = Number(v);
    if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(1) + "M";
    if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + "k";
    return n.toLocaleString();
  }

  function dur(ms) {
    if (ms === null || ms === undefined) return "—";
    const n = Number(ms);
    if (n < 1000) return Math.round(n) + " ms";
    if (n < 60000) return (n / 1000).toFixed(n < 10000 ? 2 : 1) + " s";
    if (n < 3600000) return Math.floor(n / 60000) + " min " + Math.round((n % 60000) / 1000) + " s";
    return (n / 3600000).toFixed(1) + " h";
  }

  function when(ts) {
    if (!ts) return "—";
    return new Date(ts * 1000).toLocaleString();
  }

  function ago(ts) {
    if (!ts) return "—";
    const d = Date.now() / 1000 - ts;
    const a = Math.abs(d);
    let t;
    if (a < 60) t = Math.round(a) + " s";
    else if (a < 3600) t = Math.round(a / 60) + " min";
    else if (a < 86400) t = Math.round(a / 3600) + " h";
    else t = Math.round(a / 86400) + " d";
    return d < 0 ? "in " + t : t + " ago";
  }

  function pct(v) {
    return v === null || v === undefined ? "—" : (100 * v).toFixed(v < 0.1 ? 1 : 0) + "%";
  }

  function badge(status) {
    const st = String(status || "none");
    return h("span", { class: "badge " + st.replace(/[^a-z_]/g, ""), "data-status": st }, st.replace("_", " "));
  }

  function card(metric, label, value, sub) {
    return h("div", { class: "card", "data-metric": metric },
      h("div", { class: "label" }, label), h("div", { class: "value" }, value), sub ? h("div", { class: "sub" }, sub) : null);
  }

  // Replace the page's content; null / false children are skipped, arrays are flattened.
  function show(...children) {
    view.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  }

  function empty(text) {
    return h("div", { class: "empty" }, text);
  }

  function qs(params) {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") p.set(k, v);
    const t = p.toString();
    return t ? "?" + t : "";
  }

  function go(hash) {
    if (location.hash === hash) render();
    else location.hash = hash;
  }

  class AuthNeeded extends Error {}

  async function api(path) {
    const headers = { Accept: "application/json" };
    const key = localStorage.getItem(KEY_STORE);
    if (key) headers.Authorization = "Bearer " + key;
    const resp = await fetch(path, { headers });
    if (resp.status === 401) {
      askKey();
      throw new AuthNeeded("API key needed");
    }
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new Error(body.message || resp.status + " " + resp.statusText);
    return body;
  }

  function askKey() {
    const dlg = document.getElementById("keydlg");
    if (!dlg.open) dlg.showModal();
  }

  document.getElementById("keyform").addEventListener("submit", () => {
    const v = document.getElementById("keyinput").value.trim();
    if (v) localStorage.setItem(KEY_STORE, v);
    setTimeout(render, 0);
  });
  document.getElementById("refresh").addEventListener("click", () => render());

  // -- charts -------------------------------------------------------------------------

  function dayRange(days) {
    const out = [];
    const now = new Date();
    for (let i = days - 1; i >= 0; i--) {
      const d = new Date(now.getFullYear(), now.getMonth(), now.getDate() - i);
      const m = String(d.getMonth() + 1).padStart(2, "0");
      const dd = String(d.getDate()).padStart(2, "0");
      out.push(d.getFullYear() + "-" + m + "-" + dd);
    }
    return out;
  }

  function colorFor(keys) {
    const map = {};
    keys.forEach((k, i) => { map[k] = PALETTE[i % PALETTE.length]; });
    return map;
  }

  // Stacked bars: one bar per day, one segment per model. Drawn as inline SVG.
  function costChart(rows, days) {
    const labels = dayRange(days);
    const models = [...new Set(rows.map((r) => r.model))].sort();
    const colors = colorFor(models);
    const byDay = {};
    for (const r of rows) {
      (byDay[r.day] = byDay[r.day] || {})[r.model] = (byDay[r.day][r.model] || 0) + Number(r.cost_usd || 0);
    }
    const totals = labels.map((d) => Object.values(byDay[d] || {}).reduce((a, b) => a + b, 0));
    const max = Math.max(...totals, 0) || 1;
    const W = 900, H = 240, L = 64, B = 28, T = 10;
    const bw = (W - L - 10) / labels.length;
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "LLM spend per day by model", class: "cost-chart" });
    for (const f of [0, 0.5, 1]) {
      const y = T + (H - T - B) * (1 - f);
      svg.appendChild(s("line", { x1: L, x2: W - 5, y1: y, y2: y, class: "axis" }));
      svg.appendChild(s("text", { x: L - 6, y: y + 4, "text-anchor": "end" }, money(max * f)));
    }
    const every = Math.ceil(labels.length / 12);
    labels.forEach((d, i) => {
      const x = L + i * bw;
      let y = H - B;
      for (const m of models) {
        const v = (byDay[d] || {})[m] || 0;
        if (!v) continue;
        const hgt = (H - T - B) * (v / max);
        y -= hgt;
        svg.appendChild(s("rect", { x: x + bw * 0.15, y, width: bw * 0.7, height: Math.max(hgt, 0.5), fill: colors[m], "data-day": d, "data-model": m },
          s("title", {}, `${d} · ${m}: ${money(v)}`)));
      }
      if (i % every === 0) svg.appendChild(s("text", { x: x + bw / 2, y: H - 8, "text-anchor": "middle" }, d.slice(5)));
    });
    const legend = h("div", { class: "legend" }, models.map((m) => {
      const el = h("span", {}, m);
      el.style.setProperty("--swatch", colors[m]);
      return el;
    }));
    return h("div", { class: "chart" }, svg, legend);
  }

  function sparkline(points) {
    const W = 120, H = 24;
    const vals = points.map((p) => Number(p.size || 0));
    if (vals.length < 2) return h("span", { class: "muted" }, "—");
    const min = Math.min(...vals), max = Math.max(...vals);
    const span = max - min || 1;
    const pts = vals.map((v, i) => `${(i / (vals.length - 1)) * W},${H - 2 - ((v - min) / span) * (H - 4)}`).join(" ");
    return s("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H }, s("polyline", { points: pts, fill: "none", stroke: "currentColor", "stroke-width": 1.5 }));
  }

  // -- views --------------------------------------------------------------------------

  function traceTable(traces, id) {
    if (!traces.length) return empty("No sessions yet. Run an agent with agentpulse.init() pointed at this collector.");
    return h("table", { id },
      h("thead", {}, h("tr", {},
        h("th", {}, "Started"), h("th", {}, "Name"), h("th", {}, "Kind"), h("th", {}, "Agent"), h("th", {}, "Status"),
        h("th", { class: "num" }, "Duration"), h("th", { class: "num" }, "LLM calls"), h("th", { class: "num" }, "Tokens in / out"),
        h("th", { class: "num" }, "Cost"), h("th", { class: "num" }, "Errors"))),
      h("tbody", {}, traces.map((t) => h("tr", { class: "link", "data-trace": t.trace_id, onclick: () => go("#/trace/" + encodeURIComponent(t.trace_id)) },
        h("td", { title: when(t.start) }, ago(t.start)),
        h("td", {}, h("a", { href: "#/trace/" + encodeURIComponent(t.trace_id) }, t.name || t.session || t.trace_id)),
        h("td", { class: "muted" }, t.root_kind),
        h("td", {}, t.agent || "—"),
        h("td", {}, badge(t.status)),
        h("td", { class: "num" }, dur(t.duration_ms)),
        h("td", { class: "num" }, num(t.llm_calls)),
        h("td", { class: "num" }, num(t.input_tokens) + " / " + num(t.output_tokens)),
        h("td", { class: "num" }, money(t.cost_usd)),
        h("td", { class: "num" }, t.errors ? h("span", { class: "badge error" }, t.errors) : "0")))));
  }

  function cronTable(monitors) {
    if (!monitors.length) return empty("No cron monitors yet. Wrap a job in agentpulse.cron(\"name\", schedule=...).");
    return h("table", { id: "crons-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "Monitor"), h("th", {}, "Status"), h("th", {}, "Schedule"), h("th", {}, "Last run"),
        h("th", { class: "num" }, "Duration"), h("th", {}, "Next expected"), h("th", { class: "num" }, "Runs"),
        h("th", { class: "num" }, "Missed"), h("th", { class: "num" }, "Failures"))),
      h("tbody", {}, monitors.map((m) => {
        const last = m.last_run || {};
        return h("tr", { class: "link", "data-monitor": m.monitor, onclick: () => go("#/cron/" + encodeURIComponent(m.monitor)) },
          h("td", {}, h("a", { href: "#/cron/" + encodeURIComponent(m.monitor) }, m.monitor)),
          h("td", {}, badge(m.status), m.running ? [" ", badge("running")] : null),
          h("td", { class: "mono" }, m.schedule || "—", m.timezone ? h("span", { class: "muted" }, " " + m.timezone) : null),
          h("td", { title: when(last.start) }, last.start ? [ago(last.start), " ", badge(last.status)] : "—"),
          h("td", { class: "num" }, dur(last.duration_ms)),
          h("td", { title: when(m.next_expected) }, m.next_expected ? ago(m.next_expected) : "—"),
          h("td", { class: "num" }, num(m.runs)),
          h("td", { class: "num" }, num(m.missed)),
          h("td", { class: "num" }, num(m.failures)));
      })));
  }

  function alertTable(alerts) {
    if (!alerts.length) return empty("No alerts.");
    return h("table", { id: "alerts-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "When"), h("th", {}, "Severity"), h("th", {}, "Alert"), h("th", {}, "Rule"),
        h("th", {}, "Agent"), h("th", {}, "Webhook"))),
      h("tbody", {}, alerts.map((a) => {
        const trace = a.details && a.details.trace_id;
        return h("tr", { "data-alert": a.id },
          h("td", { title: when(a.ts) }, ago(a.ts)),
          h("td", {}, badge(a.severity)),
          h("td", {}, trace ? h("a", { href: "#/trace/" + encodeURIComponent(trace) }, a.title) : a.title),
          h("td", { class: "muted" }, a.rule),
          h("td", {}, a.agent || "—"),
          h("td", { title: a.last_error || "" }, badge(a.delivery), a.attempts > 1 ? h("span", { class: "muted" }, ` ×${a.attempts}`) : null));
      })));
  }

  async function viewOverview(seq) {
    const [o, recent, costs] = await Promise.all([
      api("/api/overview" + qs({ tz_offset: TZ })),
      api("/api/traces" + qs({ limit: 10 })),
      api("/api/costs" + qs({ group_by: "day,model", since: Date.now() / 1000 - 7 * 86400, tz_offset: TZ })),
    ]);
    if (seq !== renderSeq) return;
    const c = o.crons;
    const cronSub = `${c.missed} missed · ${c.overran} overran · ${c.failing} failing`;
    show(
      h("h1", {}, "Overview"),
      h("div", { class: "cards" },
        card("spend_today", "Spend today", money(o.spend_today), `${num(o.input_tokens_today)} in / ${num(o.output_tokens_today)} out tokens`),
        card("spend_week", "Spend this week", money(o.spend_week), `${num(o.calls_week)} calls`),
        card("calls_today", "LLM calls today", num(o.calls_today), `${num(o.errors_today)} failed`),
        card("error_rate", "Error rate today", pct(o.error_rate_today), `${num(o.failed_traces_today)} of ${num(o.traces_today)} sessions failed`),
        card("cron_health", "Cron health", `${c.ok}/${c.ok + c.missed + c.overran + c.failing} ok`, cronSub),
        card("alerts", "Alerts (24 h)", num(o.alerts_24h), o.recent_alerts.length ? o.recent_alerts[0].title : "none")),
      h("h2", {}, "Spend, last 7 days"),
      h("div", { class: "panel" }, costs.rows.length ? costChart(costs.rows, 7) : empty("No LLM spend in the last 7 days.")),
      h("h2", {}, "Recent sessions ", h("a", { href: "#/sessions", class: "muted" }, "all →")),
      h("div", { class: "panel" }, traceTable(recent.traces, "recent-table")),
      h("h2", {}, "Crons ", h("a", { href: "#/crons", class: "muted" }, "all →")),
      h("div", { class: "panel" }, cronTable(o.cron_monitors)),
      h("h2", {}, "Recent alerts ", h("a", { href: "#/alerts", class: "muted" }, "all →")),
      h("div", { class: "panel" }, alertTable(o.recent_alerts)));
  }

  const RANGES = { "1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400, all: 0 };

  async function viewSessions(seq, params) {
    const range = params.get("range") || "7d";
    const offset = Number(params.get("offset") || 0);
    const filters = {
      agent: params.get("agent") || "",
      session: params.get("session") || "",
      status: params.get("status") || "",
      min_cost: params.get("min_cost") || "",
    };
    const since = RANGES[range] ? Date.now() / 1000 - RANGES[range] : "";
    const [facets, page] = await Promise.all([
      api("/api/facets"),
      api("/api/traces" + qs(Object.assign({ since, limit: 50, offset }, filters))),
    ]);
    if (seq !== renderSeq) return;
    const sel = (name, options, value) => h("select", { name },
      options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)));
    const form = h("form", { class: "filters", id: "session-filters", onsubmit: (ev) => {
      ev.preventDefault();
      const fd = new FormData(ev.target);
      const p = new URLSearchParams();
      for (const [k, v] of fd.entries()) if (v) p.set(k, v);
      go("#/sessions?" + p.toString());
    } },
      h("label", {}, "Agent", sel("agent", [["", "any"], ...facets.agents.map((a) => [a.agent, a.agent])], filters.agent)),
      h("label", {}, "Session", sel("session", [["", "any"], ...facets.sessions.map((x) => [x.session, x.session])], filters.session)),
      h("label", {}, "Status", sel("status", [["", "any"], ["success", "success"], ["error", "error"], ["cancelled", "cancelled"], ["running", "running"]], filters.status)),
      h("label", {}, "Min cost ($)", h("input", { name: "min_cost", type: "number", step: "0.0001", min: "0", value: filters.min_cost, size: 8 })),
      h("label", {}, "Started", sel("range", Object.keys(RANGES).map((k) => [k, k === "all" ? "any time" : "last " + k]), range)),
      h("button", { type: "submit" }, "Apply"));
    const pageLink = (off) => {
      const p = new URLSearchParams(params);
      p.set("offset", String(Math.max(0, off)));
      return "#/sessions?" + p.toString();
    };
    show(
      h("h1", {}, "Sessions"),
      form,
      h("div", { class: "panel" }, traceTable(page.traces, "sessions-table")),
      h("div", { class: "pager" },
        offset > 0 ? h("a", { href: pageLink(offset - page.limit) }, "← Newer") : null,
        page.has_more ? h("a", { href: pageLink(offset + page.limit) }, "Older →") : null));
  }

  function flatten(nodes, depth, out) {
    for (const n of nodes) {
      out.push([n, depth]);
      flatten(n.children || [], depth + 1, out);
    }
    return out;
  }

  function kv(rows) {
    return h("table", {}, h("tbody", {}, rows.filter((r) => r[1] !== null && r[1] !== undefined && r[1] !== "").map(([k, v]) =>
      h("tr", {}, h("th", {}, k), h("td", {}, v instanceof Node ? v : String(v))))));
  }

  function messages(value) {
    if (value === null || value === undefined) return null;
    return h("pre", {}, typeof value === "string" ? value : JSON.stringify(value, null, 2));
  }

  function detailFor(n, t0) {
    const parts = [];
    if (n.type === "llm_call") {
      const d = n.llm || {};
      parts.push(kv([
        ["Provider", d.provider], ["Operation", d.operation], ["Model", d.model], ["Response model", d.response_model],
        ["Input tokens", d.input_tokens === null ? "unknown" : num(d.input_tokens)],
        ["Output tokens", d.output_tokens === null ? "unknown" : num(d.output_tokens)],
        ["Cache read / write", d.cache_read_tokens !== null || d.cache_write_tokens !== null ? `${num(d.cache_read_tokens)} / ${num(d.cache_write_tokens)}` : null],
        ["Reasoning tokens", d.reasoning_tokens !== null && d.reasoning_tokens !== undefined ? num(d.reasoning_tokens) : null],
        ["Estimated usage", d.usage_estimated ? "yes" : null],
        ["Cost", d.cost_usd === null ? "unknown" + (d.cost_reason ? ` (${d.cost_reason})` : "") : money(d.cost_usd) + (d.cost_source ? ` (${d.cost_source})` : "")],
        ["Latency", dur(d.latency_ms)], ["Time to first token", d.time_to_first_token_ms !== null && d.time_to_first_token_ms !== undefined ? dur(d.time_to_first_token_ms) : null],
        ["Streaming", d.streaming ? "yes" : "no"], ["Finish reason", d.finish_reason],
        ["Tools called", d.tool_calls && d.tool_calls.length ? d.tool_calls.join(", ") : null],
        ["Error", n.error ? `${n.error.type}: ${n.error.message}` : null],
      ]));
      if (d.input !== null && d.input !== undefined) parts.push(h("h3", {}, "Input"), messages(d.input));
      if (d.output !== null && d.output !== undefined) parts.push(h("h3", {}, "Output"), messages(d.output));
    } else {
      parts.push(kv([
        ["Kind", n.span_kind], ["Status", badge(n.status)], ["Started", when(n.start)], ["Duration", dur(n.duration_ms)],
        ["Error", n.error ? `${n.error.type}: ${n.error.message}` : null],
      ]));
      if (n.metadata && Object.keys(n.metadata).length) parts.push(h("h3", {}, "Metadata"), messages(n.metadata));
    }
    if (n.events && n.events.length) {
      parts.push(h("h3", {}, "Events"), h("table", {}, h("tbody", {}, n.events.map((e) =>
        h("tr", {}, h("td", { class: "mono" }, "+" + dur((e.ts - t0) * 1000)), h("td", {}, badge(e.kind === "error" ? "error" : e.kind === "alert" ? "warning" : "none")),
          h("td", {}, e.kind), h("td", {}, e.name || ""), h("td", {}, h("code", {}, JSON.stringify(e.data))))))));
    }
    return h("div", { class: "wf-detail" }, parts);
  }

  async function viewTrace(seq, id) {
    const t = await api("/api/traces/" + encodeURIComponent(id));
    if (seq !== renderSeq) return;
    const t0 = t.start;
    const total = Math.max(t.end - t.start, 0.001);
    const rows = flatten(t.spans, 0, []);
    const wf = h("div", { class: "waterfall", id: "waterfall" },
      h("div", { class: "wf-row wf-axis" }, h("div", { class: "wf-label muted" }, "span"),
        h("div", { class: "wf-track" }, h("span", { class: "wf-tick start" }, "0"), h("span", { class: "wf-tick mid" }, dur(total * 500)),
          h("span", { class: "wf-tick end" }, dur(total * 1000)))));
    for (const [n, depth] of rows) {
      const start = n.start - t0;
      const end = n.end !== null && n.end !== undefined ? n.end - t0 : total;
      const left = (100 * start) / total;
      const width = Math.max((100 * (end - start)) / total, 0.2);
      const isLlm = n.type === "llm_call";
      const cls = ["wf-row", isLlm ? "llm" : "span", n.status === "error" ? "error" : "", n.status === "running" ? "running" : ""].join(" ");
      const d = n.llm || {};
      const note = isLlm
        ? `${dur(n.duration_ms)} · ${num(d.input_tokens)} → ${num(d.output_tokens)} tok · ${money(d.cost_usd)}`
        : `${dur(n.duration_ms)}${n.status === "running" ? " (running)" : ""}`;
      const bar = h("div", { class: "wf-bar" });
      bar.style.left = left + "%";
      bar.style.width = width + "%";
      const noteEl = h("div", { class: "wf-note" }, note);
      if (left + width > 70) noteEl.style.right = (100 - left) + "%";
      else noteEl.style.left = `calc(${left + width}% + 6px)`;
      const track = h("div", { class: "wf-track" }, bar, noteEl);
      for (const e of n.events || []) {
        if (e.kind !== "error" && e.kind !== "alert") continue;
        const m = h("div", { class: "wf-mark" + (e.kind === "error" ? " error" : ""), title: `${e.kind}: ${e.name || ""}` });
        m.style.left = (100 * (e.ts - t0)) / total + "%";
        track.appendChild(m);
      }
      const label = h("div", { class: "wf-label", title: n.name || n.span_id },
        h("span", { class: "wf-kind" }, isLlm ? "llm" : n.span_kind || "span"), h("span", { class: "wf-name" }, n.name || n.span_id),
        n.status === "error" ? badge("error") : null);
      label.style.paddingLeft = 8 + depth * 16 + "px";
      const row = h("div", { class: cls, "data-span": n.span_id, "data-kind": isLlm ? "llm_call" : n.span_kind || "span" }, label, track);
      let detail = null;
      row.addEventListener("click", () => {
        if (detail) { detail.remove(); detail = null; row.classList.remove("selected"); return; }
        detail = detailFor(n, t0);
        row.classList.add("selected");
        row.after(detail);
      });
      wf.appendChild(row);
    }
    show(
      h("div", { class: "muted" }, h("a", { href: "#/sessions" }, "← Sessions")),
      h("h1", {}, t.name || t.trace_id, " ", badge(t.status)),
      h("div", { class: "facts", id: "trace-facts" },
        [["Session", t.session || "—"], ["Agent", t.agent || "—"], ["Host", t.host || "—"], ["Started", when(t.start)], ["Duration", dur(t.duration_ms)],
          ["LLM calls", num(t.llm_calls)], ["Tokens in / out", num(t.input_tokens) + " / " + num(t.output_tokens)], ["Cost", money(t.cost_usd)], ["Errors", num(t.errors)]]
          .map(([k, v]) => h("div", { "data-fact": k }, h("span", { class: "k" }, k), h("span", { class: "v" }, v)))),
      t.truncated ? h("p", { class: "error-box" }, "This trace is very large; only its first events are shown.") : null,
      rows.length ? wf : empty("This trace has no spans."),
      t.events.length ? [h("h2", {}, "Other events"), h("pre", {}, JSON.stringify(t.events, null, 2))] : null);
  }

  async function viewCosts(seq, params) {
    const days = Number(params.get("days") || 14);
    const since = Date.now() / 1000 - days * 86400;
    const [byDay, byModel, byAgent] = await Promise.all([
      api("/api/costs" + qs({ group_by: "day,model", since, tz_offset: TZ })),
      api("/api/costs" + qs({ group_by: "model", since })),
      api("/api/costs" + qs({ group_by: "agent", since })),
    ]);
    if (seq !== renderSeq) return;
    const table = (rows, key, id) => rows.length ? h("table", { id },
      h("thead", {}, h("tr", {}, h("th", {}, key), h("th", { class: "num" }, "Calls"), h("th", { class: "num" }, "Input tokens"),
        h("th", { class: "num" }, "Output tokens"), h("th", { class: "num" }, "Unpriced calls"), h("th", { class: "num" }, "Cost"))),
      h("tbody", {}, rows.slice().sort((a, b) => b.cost_usd - a.cost_usd).map((r) => h("tr", { "data-key": r[key] },
        h("td", {}, r[key]), h("td", { class: "num" }, num(r.calls)), h("td", { class: "num" }, num(r.input_tokens)),
        h("td", { class: "num" }, num(r.output_tokens)), h("td", { class: "num" }, num(r.unpriced)), h("td", { class: "num" }, money(r.cost_usd))))))
      : empty("No LLM calls in this range.");
    const picker = h("select", { id: "cost-days", onchange: (ev) => go("#/costs?days=" + ev.target.value) },
      [7, 14, 30, 90].map((d) => h("option", { value: d, selected: d === days }, `last ${d} days`)));
    show(
      h("h1", {}, "Costs"),
      h("div", { class: "filters" }, h("label", {}, "Range", picker)),
      h("div", { class: "cards" }, card("spend_range", `Spend, last ${days} days`, money(byDay.total.cost_usd), `${num(byDay.total.calls)} calls`),
        card("unpriced", "Calls without a price", num(byDay.total.unpriced), "model not in the price table")),
      h("h2", {}, "By day and model"),
      h("div", { class: "panel" }, byDay.rows.length ? costChart(byDay.rows, days) : empty("No LLM spend in this range.")),
      h("h2", {}, "By model"), h("div", { class: "panel" }, table(byModel.rows, "model", "cost-by-model")),
      h("h2", {}, "By agent"), h("div", { class: "panel" }, table(byAgent.rows, "agent", "cost-by-agent")));
  }

  async function viewCrons(seq) {
    const data = await api("/api/crons");
    if (seq !== renderSeq) return;
    show(h("h1", {}, "Crons"), h("div", { class: "panel" }, cronTable(data.monitors)));
  }

  async function viewCron(seq, name) {
    const m = await api("/api/crons/" + encodeURIComponent(name));
    if (seq !== renderSeq) return;
    const stateOf = (e) => e.type === "missed" ? "missed" : e.overran ? "overran" : e.status;
    const strip = h("div", { class: "strip", id: "cron-strip" }, m.history.slice(0, 120).reverse().map((e) =>
      h("i", { class: stateOf(e), title: `${when(e.start)} · ${stateOf(e)}` })));
    show(
      h("div", { class: "muted" }, h("a", { href: "#/crons" }, "← Crons")),
      h("h1", {}, m.monitor, " ", badge(m.status)),
      h("div", { class: "facts" },
        [["Schedule", (m.schedule || "—") + (m.timezone ? " " + m.timezone : "")], ["Max runtime", m.max_runtime ? m.max_runtime + " s" : "—"],
          ["Grace", m.grace + " s"], ["Next expected", when(m.next_expected)], ["Runs", num(m.runs)], ["Missed", num(m.missed)], ["Failures", num(m.failures)]]
          .map(([k, v]) => h("div", {}, h("span", { class: "k" }, k), h("span", { class: "v" }, v)))),
      m.schedule_error ? h("p", { class: "error-box" }, "Schedule not understood: " + m.schedule_error) : null,
      strip,
      h("div", { class: "panel" }, h("table", { id: "cron-history" },
        h("thead", {}, h("tr", {}, h("th", {}, "Time"), h("th", {}, "Run"), h("th", { class: "num" }, "Duration"), h("th", {}, "Trace"))),
        h("tbody", {}, m.history.map((e) => h("tr", { class: "run " + stateOf(e), "data-state": stateOf(e) },
          h("td", {}, when(e.start)),
          h("td", {}, badge(stateOf(e)), e.type === "missed" ? h("span", { class: "muted" }, " no run started for this slot") : null),
          h("td", { class: "num" }, e.type === "missed" ? "—" : dur(e.duration_ms)),
          h("td", {}, e.trace_id ? h("a", { href: "#/trace/" + encodeURIComponent(e.trace_id) }, "replay") : "—")))))));
  }

  async function viewAlerts(seq) {
    const data = await api("/api/alerts" + qs({ limit: 200 }));
    if (seq !== renderSeq) return;
    show(h("h1", {}, "Alerts"), h("div", { class: "panel" }, alertTable(data.alerts)));
  }

  async function viewMemory(seq) {
    const data = await api("/api/memory");
    if (seq !== renderSeq) return;
    const files = data.files;
    show(h("h1", {}, "Memory"), h("div", { class: "panel" }, files.length ? h("table", { id: "memory-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "Agent"), h("th", {}, "File"), h("th", { class: "num" }, "Size"), h("th", { class: "num" }, "Lines"),
        h("th", { class: "num" }, "Last change"), h("th", {}, "Size over time"), h("th", {}, "Reported"))),
      h("tbody", {}, files.map((f) => h("tr", {},
        h("td", {}, f.agent || "—"), h("td", { class: "mono" }, f.path, f.exists === false ? h("span", { class: "badge error" }, "missing") : null),
        h("td", { class: "num" }, num(f.size)), h("td", { class: "num" }, num(f.lines)),
        h("td", { class: "num" }, f.delta_bytes === null || f.delta_bytes === undefined ? "—" : (f.delta_bytes > 0 ? "+" : "") + num(f.delta_bytes) + " B"),
        h("td", {}, sparkline(f.history)), h("td", { title: when(f.ts) }, ago(f.ts))))))
      : empty("No memory snapshots. Call agentpulse.memory_report(path, ...) from your agent.")));
  }

  // -- router -------------------------------------------------------------------------

  async function render() {
    const seq = ++renderSeq;
    clearTimeout(refreshTimer);
    const raw = location.hash.replace(/^#/, "") || "/";
    const [path, query] = raw.split("?");
    const params = new URLSearchParams(query || "");
    const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
    const section = parts[0] || "overview";
    for (const a of document.querySelectorAll("#nav a")) {
      const nav = a.getAttribute("data-nav");
      a.classList.toggle("active", nav === section || (section === "trace" && nav === "sessions") || (section === "cron" && nav === "crons"));
    }
    try {
      if (section === "overview") await viewOverview(seq);
      else if (section === "sessions") await viewSessions(seq, params);
      else if (section === "trace") await viewTrace(seq, parts.slice(1).join("/"));
      else if (section === "costs") await viewCosts(seq, params);
      else if (section === "crons") await viewCrons(seq);
      else if (section === "cron") await viewCron(seq, parts.slice(1).join("/"));
      else if (section === "alerts") await viewAlerts(seq);
      else if (section === "memory") await viewMemory(seq);
      else show(empty("Nothing here."));
      if (seq === renderSeq) {
        document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
        document.body.setAttribute("data-view", section);
      }
    } catch (err) {
      if (seq !== renderSeq) return;
      if (!(err instanceof AuthNeeded)) show(h("div", { class: "error-box" }, "Could not load this page: " + err.message));
    }
    // Live pages refresh themselves; a replay or a form being edited does not move under the reader.
    if (seq === renderSeq && ["overview", "crons", "alerts"].includes(section)) {
      refreshTimer = setTimeout(() => { if (seq === renderSeq) render(); }, 30000);
    }
  }

  window.addEventListener("hashchange", render);
  render();
})();
