// SPDX-License-Identifier: MIT
// atel web view: plain JS, no dependencies, no external fetches (docs/webui.md).
'use strict';
(function () {
  const $ = (sel) => document.querySelector(sel);
  const el = (tag, text, cls) => {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  };
  const fmt = (v) => {
    if (v === null || v === undefined || Number.isNaN(v)) return '-';
    if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(2) + 'M';
    if (Math.abs(v) >= 1e4) return (v / 1e3).toFixed(1) + 'k';
    return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4)));
  };
  const fmtDur = (ns) => {
    if (ns === null || ns === undefined) return 'open';
    if (ns >= 1e9) return (ns / 1e9).toFixed(3) + ' s';
    if (ns >= 1e6) return (ns / 1e6).toFixed(2) + ' ms';
    return (ns / 1e3).toFixed(1) + ' us';
  };
  let token = sessionStorage.getItem('atel-token') || '';
  const state = (msg, bad) => { const s = $('#state'); s.textContent = msg; s.className = bad ? 'state err' : 'state'; };
  const showError = (msg) => { $('#error').textContent = msg || ''; };

  async function api(path) {
    const headers = token ? { Authorization: 'Bearer ' + token } : {};
    const r = await fetch(path, { headers: headers, cache: 'no-store' });
    let body = null;
    try { body = await r.json(); } catch (e) { body = { error: 'not JSON (' + r.status + ')' }; }
    if (r.status === 401) { state('token required', true); throw new Error('401'); }
    if (!r.ok) { throw new Error(body && body.error ? body.error : 'HTTP ' + r.status); }
    state('connected');
    return body;
  }

  // ---- tabs and hash routes: #overview #metrics #traces #rings #trace/<id> #metric/<name>
  let current = 'overview';
  function show(tab) {
    current = tab;
    document.querySelectorAll('.tab').forEach((s) => s.classList.toggle('hidden', s.id !== tab));
    document.querySelectorAll('#tabs button').forEach((b) => b.classList.toggle('active', b.dataset.tab === tab));
    refresh();
  }
  function route() {
    const h = decodeURIComponent(location.hash.replace(/^#/, ''));
    if (h.startsWith('trace/')) { show('traces'); openTrace(h.slice(6)); return; }
    if (h.startsWith('metric/')) { $('#metric-name').value = h.slice(7); show('metrics'); return; }
    show(['overview', 'agents', 'metrics', 'traces', 'rings'].includes(h) ? h : 'overview');
  }

  // ---- canvas line chart
  function chart(canvas, points, label) {
    const ctx = canvas.getContext('2d');
    const W = canvas.width, H = canvas.height, L = 60, B = 24, T = 10, R = 10;
    ctx.clearRect(0, 0, W, H);
    ctx.font = '11px system-ui, sans-serif';
    ctx.fillStyle = '#6b6b70';
    const pts = points.filter((p) => p[1] !== null && p[1] !== undefined);
    if (!points.length) { ctx.fillText('no data', W / 2 - 20, H / 2); return; }
    const x0 = points[0][0], x1 = points[points.length - 1][0] || x0 + 1;
    let y0 = 0, y1 = 1;
    if (pts.length) { y0 = Math.min(0, ...pts.map((p) => p[1])); y1 = Math.max(...pts.map((p) => p[1])); }
    if (y1 <= y0) y1 = y0 + 1;
    const X = (t) => L + (W - L - R) * ((t - x0) / Math.max(1, x1 - x0));
    const Y = (v) => H - B - (H - B - T) * ((v - y0) / (y1 - y0));
    ctx.strokeStyle = '#ddd';
    for (let i = 0; i <= 4; i++) {
      const v = y0 + (y1 - y0) * i / 4, y = Y(v);
      ctx.beginPath(); ctx.moveTo(L, y); ctx.lineTo(W - R, y); ctx.stroke();
      ctx.fillText(fmt(v), 4, y + 4);
    }
    const xt = W >= 800 ? 4 : 2;
    for (let i = 0; i <= xt; i++) {
      const t = x0 + (x1 - x0) * i / xt;
      const label = new Date(t).toLocaleTimeString(), tw = ctx.measureText(label).width;
      ctx.fillText(label, Math.min(Math.max(0, X(t) - tw / 2), W - R - tw), H - 6);
    }
    ctx.strokeStyle = '#2a6fdb';
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let pen = false;
    for (const p of points) {
      if (p[1] === null || p[1] === undefined) { pen = false; continue; }
      if (pen) ctx.lineTo(X(p[0]), Y(p[1])); else ctx.moveTo(X(p[0]), Y(p[1]));
      pen = true;
    }
    ctx.stroke();
    if (label) { ctx.fillStyle = '#1d1d1f'; ctx.fillText(label, L + 6, T + 10); }
  }

  function fillTable(sel, rows, onclick) {
    const tb = $(sel + ' tbody');
    tb.replaceChildren();
    for (const r of rows) {
      const tr = el('tr');
      for (const c of r.cells) tr.appendChild(c instanceof Node ? c : el('td', c));
      if (r.data) for (const k in r.data) tr.dataset[k] = r.data[k];
      if (onclick) tr.addEventListener('click', () => onclick(r));
      tb.appendChild(tr);
    }
  }

  // ---- overview
  const history = [];
  let prev = null;
  async function overview() {
    const o = await api('/api/ui/overview');
    let rate = null;
    if (prev && o.now_ns > prev.now_ns) rate = (o.records_drained - prev.records_drained) / ((o.now_ns - prev.now_ns) / 1e9);
    prev = o;
    $('#ov-rate').textContent = rate === null ? '-' : fmt(rate);
    $('#ov-drained').textContent = String(o.records_drained);
    $('#ov-drops').textContent = String(o.drops_total);
    $('#ov-lag').textContent = String(o.ring_lag_max);
    $('#ov-ixlag').textContent = String(o.indexer_lag_records);
    $('#ov-bpr').textContent = o.bytes_per_record === null ? '-' : o.bytes_per_record.toFixed(2);
    if (rate !== null) { history.push([Date.now(), rate]); if (history.length > 300) history.shift(); }
    chart($('#ov-chart'), history, 'records/s drained');
    fillTable('#ov-causes', Object.keys(o.drops).map((k) => ({ cells: [k, String(o.drops[k])] })));
    fillTable('#ov-exporters', Object.keys(o.exporters).map((k) => {
      const e = o.exporters[k];
      return { cells: [k, String(e.attempts), String(e.failures), e.last_error || ''] };
    }));
  }

  // ---- metrics
  async function metricList() {
    const m = await api('/api/ui/metrics');
    const dl = $('#metric-list');
    dl.replaceChildren();
    for (const x of m.metrics) { const o = el('option'); o.value = x.name; o.textContent = x.type + ', ' + x.series + ' series'; dl.appendChild(o); }
    return m.metrics;
  }
  async function metrics() {
    const names = await metricList();
    const name = $('#metric-name').value.trim() || (names.length ? names[0].name : '');
    if (!name) { $('#metric-summary').textContent = 'no metrics in the index yet'; return; }
    $('#metric-name').value = name;
    const q = new URLSearchParams({ name: name, since: $('#metric-since').value, agg: $('#metric-agg').value });
    const labels = $('#metric-labels').value.trim();
    if (labels) q.set('labels', labels);
    const [s, ser] = await Promise.all([api('/api/ui/series?' + q), api('/api/ui/metrics?name=' + encodeURIComponent(name))]);
    chart($('#metric-chart'), s.points, name + ' (' + s.agg + ', step ' + s.step_ms / 1000 + ' s)');
    $('#metric-summary').textContent = s.samples + ' samples in range, ' + s.metric_series + ' series';
    $('#metric-summary').dataset.samples = s.samples;
    fillTable('#metric-series', ser.series.map((x) => ({ cells: [JSON.stringify(x.labels), x.type, String(x.samples), fmt(x.last_value)] })));
    fillTable('#metric-points', s.points.filter((p) => p[1] !== null).slice(-200).reverse().map((p) => ({ cells: [new Date(p[0]).toLocaleString(), fmt(p[1])] })));
  }

  // ---- agents: the reference dashboard's panels, each one /api/ui/series call
  const PANELS = [
    ['Agent executions /s', 'agent_execution_total', 'rate'],
    ['Execution duration p50 (s)', 'agent_execution_duration_seconds', 'p50'],
    ['Execution duration p95 (s)', 'agent_execution_duration_seconds', 'p95'],
    ['Execution duration p99 (s)', 'agent_execution_duration_seconds', 'p99'],
    ['Tool calls /s', 'tool_calls_total', 'rate'],
    ['Tool call failures /s', 'tool_call_failure_total', 'rate'],
    ['Context window utilisation (avg)', 'context_window_utilization', 'avg'],
    ['Errors /s', 'error_total', 'rate'],
  ];
  async function agents() {
    const box = $('#panels');
    if (!box.children.length) {
      for (const p of PANELS) {
        const d = el('div', null, 'card panel');
        d.dataset.metric = p[1];
        d.dataset.agg = p[2];
        const c = el('canvas');
        c.width = 440;
        c.height = 160;
        d.append(el('h3', p[0]), c, el('span', '', 'dim'));
        box.appendChild(d);
      }
    }
    await Promise.all([...box.children].map(async (d) => {
      const s = await api('/api/ui/series?' + new URLSearchParams({ name: d.dataset.metric, since: '1h', agg: d.dataset.agg }));
      chart(d.querySelector('canvas'), s.points, '');
      d.dataset.samples = s.samples;
      d.querySelector('span').textContent = s.samples + ' samples, step ' + s.step_ms / 1000 + ' s';
    }));
  }

  // ---- traces
  async function traces() {
    const q = new URLSearchParams({ limit: '100' });
    const n = $('#trace-name').value.trim(), sv = $('#trace-service').value.trim();
    const st = $('#trace-status').value, mn = $('#trace-min').value.trim();
    if (n) q.set('name', n);
    if (sv) q.set('service', sv);
    if (st) q.set('status', st);
    if (mn) q.set('min_ms', mn);
    const t = await api('/api/ui/traces?' + q);
    fillTable('#traces-table', t.traces.map((x) => ({
      cells: [new Date(x.start_ns / 1e6).toLocaleTimeString(), x.trace_id.slice(0, 12), x.root || '(no root)', x.service || '',
        fmtDur(x.duration_ns), String(x.spans), String(x.errors), String(x.processes)],
      data: { traceId: x.trace_id, spans: x.spans, errors: x.errors },
    })), (r) => { location.hash = 'trace/' + r.data.traceId; });
  }
  async function openTrace(id) {
    const t = await api('/api/ui/trace?id=' + encodeURIComponent(id));
    const wf = $('#waterfall');
    wf.replaceChildren();
    wf.dataset.traceId = t.trace_id;
    const byId = new Map(t.spans.map((s) => [s.span_id, s]));
    const kids = new Map();
    const roots = [];
    for (const s of t.spans) {
      if (s.parent_span_id && byId.has(s.parent_span_id)) {
        if (!kids.has(s.parent_span_id)) kids.set(s.parent_span_id, []);
        kids.get(s.parent_span_id).push(s);
      } else roots.push(s);
    }
    let end = 1;
    for (const s of t.spans) end = Math.max(end, s.offset_ns + (s.duration_ns || 0));
    wf.appendChild(el('h2', 'Trace ' + t.trace_id + ' (' + t.spans.length + ' spans, ' + fmtDur(end) + ')'));
    const walk = (s, depth) => {
      const row = el('div', null, 'wf-row');
      row.dataset.spanId = s.span_id;
      row.dataset.parentId = s.parent_span_id || '';
      row.dataset.depth = depth;
      const name = el('span', '\u00a0'.repeat(depth * 2) + s.name, 'wf-name');
      const track = el('div', null, 'wf-track');
      const bar = el('div', null, 'wf-bar');
      const par = s.parent_span_id ? byId.get(s.parent_span_id) : null;
      if (s.status_code === 2) bar.classList.add('error');
      if (par && par.pid !== s.pid) { bar.classList.add('xproc'); bar.title = 'child process ' + s.pid + ' of ' + par.pid; }
      bar.style.left = (100 * s.offset_ns / end) + '%';
      bar.style.width = (100 * (s.duration_ns === null ? end - s.offset_ns : s.duration_ns) / end) + '%';
      track.appendChild(bar);
      row.append(name, track, el('span', fmtDur(s.duration_ns)));
      row.addEventListener('click', () => {
        $('#span-detail').textContent = JSON.stringify({
          name: s.name, span_id: s.span_id, parent_span_id: s.parent_span_id, service: s.service, pid: s.pid,
          tid: s.tid, status: s.status_code, message: s.status_message, attributes: s.attributes, events: s.events,
        }, null, 2);
      });
      wf.appendChild(row);
      for (const k of kids.get(s.span_id) || []) walk(k, depth + 1);
    };
    roots.forEach((r) => walk(r, 0));
  }

  // ---- rings
  async function rings() {
    const r = await api('/api/ui/rings');
    $('#rings-summary').textContent = r.rings.length + ' of ' + r.rings_total + ' rings in use, ' + r.ring_capacity +
      ' slots each; no-ring drops ' + r.drops_no_ring;
    const box = $('#rings-bars');
    box.replaceChildren();
    for (const x of r.rings) {
      const row = el('div', null, 'ring');
      row.dataset.ring = x.ring;
      const tr = el('div', null, 'ring-track');
      const f = el('div', null, 'ring-fill');
      if (x.fill > 0.75) f.classList.add('high');
      f.style.width = (100 * x.fill).toFixed(1) + '%';
      tr.appendChild(f);
      row.append(el('span', '#' + x.ring + ' ' + x.state + ' ' + (x.comm || '') + ' pid ' + x.pid), tr,
        el('span', (100 * x.fill).toFixed(1) + '% drops ' + (x.drops_full + x.drops_nodef + x.drops_invalid)));
      box.appendChild(row);
    }
  }

  async function refresh() {
    try {
      showError('');
      if (current === 'overview') await overview();
      else if (current === 'metrics') await metrics();
      else if (current === 'agents') await agents();
      else if (current === 'traces') await traces();
      else if (current === 'rings') await rings();
      document.body.dataset.loaded = current;
    } catch (e) {
      if (e.message !== '401') showError(e.message);
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('#token').value = token;
    $('#auth').addEventListener('submit', (ev) => {
      ev.preventDefault();
      token = $('#token').value.trim();
      sessionStorage.setItem('atel-token', token);
      refresh();
    });
    document.querySelectorAll('#tabs button').forEach((b) => b.addEventListener('click', () => { location.hash = b.dataset.tab; }));
    $('#mform').addEventListener('submit', (ev) => { ev.preventDefault(); refresh(); });
    $('#tform').addEventListener('submit', (ev) => { ev.preventDefault(); refresh(); });
    window.addEventListener('hashchange', route);
    route();
    setInterval(() => { if (current === 'overview' || current === 'rings') refresh(); }, 2000);
  });
})();
