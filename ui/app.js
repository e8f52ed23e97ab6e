// The dashboard: summary every 2 s, samples and KML records as server-sent events, three uPlot charts.
'use strict';
const $ = (s) => document.querySelector(s);
const esc = (t) => String(t ?? '').replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
const plots = {};
const series = { t: [], lag: [], records: [], bytes: [] };

async function api(path, body) {
  const res = await fetch(`api/${path}`, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (res.status === 401) { showLogin(); throw new Error('log in'); }
  const j = await res.json();
  if (!res.ok) throw new Error(j.error?.message ?? res.statusText);
  return j;
}

function showLogin() { $('#login').hidden = false; $('#main').hidden = true; }

$('#login').addEventListener('submit', async (e) => {
  e.preventDefault();
  const res = await fetch('api/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ password: $('#password').value }) });
  if (!res.ok) { $('#login-error').textContent = 'wrong password'; return; }
  start();
});

function plot(id, label) {
  const el = $(id);
  plots[id] = new uPlot({ width: 360, height: 180, series: [{}, { label, stroke: '#36c', width: 2 }], axes: [{}, {}], legend: { show: false } }, [[], []], el);
}

function redraw() {
  plots['#plot-lag'].setData([series.t, series.lag]);
  plots['#plot-records'].setData([series.t, series.records]);
  plots['#plot-bytes'].setData([series.t, series.bytes]);
}

function addSample(s) {
  series.t.push(s.t); series.lag.push(s.lag); series.records.push(s.records); series.bytes.push(s.bytes);
  for (const k of Object.keys(series)) if (series[k].length > 600) series[k].shift();
}

function addKml(r) {
  const tr = document.createElement('tr');
  tr.innerHTML = `<td>${esc(r.tid)}</td><td>${esc(r.kind)}</td><td class="path">${esc(r.path)}</td><td>${esc(r.size ?? '')}</td><td>${esc(r.origin)}</td>`;
  const body = $('#kml tbody');
  body.insertBefore(tr, body.firstChild);
  while (body.children.length > 100) body.removeChild(body.lastChild);
}

async function refresh() {
  const s = await api('summary');
  $('#who').textContent = `${s.fileset} (${s.role}) ${s.dir}`;
  $('#fileset').innerHTML = [
    ['fileset', `${s.fileset} ${s.uuid}`], ['role', s.role], ['node', s.nodeId], ['directory', s.dir], ['last TID', s.lastTid],
    ['write token', s.tokens.length === 0 ? 'none held' : s.tokens.map((t) => `${t.words} held by ${t.holder}`).join(', ')],
    ['pending LML', s.pendingLml], ['conflicts', `${s.conflictCounts.open} open, ${s.conflictCounts.settled} settled`],
  ].map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('');
  $('#peers tbody').innerHTML = s.peers.map((p) => `<tr><td>${esc(p.peer)}</td><td class="${p.connected ? 'on' : 'off'}">${p.connected ? 'connected' : 'away'}</td>` +
    `<td>${p.lagRecords}</td><td>${p.lagSeconds ?? '?'}</td><td>${p.history.map((h) => `${new Date(h.t).toLocaleTimeString()} ${h.connected ? 'up' : 'down'}`).map(esc).join(', ')}</td></tr>`).join('');
  $('#lml').innerHTML = s.lml.map((r) => `<li>${esc(r.kind)} ${esc(r.path)}</li>`).join('');
  $('#conflicts').innerHTML = s.conflicts.length === 0 ? '<p>none</p>' : s.conflicts.map((c) => `<div class="conflict" data-id="${c.id}" data-path="${esc(c.path)}">
      <b>${esc(c.path)}</b> [${esc(c.kind)}] policy ${esc(c.policy)}
      <div class="sides"><div>remote (at the name)<pre>${esc(c.remote?.text ?? '(gone)')}</pre></div>
      <div>local (kept at ${esc(c.kept ?? '-')})<pre>${esc(c.local?.text ?? '(gone)')}</pre></div></div>
      <button data-keep="local">keep local</button> <button data-keep="remote">keep remote</button> <button data-keep="both">keep both</button></div>`).join('');
}

$('#conflicts').addEventListener('click', async (e) => {
  const keep = e.target.dataset?.keep;
  const box = e.target.closest('.conflict');
  if (keep === undefined || box === null) return;
  await api('resolve', { id: Number(box.dataset.id), keep });
  await refresh();
});

let started = false;
async function start() {
  try { await refresh(); } catch (e) { console.error(`dashboard: ${e.message}`); return; }
  $('#login').hidden = true; $('#main').hidden = false;
  if (started) return;
  started = true;
  plot('#plot-lag', 'lag'); plot('#plot-records', 'records/s'); plot('#plot-bytes', 'bytes/s');
  const ev = new EventSource('api/events');
  ev.addEventListener('hello', (m) => { const d = JSON.parse(m.data); d.samples.forEach(addSample); d.tail.forEach(addKml); redraw(); });
  ev.addEventListener('sample', (m) => { addSample(JSON.parse(m.data)); redraw(); });
  ev.addEventListener('kml', (m) => addKml(JSON.parse(m.data)));
  setInterval(() => refresh().catch(() => undefined), 2000);
}

start();
