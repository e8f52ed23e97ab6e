// Invariant: /metrics is Prometheus text that a Prometheus text parser reads (every family typed), needs
// the fileset credential on the server's port (not on --metrics), and its counters move as records flow,
// scraped while they flow: journaled on the server, forwarded to the client, applied there, by the same
// count per batch, never going back; lag per peer is exported in records and seconds.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { request } from 'undici';
import { FilesetDb } from '#journal/fileset-db.js';
import { findFileset } from '#journal/layout.js';
import { cli, freePort, secretFile, sleep, spawnClient, spawnServer, stopChild, tmpDir, waitConverged } from './helpers.js';

type Samples = Map<string, number>;

/**
 * /metrics read with a real Prometheus text parser (parse-prometheus-text-format, a port of the Prometheus
 * Python client's): it throws on a line that is not the format. Every family must have a TYPE and a HELP;
 * each sample becomes `name{label="v",…}` (labels sorted) -> value.
 */
function parseProm(text: string): Samples {
  const out: Samples = new Map();
  for (const f of parsePrometheusTextFormat(text)) {
    assert.notEqual(f.type, 'UNTYPED', `${f.name}: a sample without its TYPE`);
    assert.notEqual(f.help, '', `${f.name}: no HELP`);
    for (const m of f.metrics) {
      if (m.value === undefined) continue; // a histogram's or summary's buckets (Node's own metrics)
      const v = Number(m.value);
      assert.ok(!Number.isNaN(v) || /^nan$/i.test(m.value), `${f.name}: value ${m.value}`); // Go's ParseFloat takes any case of NaN
      const labels = Object.entries(m.labels ?? {}).sort(([a], [b]) => a.localeCompare(b)).map(([k, x]) => `${k}="${x}"`).join(',');
      out.set(labels === '' ? f.name : `${f.name}{${labels}}`, v);
    }
  }
  return out;
}

async function scrape(url: string, secret?: string): Promise<{ status: number; samples: Samples }> {
  // Bounded: a port taken by another process (a free port is only free until someone binds it) must fail the
  // test, not hang it (a CI run beside other tests waited 18 minutes here).
  const bounds = { headersTimeout: 15_000, bodyTimeout: 15_000 };
  const res = await request(url, secret === undefined ? bounds : { ...bounds, headers: { authorization: `Bearer ${secret}` } });
  const text = await res.body.text();
  return { status: res.statusCode, samples: res.statusCode === 200 ? parseProm(text) : new Map() };
}

function sum(s: Samples, prefix: string): number {
  let n = 0;
  for (const [k, v] of s) if (k === prefix || k.startsWith(`${prefix}{`)) n += v;
  return n;
}

/** Objects in a node's journal (read-only, while its daemon runs). */
function objects(dir: string): number {
  const db = FilesetDb.open(findFileset(dir).db, { readonly: true, check: false });
  try {
    return db.objectCount();
  } finally {
    db.close();
  }
}

/** The counters that must move with records, summed over their labels, on the server (s) and the client (c). */
function flow(s: Samples, c: Samples): { journaled: number; forwarded: number; applied: number; bytesOut: number } {
  return {
    journaled: sum(s, 'intersync_records_journaled'), forwarded: sum(s, 'intersync_records_forwarded_total'),
    applied: sum(c, 'intersync_records_applied_total'), bytesOut: sum(s, 'intersync_bytes{direction="out"}'),
  };
}

test('counters move as records flow from server to client, scraped during the replication; lag per peer in records and seconds', { timeout: 300_000 }, async (t) => {
  const [srv, cdir, logs] = [tmpDir('intersync-srv-'), tmpDir('intersync-cli-'), tmpDir('intersync-logs-')];
  const [port, mport] = [await freePort(), await freePort()];
  const server = await spawnServer(srv.path, logs.path, port);
  const client = await spawnClient(cdir.path, logs.path, port, secretFile(srv.path), ['--metrics', `127.0.0.1:${mport}`]);
  t.after(async () => {
    await stopChild(client, 'SIGKILL');
    await stopChild(server, 'SIGKILL');
    for (const d of [srv, cdir, logs]) d.cleanup();
  });
  const secret = readFileSync(secretFile(srv.path), 'utf8').trim();
  const srvUrl = `http://127.0.0.1:${port}/metrics`;
  const cliUrl = `http://127.0.0.1:${mport}/metrics`;
  assert.equal((await scrape(srvUrl)).status, 401, 'the server\'s port asks for the credential');
  await waitConverged([srv.path, cdir.path]);
  const s0 = (await scrape(srvUrl, secret)).samples;
  const c0 = (await scrape(cliUrl)).samples;
  // Labelled counters (forwarded, refused, disconnections, errors by code) appear with their first event.
  for (const name of ['intersync_records_journaled', 'intersync_records_applied_total', 'intersync_lag_records', 'intersync_lag_seconds',
    'intersync_conflicts', 'intersync_token_waits_total', 'intersync_resyncs', 'intersync_capture_queue', 'intersync_bytes']) {
    for (const [who, s] of [['server', s0], ['client', c0]] as const) assert.ok([...s.keys()].some((k) => k === name || k.startsWith(`${name}{`)), `${name} exported by the ${who}`);
  }
  assert.equal(s0.get('intersync_errors_total{code="UNAUTHORIZED"}'), 1, 'the refused scrape is counted by code');
  assert.ok(s0.has('intersync_capture_queue') && c0.has('intersync_lml_pending'));

  // Three batches of changes on the server. Each is scraped while it flows (no wait: whatever the daemons
  // did so far), then once the client has it: every counter only grows, and each batch moves journaled,
  // forwarded and applied by the same number of records.
  mkdirSync(join(srv.path, 'site'));
  let before = flow(s0, c0);
  let total = 0;
  for (let batch = 0; batch < 3; batch++) {
    for (let i = 0; i < 10; i++) writeFileSync(join(srv.path, 'site', `b${batch}-page${i}.html`), `<p>${batch} ${i}</p>\n`.repeat(100));
    const during = flow((await scrape(srvUrl, secret)).samples, (await scrape(cliUrl)).samples);
    // The server has journaled the batch (the folder, ten files per batch), then the client has it all.
    for (let i = 0; i < 300 && objects(srv.path) < (batch + 1) * 10 + 1; i++) await sleep(100);
    await waitConverged([srv.path, cdir.path]);
    let s1 = (await scrape(srvUrl, secret)).samples;
    let c1 = (await scrape(cliUrl)).samples;
    // The client's ack (what the server's lag counts from) follows its apply by up to a second.
    for (let i = 0; i < 50 && sum(s1, 'intersync_lag_records') > 0; i++) {
      await sleep(100);
      s1 = (await scrape(srvUrl, secret)).samples;
      c1 = (await scrape(cliUrl)).samples;
    }
    const after = flow(s1, c1);
    for (const k of ['journaled', 'forwarded', 'applied', 'bytesOut'] as const) {
      assert.ok(before[k] <= during[k] && during[k] <= after[k], `batch ${batch}: ${k} only grows: ${before[k]} <= ${during[k]} <= ${after[k]}`);
    }
    const journaled = after.journaled - before.journaled;
    assert.ok(journaled >= 10, `batch ${batch}: journaled ${journaled} (ten files, each a create and maybe a write)`);
    assert.equal(after.forwarded - before.forwarded, journaled, `batch ${batch}: every record journaled was forwarded to the one client`);
    assert.equal(after.applied - before.applied, journaled, `batch ${batch}: and applied there`);
    assert.ok(after.bytesOut > before.bytesOut + 10 * 1000, `batch ${batch}: content bytes went out`);
    total += journaled;
    before = after;
  }
  assert.equal(before.journaled - flow(s0, c0).journaled, total);
  const s1 = (await scrape(srvUrl, secret)).samples;
  const peers = [...s1.keys()].filter((k) => k.startsWith('intersync_lag_records{peer='));
  assert.equal(peers.length, 1, 'one peer');
  assert.equal(s1.get(peers[0]!), 0, 'caught up');
  assert.ok(s1.has(peers[0]!.replace('lag_records', 'lag_seconds')));
  assert.equal(s1.get(peers[0]!.replace('lag_records', 'peer_connected')), 1);

  // Status tells the same story: conflicts open vs settled, nothing waiting either way once caught up.
  const st = JSON.parse(cli(['status', srv.path, '--json']).stdout) as { conflicts: { open: number; settled: number }; server: { peers: Array<{ lagRecords: number; lagSeconds: number; waiting: { files: number } }> } };
  assert.deepEqual(st.conflicts, { open: 0, settled: 0 });
  assert.deepEqual(st.server.peers.map((p) => [p.lagRecords, p.lagSeconds, p.waiting.files]), [[0, 0, 0]]);
  const ct = JSON.parse(cli(['status', cdir.path, '--json']).stdout) as { client: { waitingUp: { records: number; files: number; bytes: number } } };
  assert.deepEqual(ct.client.waitingUp, { records: 0, files: 0, bytes: 0, atLeast: false });
});
