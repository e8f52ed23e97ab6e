// Invariant: --bwlimit RATE holds a node's content transfers to RATE on average, in both directions, whether
// the limit is the client's or the server's; and a large file moving either way, and a reintegration of many
// records, print progress lines on a node not on a terminal (a line per look here: INTERSYNC_PROGRESS_MS=0).
// The rate is measured from the progress lines of the node that paces the bytes (each line timestamped as it
// arrives): the bytes between the first and last line over the time between them. Figures are printed.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { validateValue } from '#cli/config-schema.js';
import { IntersyncError } from '#core/errors.js';
import { cli, freePort, journalState, readLogs, secretFile, sleep, spawnClient, spawnServer, stopChild, tmpDir, waitConverged } from '../helpers.js';

const MiB = 1 << 20;
const LIMIT = MiB; // --bwlimit 1m

/** Lines a daemon prints from now on, each with the time it arrived. */
function linesOf(child: ChildProcess): Array<{ t: number; line: string }> {
  const got: Array<{ t: number; line: string }> = [];
  let part = '';
  child.stdout!.on('data', (d: Buffer) => {
    const t = performance.now();
    const text = part + d.toString();
    const lines = text.split('\n');
    part = lines.pop()!;
    for (const line of lines) got.push({ t, line });
  });
  return got;
}

const UNIT: Record<string, number> = { B: 1, KiB: 1024, MiB, GiB: 1024 * MiB };

/** The rate of the transfer named `what` (e.g. "download big.bin"), from its progress lines, in bytes per second. */
function measured(lines: Array<{ t: number; line: string }>, what: string): { rate: number; bytes: number; secs: number; lines: number } {
  const re = new RegExp(`^${what.replace(/[.()]/g, '\\$&')}: ([0-9.]+) (B|KiB|MiB|GiB) of `);
  const pts = lines.flatMap(({ t, line }) => {
    const m = re.exec(line);
    return m === null ? [] : [{ t, bytes: Number(m[1]) * UNIT[m[2]!]! }];
  });
  assert.ok(pts.length >= 3, `progress lines of ${what}: ${lines.map((l) => l.line).join(' | ')}`);
  const first = pts[0]!;
  const last = pts.at(-1)!;
  const secs = (last.t - first.t) / 1000;
  return { rate: (last.bytes - first.bytes) / secs, bytes: last.bytes - first.bytes, secs, lines: pts.length };
}

const T0 = performance.now();
async function until(what: string, fn: () => boolean, detail: () => string = () => '', ms = 60_000): Promise<void> {
  for (const t0 = Date.now(); Date.now() - t0 < ms; await sleep(100)) {
    if (fn()) {
      console.log(`${((performance.now() - T0) / 1000).toFixed(1)} s: ${what}`);
      return;
    }
  }
  assert.fail(`timed out waiting for ${what}${detail() === '' ? '' : `; ${detail()}`}`);
}

const has = (lines: Array<{ line: string }>, re: RegExp): boolean => lines.some((l) => re.test(l.line));

/** A server and a client, each printing progress at every look; `--bwlimit 1m` on the one `limited` names. */
async function pair(t: { after: (fn: () => Promise<void>) => void }, limited: 'client' | 'server', rate: string) {
  const [srv, cl, logs] = [tmpDir('intersync-srv-'), tmpDir('intersync-cli-'), tmpDir('intersync-logs-')];
  const port = await freePort();
  const was = process.env.INTERSYNC_PROGRESS_MS;
  process.env.INTERSYNC_PROGRESS_MS = '0'; // inherited by the daemons spawned below
  const lim = ['--bwlimit', rate];
  const server = await spawnServer(srv.path, logs.path, port, limited === 'server' ? lim : []);
  const client = await spawnClient(cl.path, logs.path, port, secretFile(srv.path), limited === 'client' ? lim : []);
  if (was === undefined) delete process.env.INTERSYNC_PROGRESS_MS;
  else process.env.INTERSYNC_PROGRESS_MS = was;
  t.after(async () => {
    await stopChild(client, 'SIGKILL');
    await stopChild(server, 'SIGKILL');
    for (const d of [srv, cl, logs]) d.cleanup();
  });
  return { srv: srv.path, cl: cl.path, logs: logs.path, server, client, serverLines: linesOf(server), clientLines: linesOf(client) };
}

function check(what: string, m: ReturnType<typeof measured>, limit: number): void {
  console.log(`${what}: ${(m.bytes / MiB).toFixed(2)} MiB in ${m.secs.toFixed(2)} s = ${(m.rate / MiB).toFixed(3)} MiB/s (limit ${limit / MiB} MiB/s, ${m.lines} lines)`);
  // Within 10% over the limit is what the bucket guarantees (its burst is 1/4 s of the rate at most, 128 KiB);
  // the lower bound is generous: a busy machine may not keep up.
  assert.ok(m.rate <= limit * 1.1, `${what}: ${m.rate} B/s is over the limit`);
  assert.ok(m.rate >= limit * 0.5, `${what}: ${m.rate} B/s is far under the limit`);
}

// BWLIMIT_MIB=20 measures over a 20 s transfer each way (the issue's figure); 8 keeps npm test short.
const SIZE_MIB = Number(process.env.BWLIMIT_MIB ?? 8);

test(`--bwlimit 1m on a client: ${SIZE_MIB} MiB down and ${SIZE_MIB} MiB up at 1 MiB/s; progress of both files and of a reintegration of many records`, { timeout: 240_000 + SIZE_MIB * 4_000 }, async (t) => {
  const p = await pair(t, 'client', '1m');
  const st = JSON.parse(cli(['status', p.cl, '--json']).stdout) as { client: { bwlimit: number | null } };
  assert.equal(st.client.bwlimit, LIMIT, 'status --json shows the limit');

  // Server to client: the client fetches the blocks of a file made on the server.
  writeFileSync(join(p.srv, 'down.bin'), randomBytes(SIZE_MIB * MiB));
  await until('the download is done', () => has(p.clientLines, /^download down\.bin: done/));
  check('server -> client, client limited', measured(p.clientLines, 'download down.bin'), LIMIT);

  // Client to server: the reintegrator uploads a file made on the client.
  writeFileSync(join(p.cl, 'up.bin'), randomBytes(SIZE_MIB * MiB));
  await until('the upload is done', () => has(p.clientLines, /^upload up\.bin: done/));
  check('client -> server, client limited', measured(p.clientLines, 'upload up.bin'), LIMIT);
  await waitConverged([p.srv, p.cl]);

  // Many records made while away, sent on reconnection (at 1 MiB/s: 1,500 files of 4 KiB take about 6 s). The
  // progress counts records as batches (500 at most) are answered, and with pipelined batches two answers can
  // come within one progress tick: with 600 files (two batches) CI once saw no line part-way; four batches now.
  assert.equal(cli(['disconnect', p.cl]).code, 0);
  // The daemon reads the switch within its poll: files made before that would go out one by one, and fewer than
  // 1,501 records would ever be pending (CI failed on it under load).
  await until('the client is disconnected', () => readLogs(p.logs).includes('"msg":"disconnected on request"'));
  mkdirSync(join(p.cl, 'many'));
  for (let i = 0; i < 1500; i++) writeFileSync(join(p.cl, 'many', `f${i}.txt`), randomBytes(2048).toString('hex'));
  await until('capture journaled them', () => journalState(p.cl).lml >= 1501);
  assert.equal(cli(['reconnect', p.cl, '--no-wait']).code, 0);
  // At least 1,501 records: under load capture may see a file made empty, then written, and journal both (CI
  // failed on a test that waited for exactly that many).
  const doneOf = (line: string): number => Number(/^reintegration: (\d+)\/\1 records sent, done in /.exec(line)?.[1] ?? 0);
  await until('the reintegration is done', () => p.clientLines.some((l) => doneOf(l.line) >= 1501), () =>
    `the client's last lines: ${p.clientLines.slice(-8).map((l) => l.line).join(' | ')}; journal ${JSON.stringify(journalState(p.cl))}`);
  const total = Math.max(...p.clientLines.map((l) => doneOf(l.line)));
  const counts = p.clientLines.flatMap(({ line }) => {
    const m = /^reintegration: (\d+)\/(\d+) records sent, \d+\/s$/.exec(line);
    return m === null || Number(m[2]) !== total ? [] : [Number(m[1])];
  });
  console.log(`reintegration of ${total} records, progress lines: ${counts.join(', ')}`);
  assert.ok(counts.some((n) => n > 0 && n < total), `a line part-way: ${counts.join(', ')}`);
  assert.ok(counts.every((n, i) => i === 0 || n >= counts[i - 1]!), 'counts grow');
  await waitConverged([p.srv, p.cl]);
});

test('--bwlimit 2m on a server: what it sends and what it receives at 2 MiB/s (4 MiB each way)', { timeout: 240_000 }, async (t) => {
  const p = await pair(t, 'server', '2m');
  const st = JSON.parse(cli(['status', p.srv, '--json']).stdout) as { server: { bwlimit: number | null } };
  assert.equal(st.server.bwlimit, 2 * MiB, 'status --json shows the limit');
  // The server's own lines: it paces the bytes (the client's socket buffers would blur an upload seen from the client).
  writeFileSync(join(p.srv, 'down.bin'), randomBytes(4 * MiB));
  await until('the download is done', () => has(p.serverLines, /^download down\.bin: done/));
  check('server -> client, server limited', measured(p.serverLines, 'download down.bin'), 2 * MiB);
  writeFileSync(join(p.cl, 'up.bin'), randomBytes(4 * MiB));
  await until('the upload is done', () => has(p.serverLines, /^upload \(new file [^)]+\): done/));
  const name = p.serverLines.map((l) => /^(upload \(new file [^)]+\)): done/.exec(l.line)?.[1]).find((x) => x !== undefined)!;
  check('client -> server, server limited', measured(p.serverLines, name), 2 * MiB);
  await waitConverged([p.srv, p.cl]);
});

test('a bad --bwlimit, on the command line or in the config file, is refused with its code before anything is made', () => {
  const dir = tmpDir('intersync-bw-bad-');
  try {
    const r = cli(['--listen', '127.0.0.1:0', '--bwlimit', '2x', dir.path]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--bwlimit "2x" is not a rate \[BAD_ARGUMENT\]/);
    assert.equal(existsSync(join(dir.path, '.intermezzo')), false, 'no fileset left behind');
    const conf = join(dir.path, 'c.toml');
    writeFileSync(conf, 'bwlimit = "100"\n');
    const f = cli(['--config', conf, '--listen', '127.0.0.1:0', dir.path]);
    assert.equal(f.code, 1, f.stderr);
    assert.match(f.stderr, /bwlimit = "100": .*below the smallest limit.*\[BAD_CONFIG\]/);
    assert.equal(validateValue('f', 'bwlimit', '2m'), '2m');
    assert.throws(() => validateValue('f', 'bwlimit', 'fast'), (e: unknown) => e instanceof IntersyncError && e.code === 'BAD_CONFIG');
  } finally {
    dir.cleanup();
  }
});
