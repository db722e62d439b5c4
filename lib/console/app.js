/* The console of reco-serve: three views over the server's JSON (a user,
 * an item, the live metrics), drawn with the DOM and SVG only. */
'use strict';

const main = document.getElementById('main');
let timer = null;

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids.flat(Infinity)) {
    if (k === null || k === undefined) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

async function api(path) {
  const r = await fetch(path, { credentials: 'same-origin' });
  let body;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) {
    const msg = body && body.error ? body.error.message : r.status + ' ' + r.statusText;
    throw new Error(msg);
  }
  return body;
}

function fmt(x) {
  if (typeof x !== 'number') return String(x);
  if (x !== 0 && (Math.abs(x) < 0.001 || Math.abs(x) >= 1e6)) return x.toExponential(3);
  return String(Math.round(x * 10000) / 10000);
}

/* A duration in seconds, in the largest unit that keeps it above 1. */
function human(s) {
  const u = [[86400, 'd'], [3600, 'h'], [60, 'min']];
  for (const [n, name] of u) if (Math.abs(s) >= n) return fmt(Math.round(s / n * 10) / 10) + ' ' + name;
  return fmt(Math.round(s * 10) / 10) + ' s';
}

/* A time as YYYY-MM-DD hh:mm:ss (UTC). */
function iso(ms) { return new Date(ms).toISOString().replace('T', ' ').slice(0, 19); }

function itemLink(id) {
  return el('a', { href: '#/item/' + encodeURIComponent(id), class: 'item' }, id);
}

function table(id, heads, rows) {
  return el('table', { id: id },
    el('thead', {}, el('tr', {}, heads.map(h => el('th', { class: h.num ? 'num' : '' }, h.t || h)))),
    el('tbody', {}, rows));
}

function card(title, body, wide) {
  return el('div', { class: 'card' + (wide ? ' wide' : '') }, el('h3', {}, title), body);
}

function lookupForm(kind, value) {
  const input = el('input', { type: 'text', id: kind + '-input', placeholder: kind + ' id', value: value || '' });
  return el('form', { id: kind + '-form', onsubmit: e => {
    e.preventDefault();
    if (input.value) location.hash = '#/' + kind + '/' + encodeURIComponent(input.value);
  } }, input, el('button', { type: 'submit', id: kind + '-go' }, 'Show'));
}

function show(...nodes) { main.replaceChildren(...nodes); }
function fail(where, e) { where.append(el('p', { class: 'error', id: 'error' }, e.message)); }

/* ---- the user view ---- */

function itemRows(list, withReason) {
  return list.map((x, k) => el('tr', { 'data-item': x.item, 'data-score': x.score, 'data-reason': x.reason || '' },
    el('td', { class: 'num' }, k + 1), el('td', {}, itemLink(x.item)),
    el('td', { class: 'num' }, fmt(x.score)), withReason ? el('td', {}, el('span', { class: 'tag' }, x.reason)) : null));
}

/* The view of kind (user or item) for id: its form, then its data from
 * the console's API (null, the error shown, if there is none). */
async function lookup(kind, title, id) {
  show(el('h2', {}, title), lookupForm(kind, id));
  if (!id) return null;
  try {
    const d = await api('/console/api/' + kind + '?' + kind + '=' + encodeURIComponent(id) + '&n=10');
    const m = d.answer || d;
    document.getElementById('model').textContent = 'model ' + m.model + ' · variant ' + m.variant;
    return d;
  } catch (e) {
    fail(main, e);
    return null;
  }
}

async function userView(id) {
  const d = await lookup('user', 'User', id);
  if (!d) return;
  const a = d.answer, p = d.profile;
  const cards = el('div', { class: 'cards', id: 'user-view' });
  cards.append(card('Recommendations (' + (a.cold ? 'cold start, ' : '') + 'profile ' + d.profile_status + ')',
    table('recs', ['#', 'item', { t: 'score', num: 1 }, 'reason'], itemRows(a.items || [], true))));
  if (p) {
    const counts = Object.entries(p.counts || {});
    cards.append(card('Profile', el('dl', { class: 'kv', id: 'profile' },
      el('dt', {}, 'events'), el('dd', { id: 'profile-events' }, p.events),
      el('dt', {}, 'sessions'), el('dd', {}, p.sessions),
      el('dt', {}, 'first seen'), el('dd', {}, iso(p.first_seen)),
      el('dt', {}, 'last seen'), el('dd', {}, iso(p.last_seen)),
      el('dt', {}, 'by type'), el('dd', { id: 'counts' }, counts.map(([t, n]) => t + ' ' + n).join(', ')))));
    cards.append(card('Recent history', table('history', ['time (UTC)', 'type', 'item'],
      (p.history || []).slice().reverse().map(h => el('tr', { 'data-item': h.item || '', 'data-type': h.type },
        el('td', {}, iso(h.ts)), el('td', {}, h.type), el('td', {}, h.item ? itemLink(h.item) : h.query || ''))))));
    cards.append(card('Cart', table('cart', ['item', { t: 'qty', num: 1 }],
      (p.cart || []).map(c => el('tr', { 'data-item': c.item }, el('td', {}, itemLink(c.item)), el('td', { class: 'num' }, c.qty))))));
    cards.append(card('Purchases', table('purchases', ['time', 'item', { t: 'qty', num: 1 }],
      (p.purchases || []).map(c => el('tr', { 'data-item': c.item }, el('td', {}, iso(c.ts)), el('td', {}, itemLink(c.item)),
        el('td', { class: 'num' }, c.qty))))));
    const aff = (id, list) => table(id, ['value', { t: 'score', num: 1 }],
      (list || []).map(x => el('tr', {}, el('td', {}, x.id || x.value || x.name), el('td', { class: 'num' }, fmt(x.score)))));
    cards.append(card('Categories', aff('categories', p.categories)));
    cards.append(card('Brands', aff('brands', p.brands)));
  } else
    cards.append(card('Profile', el('p', { class: 'muted', id: 'profile' }, 'no profile (' + d.profile_status + ')')));
  const src = el('div', { class: 'cards' });
  for (const [name, list] of Object.entries(d.sources))
    src.append(card(name + ' alone', list.length ? table('src-' + name, ['#', 'item', { t: 'score', num: 1 }], itemRows(list, false))
      : el('p', { class: 'muted', id: 'src-' + name }, 'nothing')));
  cards.append(el('div', { class: 'wide' }, el('h2', {}, 'What each source alone recommends'), src));
  main.append(cards);
}

/* ---- the item view ---- */

async function itemView(id) {
  const d = await lookup('item', 'Item', id);
  if (!d) return;
  const it = d.item;
  const cards = el('div', { class: 'cards', id: 'item-view' });
  const attrs = Object.entries(it.attrs);
  cards.append(card('Attributes', attrs.length ? el('dl', { class: 'kv', id: 'attrs' },
    attrs.map(([k, v]) => [el('dt', {}, k), el('dd', { 'data-attr': k }, v)])) : el('p', { class: 'muted', id: 'attrs' }, 'none (--items)')));
  if (it.known) {
    cards.append(card('Popularity', el('dl', { class: 'kv', id: 'stats' },
      el('dt', {}, 'count'), el('dd', { id: 'stat-count' }, fmt(it.count)),
      el('dt', {}, 'decayed count'), el('dd', {}, fmt(it.decayed_count)),
      el('dt', {}, 'trend'), el('dd', {}, fmt(it.trend) + ' sd'),
      el('dt', {}, 'last event'), el('dd', {}, it.last_event))));
    const list = (tid, l) => l.length ? table(tid, ['#', 'item', { t: 'score', num: 1 }], itemRows(l, false))
      : el('p', { class: 'muted', id: tid }, 'none');
    cards.append(card('Co-occurrence neighbours (cooc)', list('cooc', it.cooc)));
    cards.append(card('What came next (seq)', list('next', it.next)));
    cards.append(card('Nearest by factors (cosine)', list('factors', it.factors)));
  } else
    cards.append(card('Model', el('p', { class: 'muted' }, 'the model has not seen this item')));
  main.append(cards);
}

/* ---- the live view ---- */

const series = { t: [], rps: [], p50: [], p99: [], e5: [], e503: [], age: [], reloads: [] };
let last = null;
const MAXPTS = 120;

/* The upper bound in seconds of fine histogram bucket b (as reco-serve's). */
function bucketTop(b) {
  if (b < 8) return (b + 1) / 1e9;
  const e = Math.floor(b / 8) + 2, m = b % 8;
  return (8 + m + 1) * Math.pow(2, e - 3) / 1e9;
}

function quantile(hist, q) {
  let tot = 0;
  for (const v of hist.values()) tot += v;
  if (!tot) return null;
  const want = Math.ceil(q * tot);
  let acc = 0;
  for (const b of [...hist.keys()].sort((x, y) => x - y)) {
    acc += hist.get(b);
    if (acc >= want) return bucketTop(b);
  }
  return null;
}

function sumReq(d, pred) {
  let n = 0;
  for (const [c, v] of Object.entries(d.requests)) if (pred(+c)) n += v;
  return n;
}

function push(name, v) {
  series[name].push(v);
  if (series[name].length > MAXPTS) series[name].shift();
}

function sample(d) {
  if (last) {
    const dt = (d.now - last.now) / 1000 || 1;
    const lh = new Map(last.latency), h = new Map();
    for (const [b, v] of d.latency) {
      const x = v - (lh.get(b) || 0);
      if (x > 0) h.set(b, x);
    }
    push('t', d.now);
    push('rps', (sumReq(d, () => true) - sumReq(last, () => true)) / dt);
    const p50 = quantile(h, 0.5), p99 = quantile(h, 0.99);
    push('p50', p50 === null ? 0 : p50 * 1000);
    push('p99', p99 === null ? 0 : p99 * 1000);
    push('e5', (sumReq(d, c => c >= 500) - sumReq(last, c => c >= 500)) / dt);
    push('e503', (sumReq(d, c => c === 503) - sumReq(last, c => c === 503)) / dt);
    const v0 = d.variants[0];
    push('age', v0 && v0.event_time ? d.now / 1000 - v0.event_time : 0);
    push('reloads', d.reloads);
  }
  last = d;
}

const COLORS = ['#2457c5', '#b54708', '#12805c', '#b42318'];

/* A plot of the named series, drawn in an SVG of 600 x 140 units. */
function plot(id, names, unit) {
  const W = 600, H = 140, L = 70, B = 16;
  let max = 0;
  for (const n of names) for (const v of series[n]) if (v > max) max = v;
  if (!(max > 0)) max = 1;
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
  svg.setAttribute('class', 'plot');
  svg.setAttribute('id', id);
  const text = (x, y, s) => {
    const t = document.createElementNS(svg.namespaceURI, 'text');
    t.setAttribute('x', x); t.setAttribute('y', y); t.textContent = s;
    svg.append(t);
  };
  text(2, 16, unit === 's' ? human(max) : fmt(max) + ' ' + unit);
  text(2, H - B, '0');
  const axis = document.createElementNS(svg.namespaceURI, 'polyline');
  axis.setAttribute('points', L + ',4 ' + L + ',' + (H - B) + ' ' + W + ',' + (H - B));
  axis.setAttribute('stroke', '#dde1e8');
  svg.append(axis);
  names.forEach((n, k) => {
    const v = series[n], pl = document.createElementNS(svg.namespaceURI, 'polyline');
    const step = (W - L) / (MAXPTS - 1);
    pl.setAttribute('points', v.map((y, j) =>
      (L + (MAXPTS - v.length + j) * step).toFixed(1) + ',' + (H - B - (y / max) * (H - B - 8)).toFixed(1)).join(' '));
    pl.setAttribute('stroke', COLORS[k % COLORS.length]);
    pl.setAttribute('data-series', n);
    pl.setAttribute('data-points', v.length);
    svg.append(pl);
  });
  if (series.t.length) text(W - 150, H - 2, new Date(series.t[series.t.length - 1]).toISOString().slice(11, 19) + ' UTC');
  return svg;
}

function legend(names) {
  return el('div', { class: 'legend' }, names.map((n, k) =>
    el('span', {}, el('i', { style: 'background:' + COLORS[k % COLORS.length] }), n)));
}

function drawLive(d) {
  const tot = d.variants.reduce((s, v) => s + v.requests, 0) || 1;
  const cards = el('div', { class: 'cards', id: 'live-view' });
  cards.append(card('Requests per second', [plot('plot-rps', ['rps'], '/s')]));
  cards.append(card('Latency (recent requests)', [plot('plot-latency', ['p50', 'p99'], 'ms'), legend(['p50', 'p99'])]));
  cards.append(card('Errors per second', [plot('plot-errors', ['e5', 'e503'], '/s'), legend(['5xx', '503'])]));
  cards.append(card('Snapshot age (by event time)', [plot('plot-age', ['age'], 's')]));
  cards.append(card('Server', el('dl', { class: 'kv', id: 'server' },
    el('dt', {}, 'uptime'), el('dd', {}, fmt(d.uptime) + ' s'),
    el('dt', {}, 'in flight'), el('dd', {}, d.inflight),
    el('dt', {}, 'p50 / p99 since start'), el('dd', {}, fmt(d.p50 * 1000) + ' / ' + fmt(d.p99 * 1000) + ' ms'),
    el('dt', {}, 'reloads'), el('dd', { id: 'reloads' }, d.reloads + ' (' + d.reload_failures + ' refused)'),
    el('dt', {}, 'cold starts'), el('dd', {}, d.cold),
    el('dt', {}, 'answers without profile'), el('dd', {}, d.degraded),
    el('dt', {}, 'Redis breaker'), el('dd', {}, d.breaker_open ? 'open' : 'closed'))));
  cards.append(card('Variants', table('variants', ['variant', 'model', { t: 'users %', num: 1 }, { t: 'requests', num: 1 },
    { t: 'share %', num: 1 }, { t: 'impressions', num: 1 }],
    d.variants.map(v => el('tr', { 'data-variant': v.name }, el('td', {}, v.name), el('td', {}, v.version || 'none'),
      el('td', { class: 'num' }, v.share), el('td', { class: 'num' }, v.requests),
      el('td', { class: 'num' }, fmt(100 * v.requests / tot)),
      el('td', { class: 'num' }, d.impressions_written ? v.impressions : '-'))))));
  show(el('h2', {}, 'Live'), cards);
}

async function liveTick() {
  try {
    const d = await api('/console/api/live');
    sample(d);
    drawLive(d);
    const v0 = d.variants[0];
    document.getElementById('model').textContent = v0 && v0.version ? 'model ' + v0.version : '';
  } catch (e) {
    show(el('h2', {}, 'Live')); fail(main, e);
  }
}

function liveView() {
  liveTick();
  timer = setInterval(liveTick, 1000);
}

/* ---- routing ---- */

function route() {
  if (timer) { clearInterval(timer); timer = null; }
  const parts = location.hash.replace(/^#\/?/, '').split('/');
  const view = parts[0] || 'user', arg = decodeURIComponent(parts.slice(1).join('/'));
  for (const v of ['user', 'item', 'live'])
    document.getElementById('nav-' + v).classList.toggle('on', v === view);
  if (view === 'item') itemView(arg);
  else if (view === 'live') liveView();
  else userView(arg);
}

window.addEventListener('hashchange', route);
route();
