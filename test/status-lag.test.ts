// Invariant: both ends of a link tell the same lag. While a client is behind, `intersync status --json`
// on the server (its peer) and on the client show the same records missing and the same `lagSince` (the
// time the oldest missing record was journaled; lag in seconds is counted from it), and the client shows
// the files and bytes still to come, the large file in transfer with its progress, and the bytes on its
// connections. A client busy with a record is never "lag 0" while the server counts it behind.
//
// Fails without the change (checked by reverting src/: no transfers, no lagSince): the client's status had
// no lagSince and counted its seconds from its last apply, had no files or bytes waiting down, no transfer
// either way and no bytes; and, busy with a record that came after the server's last ping, it said lag 0
// records while the server said 1 (checked by removing the use of the record frame's `last`: part 2 fails).
//
// A resync (the client away past the server's retention) is held the same way, and both ends still show the
// same lag, in seconds too. Fails without the change (server.ts `next` on the snapshot and copy stream, asked
// from the client's last_rcvd): the client's status said lagSince null and lagSeconds null ("lag N records /
// ? s") for the whole resync, while the server counted seconds from the oldest record the client missed.
// It also fails without the ack at a stream's hello (client-node.ts): after a first copy or a resync with
// no record following, the client said lag 0 while the server counted it behind for good (here: "the
// server counts the client caught up" timed out after the first copy of index.html).
//
// The client's block fetches pass a proxy that holds them on request, so "behind" lasts until the test
// lets it go: nothing here depends on timing.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cli, diskDigest, journalState, proxiedPair, sleep, tmpDir, waitConverged } from './helpers.js';

interface Waiting { records: number; files: number; bytes: number; atLeast: boolean }
interface Peer { node: string; lagRecords: number; lagSince: number | null; lagSeconds: number; waiting: Waiting }
interface Transfer { direction: string; path: string; size: number; total: number; bytes: number }
interface ClientView {
  connected: boolean; resyncs: number; firstCopy: { done: boolean } | null; offline: boolean; lastRcvd: string; lagRecords: number | null; lagSince: number | null; lagSeconds: number | null;
  waitingDown: Waiting | null; transfers: Transfer[]; bytesIn: number | null; bytesOut: number | null;
}

function status<T>(dir: string): T {
  const r = cli(['status', dir, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as T;
}
const peerOf = (srv: string): Peer => {
  const peers = status<{ server: { peers: Peer[] } }>(srv).server.peers;
  assert.equal(peers.length, 1, 'one peer');
  return peers[0]!;
};
const clientOf = (dir: string): ClientView => status<{ client: ClientView }>(dir).client;
/** What the client daemon published last (written every second): cheap to poll. */
const published = (dir: string): ClientView =>
  (JSON.parse(readFileSync(join(dir, '.intermezzo/default/status.json'), 'utf8')) as { client: ClientView }).client;

async function until(what: string, fn: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (await fn()) return;
    await sleep(100);
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** The journal time of the record of `path` on the server (`kml --json`): what the lag counts from. */
function journaledAt(dir: string, path: string): number {
  const recs = cli(['kml', dir, '--json']).stdout.trim().split('\n').map((l) => JSON.parse(l) as { path: string; time: number });
  return recs.filter((r) => r.path === path).at(-1)!.time;
}

test('server and client show the same lag, waiting files and bytes; the client shows its transfer and bytes', { timeout: 240_000 }, async (t) => {
  const { srv, cli: c, proxy } = await proxiedPair(t, { match: /^POST \/v1\/filesets\/[^/ ]+\/blocks/, delayMs: 0 });
  const stage = tmpDir('intersync-stage-'); // same file system: a rename into the tree is one record
  t.after(stage.cleanup);
  const bigFile = (name: string, size: number): Buffer => {
    const buf = randomBytes(size);
    writeFileSync(join(stage.path, name), buf);
    renameSync(join(stage.path, name), join(srv, name));
    return buf;
  };
  // The client's published status is a second old at most: wait for it to say connected, so that the
  // "disconnected" below is the daemon's answer to the request, not a status written before it connected.
  await until('the client is connected', () => published(c).connected);
  await until('the server counts the client caught up', () => peerOf(srv).lagRecords === 0);
  const before = published(c);

  // 1. Changes made while the client is away: at reconnection the stream's hello says what it misses.
  assert.equal(cli(['disconnect', c]).code, 0);
  await until('the client is disconnected', () => {
    const v = published(c);
    return v.offline && !v.connected;
  });
  proxy.pause();
  const records0 = journalState(srv).records;
  bigFile('big.bin', 3 << 20);
  await until('the server journals big.bin', () => journalState(srv).records > records0);
  for (let i = 0; i < 4; i++) writeFileSync(join(srv, `small${i}.txt`), `small file ${i}\n`.repeat(50));
  await until('the server journals everything', async () => journalState(srv).digest === (await diskDigest(srv)));
  assert.equal(cli(['reconnect', c, '--no-wait']).code, 0); // the proxy in this process holds the transfer: not blocked on it
  await until('the client fetches big.bin (held)', () => proxy.paused >= 1);
  await until('the client lists its transfer', () => published(c).transfers.length === 1);

  const p = peerOf(srv);
  const cl = clientOf(c);
  const since = journaledAt(srv, 'big.bin');
  assert.ok(p.lagRecords >= 5, `the server counts big.bin and four small files: ${p.lagRecords}`);
  assert.deepEqual([cl.lagRecords, cl.lagSince], [p.lagRecords, p.lagSince], 'the same records missing, counted from the same record');
  assert.equal(p.lagSince, since, 'lag counts from the oldest missing record: big.bin');
  assert.ok(cl.lagSeconds !== null && cl.lagSeconds >= 0 && p.lagSeconds >= 0);
  assert.deepEqual(cl.waitingDown, p.waiting, 'the same files and bytes waiting');
  assert.equal(p.waiting.files, 5);
  assert.equal(p.waiting.bytes, (3 << 20) + 4 * `small file 0\n`.length * 50);
  assert.deepEqual(cl.transfers.map((x) => [x.direction, x.path, x.size, x.total, x.bytes]), [['down', 'big.bin', 3 << 20, 3 << 20, 0]]);
  assert.ok(cl.bytesIn !== null && cl.bytesOut !== null && cl.bytesIn > 0 && cl.bytesOut > 0, 'bytes on the wire are counted');
  const human = cli(['status', c]).stdout;
  assert.match(human, new RegExp(`lag ${p.lagRecords} records / \\d+ s`));
  assert.match(human, new RegExp(`down \\(from it\\): ${p.lagRecords} records, 5 files, 3\\.0 MiB$`, 'm'));
  assert.match(human, /^ {2}transfer down: big\.bin 0 B of 3\.0 MiB \(0%\)$/m);
  assert.match(human, /^ {2}bytes on the wire since start: \S+ \S+ in, \S+ \S+ out$/m);

  proxy.resume();
  await waitConverged([srv, c]);
  await until('the server counts the client caught up again', () => peerOf(srv).lagRecords === 0);
  await until('the client is caught up, nothing in transfer', () => {
    const v = published(c);
    return v.lagRecords === 0 && v.transfers.length === 0;
  });
  const caught = clientOf(c);
  assert.deepEqual([caught.lagRecords, caught.lagSince, caught.lagSeconds, caught.waitingDown], [0, null, 0, { records: 0, files: 0, bytes: 0, atLeast: false }]);
  assert.ok(caught.bytesIn! > before.bytesIn! + (3 << 20), 'big.bin came in over the counted connections');

  // 2. Connected and caught up, a large file arrives: busy with it, the client counts itself behind
  // (before, its lag came from the last ping, sent before the record: "lag 0").
  proxy.pause();
  bigFile('big2.bin', 2 << 20);
  await until('the client fetches big2.bin (held)', () => proxy.paused >= 2);
  await until('the client lists its transfer', () => published(c).transfers.some((x) => x.path === 'big2.bin'));
  const p2 = peerOf(srv);
  const c2 = clientOf(c);
  assert.equal(p2.lagRecords, 1);
  assert.deepEqual([c2.lagRecords, c2.lagSince], [1, p2.lagSince]);
  assert.equal(p2.lagSince, journaledAt(srv, 'big2.bin'));
  assert.deepEqual(c2.transfers.map((x) => [x.direction, x.path, x.total]), [['down', 'big2.bin', 2 << 20]]);
  proxy.resume();
  await waitConverged([srv, c]);
  assert.deepEqual(readFileSync(join(c, 'big2.bin')).length, 2 << 20);

  // 3. A large file written on the client goes up block by block: listed as a transfer up until the
  // server has taken it (the proxy holds the upload, so the listing lasts until the test lets it go).
  proxy.match = /^POST \/v1\/filesets\/[^/ ]+\/upload/;
  const held = proxy.paused;
  proxy.pause();
  const up = randomBytes(2 << 20);
  writeFileSync(join(stage.path, 'up.bin'), up);
  renameSync(join(stage.path, 'up.bin'), join(c, 'up.bin'));
  await until('the client uploads up.bin (held)', () => proxy.paused > held);
  await until('the client lists its upload', () => published(c).transfers.some((x) => x.path === 'up.bin'));
  const c3 = clientOf(c);
  assert.deepEqual(c3.transfers.map((x) => [x.direction, x.path, x.size, x.total]), [['up', 'up.bin', 2 << 20, 2 << 20]]);
  assert.ok(c3.transfers[0]!.bytes <= 2 << 20);
  assert.match(cli(['status', c]).stdout, /^ {2}transfer up: up\.bin \S+ \S+ of 2\.0 MiB \(\d+%\)$/m);
  proxy.resume();
  await waitConverged([srv, c]);
  assert.ok(readFileSync(join(srv, 'up.bin')).equals(up));
  await until('nothing in transfer', () => published(c).transfers.length === 0);
});

test('during a resync both ends show the same lag, in records and seconds', { timeout: 240_000 }, async (t) => {
  const { srv, cli: c, proxy } = await proxiedPair(t, { match: /^POST \/v1\/filesets\/[^/ ]+\/blocks/, delayMs: 0, serverArgs: ['--retain-records', '5'],
    // A file to start with: the client's resync then reads the server's snapshot (a copy into an empty tree streams instead).
    prepare: (s) => writeFileSync(join(s, 'index.html'), '<p>home</p>\n'),
  });
  const stage = tmpDir('intersync-stage-');
  t.after(stage.cleanup);
  await until('the client is connected', () => published(c).connected);
  await until('the server counts the client caught up', () => peerOf(srv).lagRecords === 0);
  assert.equal(cli(['disconnect', c]).code, 0);
  await until('the client is disconnected', () => {
    const v = published(c);
    return v.offline && !v.connected;
  });
  // Away while more than the 5 retained records are journaled: back, the client must resync from a snapshot.
  const rcvd = BigInt(clientOf(c).lastRcvd);
  proxy.pause();
  writeFileSync(join(stage.path, 'big.bin'), randomBytes(3 << 20));
  renameSync(join(stage.path, 'big.bin'), join(srv, 'big.bin'));
  for (let i = 0; i < 12; i++) writeFileSync(join(srv, `n${i}.txt`), `new ${i}\n`);
  await until('the server journals everything', async () => journalState(srv).digest === (await diskDigest(srv)));
  await until('the server pruned records the client missed', () => journalState(srv).firstKept > rcvd + 1n);
  // And down to its retention (it prunes once a second): a prune between the snapshot the resync reads and the
  // status read below moved the server's oldest missing record past the one the snapshot named (a CI run: the
  // two lagSince 4 ms apart).
  await until('the server keeps its last 5 records only', () => {
    const j = journalState(srv);
    return j.lastTid - j.firstKept + 1n <= 5n;
  });
  assert.equal(cli(['reconnect', c, '--no-wait']).code, 0); // the proxy in this process holds the transfer
  await until('the resync fetches big.bin (held)', () => proxy.paused >= 1);
  // Each end rewrites its status file every second: wait until the client's says the resync is running.
  // (Before, the test read it at once and, under load, met the status of before the resync.)
  await until('the client\'s status shows the resync running', () => clientOf(c).firstCopy?.done === false);

  const p = peerOf(srv);
  const cl = clientOf(c);
  assert.ok(p.lagRecords >= 13 && p.lagSince !== null, `the server counts what the client misses: ${JSON.stringify(p)}`);
  assert.deepEqual([cl.lagRecords, cl.lagSince], [p.lagRecords, p.lagSince], 'the same records missing, counted from the same record');
  assert.ok(cl.lagSeconds !== null && cl.lagSeconds >= 0, `lag in seconds during the resync: ${cl.lagSeconds}`);
  assert.match(cli(['status', c]).stdout, new RegExp(`lag ${p.lagRecords} records / \\d+ s`));

  proxy.resume();
  await waitConverged([srv, c]);
  await until('the client is caught up', () => {
    const v = published(c);
    return v.lagRecords === 0 && v.lagSeconds === 0;
  });
  assert.ok(clientOf(c).resyncs >= 1, 'it was a resync');
  // With no record after the resync, the client acknowledges the position the resync placed at its stream's hello.
  await until('the server counts the client caught up after the resync', () => peerOf(srv).lagRecords === 0);
});

