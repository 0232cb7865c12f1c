// TD Analytics dashboard: hash-routed pages over the collector's JSON API (overview, usage,
// performance, predictive, behavioral, alerts, reports, profiles, views), a time-range picker
// with drag-to-zoom, live values by server-sent events, light and dark themes.
(function () {
  'use strict';
  const C = window.TDA_CHARTS;
  const { html, fmt } = C;
  const $ = (s) => document.querySelector(s);
  const RANGES = { '1h': 3600e3, '24h': 86400e3, '7d': 7 * 86400e3, '30d': 30 * 86400e3 };
  const state = { range: '24h', zoom: null, live: null, page: 'overview' };

  // The range in force: the zoomed one, else the picker's, ending now.
  function range() {
    if (state.zoom) return state.zoom;
    const to = Date.now();
    return { from: to - RANGES[state.range], to };
  }

  // A step giving 60-300 points over the range.
  function step(r) {
    const span = r.to - r.from;
    const steps = [60e3, 300e3, 900e3, 3600e3, 6 * 3600e3, 86400e3];
    const s = steps.find((x) => span / x <= 300) || 86400e3;
    return Math.round(s / 1000) + 's';
  }

  // A step as words: '300s' -> '5 min'.
  function stepName(s) {
    const secs = parseInt(s, 10);
    return secs >= 86400 ? secs / 86400 + ' d' : secs >= 3600 ? secs / 3600 + ' h' : secs / 60 + ' min';
  }

  async function api(path, params) {
    const q = new URLSearchParams(params || {});
    const url = path + (q.toString() ? '?' + q : '');
    document.body.dataset.lastQuery = url;
    const token = localStorage.getItem('tda-read-token');
    const resp = await fetch(url, { headers: token ? { Authorization: 'Bearer ' + token } : {} });
    if (resp.status === 401) {
      const t = window.prompt('This collector needs a read token:');
      if (t) { localStorage.setItem('tda-read-token', t); return api(path, params); }
    }
    const body = await resp.json();
    if (!resp.ok) throw new Error(body.error || resp.status);
    return body;
  }

  const points = (q) => (q.points || []).filter((p) => p.v !== null).map((p) => [p.t, p.v]);

  function section(title, parent) {
    const s = html('section');
    if (title) s.appendChild(html('h2', {}, title));
    (parent || $('#page')).appendChild(s);
    return s;
  }

  function table(parent, columns, rows, numeric) {
    const t = html('table');
    const head = html('tr');
    columns.forEach((c, i) => head.appendChild(html('th', { scope: 'col', class: numeric && numeric[i] ? 'n' : '' }, c)));
    t.appendChild(head);
    rows.forEach((r) => {
      const tr = html('tr');
      r.forEach((cell, i) => {
        const td = html('td', { class: numeric && numeric[i] ? 'n' : '' });
        if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell === null || cell === undefined ? '–' : String(cell);
        tr.appendChild(td);
      });
      t.appendChild(tr);
    });
    if (!rows.length) {
      const tr = html('tr');
      tr.appendChild(html('td', { colspan: String(columns.length), class: 'muted' }, 'nothing yet'));
      t.appendChild(tr);
    }
    parent.appendChild(t);
    return t;
  }

  function card(parent, label, id) {
    const c = html('div', { class: 'card' });
    c.appendChild(html('span', {}, label));
    c.appendChild(html('b', { id }, '–'));
    parent.appendChild(c);
  }

  function zoomTo(from, to) {
    state.zoom = { from, to };
    document.body.dataset.from = String(from);
    document.body.dataset.to = String(to);
    $('#zoomed').hidden = false;
    $('#zoom-label').textContent = new Date(from).toLocaleString() + ' – ' + new Date(to).toLocaleString();
    render();
  }

  // A line chart over the range in force (its time axis spans the range, not just the data).
  function lineOf(parent, title, unit, series, extra) {
    return C.line(parent, Object.assign({ title, unit, series, onZoom: zoomTo }, range(), extra || {}));
  }

  // Live values: `GET /api/v1/live` as JSON once a second. Polling holds no request open, so a
  // headless browser's virtual-time budget can settle (a screenshot finishes).
  function connectLive() {
    const poll = async () => {
      try {
        const token = localStorage.getItem('tda-read-token');
        const headers = { Accept: 'application/json' };
        if (token) headers.Authorization = 'Bearer ' + token;
        const resp = await fetch('/api/v1/live', { headers });
        if (!resp.ok) throw new Error(String(resp.status));
        state.live = await resp.json();
        $('#live-state').textContent = 'live · ' + new Date(state.live.t).toLocaleTimeString();
        showLive();
      } catch (e) {
        $('#live-state').textContent = 'reconnecting…';
      }
      setTimeout(poll, 1000);
    };
    poll();
  }

  function setText(id, text) {
    const e = document.getElementById(id);
    if (e) e.textContent = text;
  }

  function showLive() {
    const l = state.live;
    if (!l) return;
    setText('live-rpm', fmt(l.requests_per_min_5m));
    setText('live-users', fmt(l.active_users_5m));
    setText('live-errors', (l.error_rate_5m * 100).toFixed(2) + ' %');
    setText('live-p95', l.p95_ms_5m === null ? '–' : fmt(l.p95_ms_5m) + ' ms');
    setText('live-alerts', String(l.alerts_firing) + (l.alerts_pending ? ` (+${l.alerts_pending} pending)` : ''));
    setText('live-health', l.health.status + ' · ' + l.agents.length + ' agents');
    const body = document.getElementById('agents-live');
    if (body) {
      body.textContent = '';
      table(body, ['Agent', 'Last seen', 'CPU %', 'Memory used', 'Load 1m'], l.agents.map((a) => [
        a.agent_id, new Date(a.last_seen).toLocaleTimeString(), fmt(a.latest.cpu_percent),
        fmt(a.latest.mem_used_bytes / 1048576) + ' MiB', fmt(a.latest.load[0])]), [false, false, true, true, true]);
    }
  }

  async function overview(page) {
    const cards = html('div', { class: 'cards', 'aria-label': 'Now (last 5 minutes)' });
    page.appendChild(cards);
    card(cards, 'Requests / min (last 5 min)', 'live-rpm');
    card(cards, 'Active users now', 'live-users');
    card(cards, 'Error rate', 'live-errors');
    card(cards, 'p95 latency', 'live-p95');
    card(cards, 'Firing alerts', 'live-alerts');
    card(cards, 'Health', 'live-health');
    const r = range();
    const [req, err] = await Promise.all([
      api('/api/v1/query', { series: 'requests', from: r.from, to: r.to, step: step(r) }),
      api('/api/v1/query', { series: 'errors', from: r.from, to: r.to, step: step(r) }),
    ]);
    lineOf(section(null, page), 'Requests and errors', 'per step', [{ name: 'requests', points: points(req) }, { name: 'errors', points: points(err) }]);
    const agents = section('Agents', page);
    agents.appendChild(html('div', { id: 'agents-live' }));
    showLive();
  }

  async function usage(page) {
    const r = range();
    const [stats, users, req, errs] = await Promise.all([
      api('/api/v1/stats/usage', { from: r.from, to: r.to }),
      api('/api/v1/query', { series: 'users', agg: 'distinct', from: r.from, to: r.to, step: step(r) }),
      api('/api/v1/query', { series: 'requests', from: r.from, to: r.to, step: step(r) }),
      api('/api/v1/query', { series: 'errors', from: r.from, to: r.to, step: step(r) }),
    ]);
    const cards = html('div', { class: 'cards' });
    page.appendChild(cards);
    [['Requests', stats.total_requests], ['Active users', stats.active_users], ['Errors', stats.errors], ['p95 latency (ms)', fmt(stats.latency_ms.p95)]].forEach(([k, v]) => {
      const c = html('div', { class: 'card' });
      c.appendChild(html('span', {}, k));
      c.appendChild(html('b', {}, String(v)));
      cards.appendChild(c);
    });
    lineOf(section(null, page), 'Requests per ' + stepName(step(r)), 'requests', [{ name: 'requests', points: points(req) }, { name: 'errors', points: points(errs) }]);
    lineOf(section(null, page), 'Active users', 'users', [{ name: 'users', points: points(users) }]);
    table(section('Features', page), ['Feature', 'Requests', 'Users', 'Errors'],
      stats.features.map((f) => [f.feature, f.requests, f.users, f.errors]), [false, true, true, true]);
  }

  async function performance(page) {
    const r = range();
    const q = (series, agg, extra) => api('/api/v1/query', Object.assign({ series, agg, from: r.from, to: r.to, step: step(r) }, extra || {}));
    const [perf, p50, p95, p99] = await Promise.all([
      api('/api/v1/stats/performance', { from: r.from, to: r.to }), q('latency_ms', 'p50'), q('latency_ms', 'p95'), q('latency_ms', 'p99'),
    ]);
    lineOf(section(null, page), 'Latency percentiles', 'ms', [{ name: 'p50', points: points(p50) }, { name: 'p95', points: points(p95) }, { name: 'p99', points: points(p99) }]);
    const grid = html('div', { class: 'grid2' });
    page.appendChild(grid);
    for (const a of perf.agents) {
      const [cpu, mem] = await Promise.all([q('host.cpu_percent', 'avg', { agent: a.agent_id }), q('process.rss_bytes', 'avg', { agent: a.agent_id })]);
      const s = section(null, grid);
      lineOf(s, `${a.agent_id}: host CPU`, '%', [{ name: 'cpu %', points: points(cpu) }]);
      lineOf(s, `${a.agent_id}: watched process memory`, 'bytes', [{ name: 'rss', points: points(mem) }]);
    }
    table(section('Errors by type', page), ['Error', 'Count'], perf.top_errors.map((e) => [e.error, e.count]), [false, true]);
    const h = section('Health', page);
    h.appendChild(html('p', { class: perf.health.status === 'ok' ? 'good' : 'bad' }, perf.health.status + (perf.health.reasons.length ? ': ' + perf.health.reasons.join('; ') : '')));
  }

  async function predictive(page) {
    const r = range();
    const metric = 'requests';
    const span = r.to - r.from;
    const stepMs = span > 3 * 86400e3 ? 3600e3 : span > 86400e3 ? 900e3 : 300e3;
    const s = stepMs / 1000 + 's';
    const horizon = String(24);
    // History up to the last closed step, where the models' input (and the forecast) ends: the
    // step still filling would read as a drop before the forecast.
    const closed = Math.floor(r.to / stepMs) * stepMs;
    const [hist, fc, an, tr, pat] = await Promise.all([
      api('/api/v1/query', { series: 'requests', from: r.from, to: closed, step: s }),
      api('/api/v1/forecast', { metric, from: r.from, to: r.to, step: s, horizon }),
      api('/api/v1/anomalies', { metric, from: r.from, to: r.to, step: s }),
      api('/api/v1/trends', { metric, from: r.from, to: r.to, step: s }),
      api('/api/v1/patterns', { metric, from: r.from, to: r.to, step: s }),
    ]);
    const forecast = fc.forecast || [];
    lineOf(section(null, page), 'Requests with forecast (95 % band) and anomalies', 'requests', [
      { name: 'requests', points: points(hist) }, { name: 'forecast', points: forecast.map((p) => [p.t, p.forecast]) },
    ], { band: forecast.map((p) => [p.t, p.lower95, p.upper95]), marks: (an.anomalies || []).map((a) => a.start_ms) });
    const facts = section('Trend and seasonality', page);
    table(facts, ['What', 'Found'], [
      ['Trend', tr.summary || 'not enough data'],
      ['Forecast model', fc.model || '–'],
      ['Seasonal periods', (pat.seasonal_periods || []).map((p) => (p.ms >= 3600e3 ? (p.ms / 3600e3).toFixed(1) + ' h' : Math.round(p.ms / 60e3) + ' min')).join(', ') || 'none'],
      ['Peak hours (UTC)', (pat.peak_hours_utc || []).join(', ') || '–'],
      ['Anomalies', String((an.anomalies || []).length)],
    ]);
  }

  async function behavioral(page) {
    const r = range();
    const [journeys, retention, segments, summary] = await Promise.all([
      api('/api/v1/journeys', { from: r.from, to: r.to }),
      api('/api/v1/retention', { from: r.from, to: r.to }),
      api('/api/v1/segments', { from: r.from, to: r.to }),
      api('/api/v1/stats/behavioral', { from: r.from, to: r.to }),
    ]);
    const top = journeys.top_paths.find((p) => p.path.length >= 2);
    const steps = top ? top.path.slice(0, 4) : [];
    if (steps.length >= 2) {
      const f = await api('/api/v1/funnels', { from: r.from, to: r.to, steps: steps.join(','), window: '1h' });
      C.bars(section(null, page), { title: 'Funnel: ' + steps.join(' → ') + ' (1 h window)', items: f.funnel.steps.map((s) => ({ label: s.step, value: s.users, note: (s.conversion * 100).toFixed(0) + ' %' })) });
    }
    C.flow(section(null, page), { title: 'Paths (transitions between features)', edges: journeys.transitions });
    const ret = section(null, page);
    C.heat(ret, { title: 'Daily retention', rows: retention.cohorts.filter((c) => c.users > 0).slice(-14).map((c) => ({ label: new Date(c.start_ms).toISOString().slice(0, 10), size: c.users, cells: c.retention.slice(0, 10) })) });
    const seg = section('Segments', page);
    const clusters = segments.segmentation ? segments.segmentation.clusters : [];
    table(seg, ['Users', 'Share', 'What sets them apart'], clusters.map((c) => [c.users, (c.share * 100).toFixed(0) + ' %', c.description]), [true, true, false]);
    const s = summary.sessions;
    seg.appendChild(html('p', { class: 'muted' }, `${s.sessions} sessions, bounce rate ${(s.bounce_rate * 100).toFixed(1)} %, DAU ${summary.active_users.dau}, WAU ${summary.active_users.wau}, MAU ${summary.active_users.mau}`));
  }

  async function alerts(page) {
    const [a, s] = await Promise.all([api('/api/v1/alerts'), api('/api/v1/silences')]);
    const rows = (state) => a.alerts.filter((x) => x.state === state).map((x) => [x.profile, x.rule, x.value === null ? '–' : fmt(x.value), (x.annotations || {}).summary || '', x.silenced_by ? 'silenced' : x.inhibited ? 'inhibited' : '']);
    table(section('Firing', page), ['Profile', 'Rule', 'Value', 'Summary', ''], rows('firing'));
    table(section('Pending', page), ['Profile', 'Rule', 'Value', 'Summary', ''], rows('pending'));
    table(section('Silences', page), ['Id', 'Matchers', 'Until', 'Comment', 'Active'], s.silences.map((x) => [x.id, x.matchers.join(', '), new Date(x.ends_at).toLocaleString(), x.comment, x.active ? 'yes' : 'no']));
  }

  async function reports(page) {
    const r = await api('/api/v1/reports');
    table(section('Reports', page), ['Report', 'Period', 'Summary', 'Open'], r.reports.map((x) => {
      const links = html('span');
      Object.entries(x.links).forEach(([k, url]) => {
        const path = new URL(url).pathname;
        links.appendChild(html('a', { href: path, target: '_blank', rel: 'noopener' }, k));
        links.appendChild(document.createTextNode(' '));
      });
      return [x.id, x.from + ' – ' + x.to, (x.summary || [])[0] || '', links];
    }));
  }

  async function profiles(page) {
    const p = await api('/api/v1/profiles');
    table(section('Profiles', page), ['Profile', 'Type', 'Status', 'Loaded', 'Last error'], p.profiles.map((x) => {
      const st = html('span', { class: 'pill ' + (x.status === 'active' ? 'good' : 'bad') }, x.status);
      return [x.id || x.file, x.type || '–', st, x.loaded_at || '–', x.last_error || ''];
    }));
    const errs = section('Files that failed to load', page);
    table(errs, ['Error'], (p.errors || []).map((e) => [typeof e === 'string' ? e : JSON.stringify(e)]));
    const rel = p.reload || {};
    errs.appendChild(html('p', { class: 'muted' }, `reloads: ${rel.reloads_total || 0}, last ok: ${rel.last_reload_ok}, config: ${p.config && p.config.last_error ? p.config.last_error : 'ok'}`));
  }

  async function views(page) {
    const v = await api('/api/v1/views');
    if (!v.views.length) page.appendChild(html('p', { class: 'muted' }, 'No [[view]] panels in the profiles.'));
    for (const panel of v.views) {
      const s = section(null, page);
      s.dataset.view = panel.title;
      const d = panel.data;
      if (d.error) { s.appendChild(html('h2', {}, panel.title)); s.appendChild(html('p', { class: 'error' }, d.error)); continue; }
      if (d.features) {
        s.appendChild(html('h2', {}, panel.title));
        table(s, ['Feature', 'Requests', 'Users'], d.features.map((f) => [f.feature, f.requests, f.users]), [false, true, true]);
      } else if (panel.chart === 'number') {
        s.appendChild(html('h2', {}, panel.title));
        s.appendChild(html('b', { class: 'card' }, fmt(d.value)));
      } else if (panel.chart === 'bar') {
        const shown = d.points.slice(-20);
        const days = shown.length > 1 && shown[1][0] - shown[0][0] >= C.DAY;
        const dated = shown.length > 0 && new Date(shown[0][0]).toDateString() !== new Date(shown[shown.length - 1][0]).toDateString();
        C.bars(s, { title: panel.title, items: shown.map((p) => ({ label: C.timeLabel(p[0], dated, days), value: p[1] })) });
      } else if (panel.chart === 'table') {
        s.appendChild(html('h2', {}, panel.title));
        table(s, ['Time', panel.query], d.points.map((p) => [new Date(p[0]).toLocaleString(), fmt(p[1])]), [false, true]);
      } else {
        C.line(s, { title: panel.title, unit: panel.query, series: [{ name: panel.query, points: d.points }] });
      }
    }
  }

  const PAGES = { overview, usage, performance, predictive, behavioral, alerts, reports, profiles, views };

  async function render() {
    const name = (location.hash.replace(/^#\/?/, '') || 'overview').split('?')[0];
    state.page = PAGES[name] ? name : 'overview';
    document.querySelectorAll('nav a').forEach((a) => {
      if (a.getAttribute('href') === '#/' + state.page) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    });
    document.title = 'TD Analytics · ' + state.page;
    const page = html('div', { id: 'page', 'data-page': state.page, 'aria-busy': 'true' });
    $('#page').replaceWith(page);
    try {
      await PAGES[state.page](page);
    } catch (e) {
      page.appendChild(html('p', { class: 'error', role: 'alert' }, 'Could not load: ' + e.message));
    }
    page.setAttribute('aria-busy', 'false');
    document.body.dataset.rendered = String(Date.now());
    if (!document.body.dataset.firstRenderMs) document.body.dataset.firstRenderMs = String(Math.round(window.performance.now()));
  }

  function theme(next) {
    const root = document.documentElement;
    if (next) root.dataset.theme = next; else delete root.dataset.theme;
    if (next) localStorage.setItem('tda-theme', next); else localStorage.removeItem('tda-theme');
  }

  function start() {
    theme(localStorage.getItem('tda-theme'));
    $('#theme').addEventListener('click', () => {
      const dark = document.documentElement.dataset.theme === 'dark' || (!document.documentElement.dataset.theme && matchMedia('(prefers-color-scheme: dark)').matches);
      theme(dark ? 'light' : 'dark');
    });
    $('#range').addEventListener('change', (e) => { state.range = e.target.value; state.zoom = null; $('#zoomed').hidden = true; render(); });
    $('#unzoom').addEventListener('click', () => { state.zoom = null; $('#zoomed').hidden = true; delete document.body.dataset.from; render(); });
    window.addEventListener('hashchange', () => { render(); $('#main').focus(); });
    connectLive();
    render();
  }

  start();
})();
