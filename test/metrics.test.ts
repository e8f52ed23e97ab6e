// Invariant: /metrics is Prometheus text that parses line by line, needs the fileset credential on the
// server's port (not on --metrics), and its counters move as records flow: journaled on the server,
// forwarded to the client, applied there; lag per peer is exported in records and seconds.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { request } from 'undici';
import { cli, freePort, journalState, secretFile, sleep, spawnClient, spawnServer, stopChild, tmpDir, waitConverged } from './helpers.js';

type Samples = Map<string, number>;

/** A strict reader of the Prometheus text format (0.0.4): HELP/TYPE comments and `name{labels} value` lines only. */
function parseProm(text: string): Samples {
  const out: Samples = new Map();
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const c = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (c !== null) {
      if (c[1] === 'TYPE') {
        assert.match(c[3]!, /^(counter|gauge|histogram|summary|untyped)$/, line);
        types.set(c[2]!, c[3]!);
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.eE+-]+|[Nn][Aa][Nn]|[+-]?[Ii]nf)( [0-9]+)?$/.exec(line);
    assert.ok(m !== null, `not a Prometheus sample line: ${line}`);
    const base = m[1]!.replace(/_(bucket|sum|count|total)$/, '');
    assert.ok(types.has(m[1]!) || types.has(base), `sample without TYPE: ${line}`);
    out.set(`${m[1]}${m[2] ?? ''}`, Number(m[3]));
  }
  return out;
}

async function scrape(url: string, secret?: string): Promise<{ status: number; samples: Samples }> {
  const res = await request(url, secret === undefined ? {} : { headers: { authorization: `Bearer ${secret}` } });
  const text = await res.body.text();
  return { status: res.statusCode, samples: res.statusCode === 200 ? parseProm(text) : new Map() };
}

function sum(s: Samples, prefix: string): number {
  let n = 0;
  for (const [k, v] of s) if (k === prefix || k.startsWith(`${prefix}{`)) n += v;
  return n;
}

test('counters move as records flow from server to client; lag per peer in records and seconds', async (t) => {
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

  mkdirSync(join(srv.path, 'site'));
  for (let i = 0; i < 25; i++) writeFileSync(join(srv.path, 'site', `page${i}.html`), `<p>${i}</p>\n`.repeat(100));
  const has = (dir: string): number => Number(journalState(dir).records);
  for (let i = 0; i < 200 && (has(srv.path) < 26 || journalState(cdir.path).lastTid < journalState(srv.path).lastTid); i++) await sleep(100);
  await waitConverged([srv.path, cdir.path]);
  // The scrape after convergence: the client's ack and apply counts are in.
  let s1 = (await scrape(srvUrl, secret)).samples;
  let c1 = (await scrape(cliUrl)).samples;
  for (let i = 0; i < 50 && sum(s1, 'intersync_lag_records') > 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    s1 = (await scrape(srvUrl, secret)).samples;
    c1 = (await scrape(cliUrl)).samples;
  }
  const journaled = sum(s1, 'intersync_records_journaled') - sum(s0, 'intersync_records_journaled');
  assert.ok(journaled >= 26, `journaled ${journaled} (a mkdir and 25 files, each a create and maybe a write)`);
  const forwarded = sum(s1, 'intersync_records_forwarded_total') - sum(s0, 'intersync_records_forwarded_total');
  assert.equal(forwarded, journaled, 'every record journaled was forwarded to the one client');
  const applied = sum(c1, 'intersync_records_applied_total') - sum(c0, 'intersync_records_applied_total');
  assert.equal(applied, journaled, 'and applied there');
  assert.ok(sum(s1, 'intersync_bytes{direction="out"}') > sum(s0, 'intersync_bytes{direction="out"}') + 25 * 1000, 'content bytes went out');
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
