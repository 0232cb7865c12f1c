// TD Analytics charts: SVG line charts (series toggles, hover and keyboard tooltips, drag to
// zoom, forecast bands, anomaly marks), bars, a flow diagram of paths and a heat table. Every
// chart is labelled for screen readers and records how many points it drew (data-points).
(function () {
  'use strict';
  const NS = 'http://www.w3.org/2000/svg';
  const COLORS = ['var(--accent)', 'var(--accent2)', 'var(--accent3)', 'var(--accent4)'];
  const tooltip = () => document.getElementById('tooltip');

  function el(tag, attrs, parent) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  }

  function html(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function fmt(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return '–';
    const a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toFixed(1) + 'M';
    if (a >= 1e4) return (v / 1e3).toFixed(0) + 'k';
    if (Number.isInteger(v)) return String(v);
    return a >= 100 ? v.toFixed(0) : a >= 1 ? v.toFixed(2) : v.toFixed(3);
  }

  const MIN = 60e3, HOUR = 3600e3, DAY = 86400e3;
  const pad = (n) => String(n).padStart(2, '0');

  // A time as a person reads it at this grain: the date when `withDate`, the clock time unless
  // the grain is whole days.
  function timeLabel(t, withDate, wholeDays) {
    const d = new Date(t);
    const date = pad(d.getMonth() + 1) + '-' + pad(d.getDate());
    const hm = pad(d.getHours()) + ':' + pad(d.getMinutes());
    if (wholeDays) return date;
    return withDate ? date + ' ' + hm : hm;
  }

  // Value ticks at 1, 2, 2.5 or 5 times a power of ten, covering [lo, hi].
  function valueTicks(lo, hi, want) {
    const raw = (hi - lo) / want;
    const pow = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * pow).find((s) => s >= raw);
    const ticks = [];
    for (let v = Math.floor(lo / step) * step; v <= hi + step * 1e-9 || ticks.length < 2; v += step) ticks.push(+v.toPrecision(12));
    if (ticks[ticks.length - 1] < hi) ticks.push(+(ticks[ticks.length - 1] + step).toPrecision(12));
    return ticks;
  }

  // Time ticks at a calendar interval (minutes, hours or days, local time), at most `want`.
  function timeTicks(t0, t1, want) {
    const steps = [MIN, 2 * MIN, 5 * MIN, 10 * MIN, 15 * MIN, 30 * MIN, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY];
    const step = steps.find((s) => (t1 - t0) / s <= want) || 7 * DAY;
    const offset = -new Date(t0).getTimezoneOffset() * MIN; // local midnight aligns days and hours
    const ticks = [];
    for (let t = Math.ceil((t0 + offset) / step) * step - offset; t <= t1; t += step) ticks.push(t);
    return { ticks, step };
  }

  function showTip(x, y, lines) {
    const tip = tooltip();
    tip.textContent = '';
    lines.forEach((l) => tip.appendChild(html('div', {}, l)));
    tip.hidden = false;
    tip.style.left = Math.min(x + 12, window.innerWidth - tip.offsetWidth - 8) + 'px';
    tip.style.top = (y + 12) + 'px';
  }

  function hideTip() {
    tooltip().hidden = true;
  }

  // A line chart. o: {title, unit, series: [{name, points: [[t, v]]}], band: [[t, lo, hi]],
  // marks: [t], onZoom(from, to)}.
  function line(host, o) {
    const W = 800, H = 240, L = 56, R = 14, T = 10, B = 26;
    const fig = html('figure', { class: 'chart' });
    const cap = html('figcaption');
    cap.appendChild(html('strong', {}, o.title));
    const legend = html('span', { class: 'legend' });
    cap.appendChild(legend);
    fig.appendChild(cap);
    const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', tabindex: '0' });
    fig.appendChild(svg);
    host.appendChild(fig);
    const hidden = new Set();
    const series = (o.series || []).map((s, i) => ({ ...s, color: COLORS[i % COLORS.length] }));
    series.forEach((s, i) => {
      const b = html('button', { type: 'button', 'aria-pressed': 'true', 'data-series': s.name });
      const swatch = html('i');
      swatch.style.background = s.color;
      b.appendChild(swatch);
      b.appendChild(document.createTextNode(s.name));
      b.addEventListener('click', () => {
        if (hidden.has(i)) hidden.delete(i); else hidden.add(i);
        b.setAttribute('aria-pressed', String(!hidden.has(i)));
        draw();
      });
      legend.appendChild(b);
    });
    let scale = null;
    let cursor = -1;

    function draw() {
      svg.textContent = '';
      const shown = series.filter((_, i) => !hidden.has(i));
      const pts = shown.flatMap((s) => s.points);
      const band = o.band || [];
      const times = pts.map((p) => p[0]).concat(band.map((b) => b[0]));
      const values = pts.map((p) => p[1]).concat(band.flatMap((b) => [b[1], b[2]]));
      const count = pts.length;
      svg.dataset.points = String(count);
      const last = shown.length && shown[0].points.length ? shown[0].points[shown[0].points.length - 1][1] : null;
      svg.setAttribute('aria-label', `${o.title}: ${count} points` + (values.length ? `, from ${fmt(Math.min(...values))} to ${fmt(Math.max(...values))}, last ${fmt(last)}` : ', no data'));
      el('title', {}, svg).textContent = o.title;
      if (!times.length) {
        el('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, svg).textContent = 'no data in this range';
        scale = null;
        return;
      }
      // The asked range, widened to any data beyond it (a forecast past its end).
      let t0 = Math.min(o.from ?? Infinity, ...times), t1 = Math.max(o.to ?? -Infinity, ...times);
      if (t1 === t0) { t0 -= 60000; t1 += 60000; }
      const vlo = Math.min(0, ...values), vhi = Math.max(...values);
      const yt = valueTicks(vlo, vhi > vlo ? vhi : vlo + 1, 4);
      const lo = yt[0], hi = yt[yt.length - 1];
      const x = (t) => L + (t - t0) / (t1 - t0) * (W - L - R);
      const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
      scale = { x, y, t0, t1, tOf: (px) => t0 + (px - L) / (W - L - R) * (t1 - t0) };
      el('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }, svg);
      el('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }, svg);
      yt.forEach((v) => {
        el('text', { class: 'tick-y', x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, svg).textContent = fmt(v);
      });
      const xt = timeTicks(t0, t1, 6);
      const withDate = new Date(t0).toDateString() !== new Date(t1).toDateString();
      xt.ticks.forEach((t) => {
        el('text', { class: 'tick-x', x: x(t), y: H - 8, 'text-anchor': 'middle' }, svg).textContent = timeLabel(t, withDate, xt.step >= DAY);
      });
      if (band.length) {
        const up = band.map((b) => `${x(b[0]).toFixed(1)},${y(b[2]).toFixed(1)}`);
        const down = band.slice().reverse().map((b) => `${x(b[0]).toFixed(1)},${y(b[1]).toFixed(1)}`);
        el('polygon', { class: 'band', points: up.concat(down).join(' ') }, svg);
      }
      shown.forEach((s) => {
        el('polyline', { class: 'series', fill: 'none', stroke: s.color, 'stroke-width': 1.6, 'data-name': s.name,
          points: s.points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ') }, svg);
        // A series of a few points shows them as dots (one point draws no line).
        if (s.points.length <= 3) s.points.forEach((p) => el('circle', { class: 'dot', cx: x(p[0]), cy: y(p[1]), r: 3, fill: s.color }, svg));
      });
      const first = shown[0];
      (o.marks || []).forEach((t) => {
        if (!first || !first.points.length) return;
        const p = first.points.reduce((a, b) => (Math.abs(b[0] - t) < Math.abs(a[0] - t) ? b : a));
        el('circle', { class: 'mark', cx: x(p[0]), cy: y(p[1]), r: 4 }, svg).appendChild(el('title')).textContent = 'anomaly at ' + new Date(p[0]).toISOString();
      });
    }

    function nearest(t) {
      const shown = series.filter((_, i) => !hidden.has(i));
      if (!shown.length || !shown[0].points.length) return null;
      const ps = shown[0].points;
      let best = 0;
      ps.forEach((p, i) => { if (Math.abs(p[0] - t) < Math.abs(ps[best][0] - t)) best = i; });
      return { index: best, t: ps[best][0], lines: [new Date(ps[best][0]).toLocaleString()].concat(shown.map((s) => {
        const q = s.points.find((p) => p[0] === ps[best][0]);
        return `${s.name}: ${q ? fmt(q[1]) : '–'} ${o.unit || ''}`;
      })) };
    }

    function cursorAt(t, cx, cy) {
      const n = nearest(t);
      svg.querySelectorAll('.cursor').forEach((c) => c.remove());
      if (!n || !scale) return hideTip();
      el('line', { class: 'cursor', x1: scale.x(n.t), x2: scale.x(n.t), y1: T, y2: H - B }, svg);
      cursor = n.index;
      showTip(cx, cy, n.lines);
    }

    const px = (ev) => {
      const r = svg.getBoundingClientRect();
      return (ev.clientX - r.left) / r.width * W;
    };
    let drag = null;
    svg.addEventListener('mousemove', (ev) => {
      if (!scale) return;
      const at = px(ev);
      if (drag) {
        drag.rect.setAttribute('x', Math.min(drag.x, at));
        drag.rect.setAttribute('width', Math.abs(at - drag.x));
      }
      cursorAt(scale.tOf(at), ev.clientX, ev.clientY);
    });
    svg.addEventListener('mouseleave', () => { hideTip(); svg.querySelectorAll('.cursor').forEach((c) => c.remove()); });
    svg.addEventListener('mousedown', (ev) => {
      if (!scale || !o.onZoom) return;
      const at = px(ev);
      drag = { x: at, rect: el('rect', { class: 'zoom', x: at, y: T, width: 0, height: H - T - B }, svg) };
    });
    window.addEventListener('mouseup', (ev) => {
      if (!drag) return;
      const at = px(ev), d = drag;
      drag = null;
      d.rect.remove();
      if (Math.abs(at - d.x) > 6 && scale) {
        const a = scale.tOf(Math.min(at, d.x)), b = scale.tOf(Math.max(at, d.x));
        o.onZoom(Math.round(a), Math.round(b));
      }
    });
    svg.addEventListener('keydown', (ev) => {
      const s = series.find((_, i) => !hidden.has(i));
      if (!s || !s.points.length || !scale) return;
      if (ev.key === 'ArrowRight' || ev.key === 'ArrowLeft') {
        cursor = Math.max(0, Math.min(s.points.length - 1, cursor + (ev.key === 'ArrowRight' ? 1 : -1)));
        const r = svg.getBoundingClientRect();
        cursorAt(s.points[cursor][0], r.left + r.width / 2, r.top);
        ev.preventDefault();
      } else if (ev.key === 'Escape') {
        hideTip();
      }
    });
    svg.addEventListener('blur', hideTip);
    draw();
    return { svg, redraw: draw };
  }

  // Horizontal bars: items [{label, value, note}].
  function bars(host, o) {
    const W = 800, row = 28, L = 160;
    const items = o.items || [];
    const H = Math.max(row, items.length * row) + 8;
    const fig = html('figure', { class: 'chart' });
    fig.appendChild(html('figcaption', {}, o.title));
    const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `${o.title}: ` + items.map((i) => `${i.label} ${fmt(i.value)}`).join(', ') }, fig);
    svg.dataset.points = String(items.length);
    const max = Math.max(1, ...items.map((i) => i.value));
    items.forEach((it, k) => {
      const y = 4 + k * row;
      el('text', { x: L - 8, y: y + 17, 'text-anchor': 'end' }, svg).textContent = it.label;
      const w = (W - L - 120) * it.value / max;
      el('rect', { x: L, y: y + 4, width: Math.max(1, w), height: row - 10, fill: COLORS[0], rx: 3 }, svg);
      el('text', { x: L + w + 6, y: y + 17 }, svg).textContent = fmt(it.value) + (it.note ? '  ' + it.note : '');
    });
    host.appendChild(fig);
    return { svg };
  }

  // A flow (Sankey-style) diagram of transitions [{from, to, count}], laid out in columns by
  // the first step at which each feature is reached from `$start`.
  function flow(host, o) {
    const edges = (o.edges || []).filter((e) => e.from !== e.to);
    const depth = { $start: 0 };
    for (let round = 0; round < 8; round++) {
      edges.forEach((e) => {
        if (depth[e.from] !== undefined && depth[e.to] === undefined) depth[e.to] = depth[e.from] + 1;
      });
    }
    const maxDepth = Math.max(1, ...Object.values(depth));
    if (depth.$end !== undefined) depth.$end = maxDepth;
    const cols = {};
    Object.entries(depth).forEach(([n, d]) => { (cols[d] = cols[d] || []).push(n); });
    const W = 800, colH = Math.max(...Object.values(cols).map((c) => c.length)) * 46 + 20, H = Math.max(160, colH);
    const pos = {};
    Object.entries(cols).forEach(([d, names]) => names.forEach((n, i) => {
      pos[n] = { x: 40 + d * (W - 140) / maxDepth, y: 20 + i * 46 };
    }));
    const fig = html('figure', { class: 'chart' });
    fig.appendChild(html('figcaption', {}, o.title));
    const shown = edges.filter((e) => pos[e.from] && pos[e.to] && depth[e.to] > depth[e.from]);
    const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `${o.title}: ` + shown.slice(0, 10).map((e) => `${e.from} to ${e.to} ${e.count}`).join(', ') }, fig);
    svg.dataset.points = String(shown.length);
    const max = Math.max(1, ...shown.map((e) => e.count));
    shown.forEach((e) => {
      const a = pos[e.from], b = pos[e.to];
      const mid = (a.x + b.x) / 2;
      const p = el('path', { d: `M${a.x + 60},${a.y + 10} C${mid},${a.y + 10} ${mid},${b.y + 10} ${b.x},${b.y + 10}`,
        fill: 'none', stroke: COLORS[0], 'stroke-opacity': 0.35, 'stroke-width': 2 + 18 * e.count / max }, svg);
      el('title', {}, p).textContent = `${e.from} → ${e.to}: ${e.count}`;
    });
    Object.entries(pos).forEach(([n, p]) => {
      el('rect', { x: p.x, y: p.y, width: 60, height: 20, rx: 4, fill: 'var(--card)', stroke: 'var(--muted)' }, svg);
      el('text', { x: p.x + 30, y: p.y + 14, 'text-anchor': 'middle' }, svg).textContent = n.length > 10 ? n.slice(0, 9) + '…' : n;
    });
    host.appendChild(fig);
    return { svg };
  }

  // A heat table: rows [{label, size, cells: [fraction]}].
  function heat(host, o) {
    const t = html('table', { class: 'heat' });
    t.appendChild(html('caption', { class: 'sr' }, o.title));
    const head = html('tr');
    ['cohort', 'users'].concat((o.rows[0] || { cells: [] }).cells.map((_, i) => `+${i}`)).forEach((h) => head.appendChild(html('th', { scope: 'col' }, h)));
    t.appendChild(head);
    o.rows.forEach((r) => {
      const tr = html('tr');
      tr.appendChild(html('th', { scope: 'row' }, r.label));
      tr.appendChild(html('td', {}, String(r.size)));
      r.cells.forEach((c) => {
        const td = html('td', {}, (c * 100).toFixed(0) + ' %');
        td.style.background = `rgba(47, 99, 201, ${0.1 + 0.8 * c})`;
        tr.appendChild(td);
      });
      t.appendChild(tr);
    });
    host.appendChild(html('h2', {}, o.title));
    host.appendChild(t);
  }

  window.TDA_CHARTS = { line, bars, flow, heat, fmt, html, timeLabel, DAY };
})();
