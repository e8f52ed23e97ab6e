// Invariant: a first copy and each resync not on a terminal show their progress as plain lines (`copy:`,
// `resync:`), one each time the interval passed since the last line and one when the last file is in, so a
// service's journal shows progress too; on a terminal the bar takes every report and prints no such line.
// Each copy starts afresh: a resync gets its own bar, and its own last line even when it has as many
// files as the copy before it. The resync tests fail without it (a resync's lines said `copy:`, its last
// line was left out when its count equalled the first copy's, and its bar was updated after it stopped).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { copyReporter, progressLine, type ProgressBar } from '#cli/copy-progress.js';
import type { CopyProgress } from '#copy/copy.js';
import { NODE_ARGS, ROOT, STATE_DIR, cli, freePort, journalState, readLogs, secretFile, sleep, spawnServer, stopChild, tmpDir, waitConverged } from './helpers.js';

const at = (files: number, totalFiles = 10): CopyProgress => ({ files, totalFiles, bytes: files * 100, totalBytes: totalFiles * 100 });

test('not on a terminal: a line when the interval passed since the last one, and one when all files are in', () => {
  let now = 0;
  const lines: string[] = [];
  const r = copyReporter({ bar: null, print: (l) => lines.push(l), everyMs: 5000, now: () => now });
  // [time of the report, files copied]: the first report prints, then only one 5 s after the last line.
  const reports: Array<[number, number]> = [[0, 0], [1000, 1], [4999, 2], [5000, 3], [7000, 4], [9999, 5], [10000, 6], [10001, 7], [11000, 10], [11001, 10]];
  r.begin('first copy');
  for (const [t, files] of reports) {
    now = t;
    r.progress(at(files));
  }
  r.end();
  assert.deepEqual(lines, [progressLine(at(0)), progressLine(at(3)), progressLine(at(6)), progressLine(at(10))]);
  assert.equal(lines[1], 'copy: 3/10 files, 300 B of 1000 B');
});

test('on a terminal: the bar takes every report, no line is printed', () => {
  const calls: string[] = [];
  const bar: ProgressBar = {
    start: (total, value) => calls.push(`start ${value}/${total}`),
    update: (value) => calls.push(`update ${value}`),
    stop: () => calls.push('stop'),
  };
  const lines: string[] = [];
  let now = 0;
  const r = copyReporter({ bar, print: (l) => lines.push(l), everyMs: 5000, now: () => now });
  for (const kind of ['first copy', 'resync'] as const) {
    r.begin(kind);
    for (const f of [0, 4, 10]) {
      now += 10;
      r.progress(at(f));
    }
    r.end();
  }
  const one = ['start 0/10', 'update 4', 'update 10', 'stop'];
  assert.deepEqual(calls, [...one, ...one], 'the resync has a bar of its own');
  assert.deepEqual(lines, []);
});

test('not on a terminal: a resync prints its own lines, labelled, up to its last file', () => {
  let now = 0;
  const lines: string[] = [];
  const r = copyReporter({ bar: null, print: (l) => lines.push(l), everyMs: 5000, now: () => now });
  for (const kind of ['first copy', 'resync'] as const) {
    r.begin(kind);
    for (const f of [0, 5, 10]) {
      now += 1000;
      r.progress(at(f));
    }
    r.end();
  }
  assert.deepEqual(lines, ['copy: 0/10 files, 0 B of 1000 B', 'copy: 10/10 files, 1000 B of 1000 B', 'resync: 0/10 files, 0 B of 1000 B', 'resync: 10/10 files, 1000 B of 1000 B']);
});

test('a client started as a service would be (stdout and stderr not a terminal) prints copy lines up to all files, and resync lines for a resync', { timeout: 180_000 }, async (t) => {
  const [srv, cl, logs] = [tmpDir('intersync-srv-'), tmpDir('intersync-cli-'), tmpDir('intersync-logs-')];
  mkdirSync(join(srv.path, 'site'));
  for (let i = 0; i < 600; i++) writeFileSync(join(srv.path, 'site', `p${i}.html`), `<p>${i}</p>\n`);
  const port = await freePort();
  // A small retention: a client away while 20 records are journaled must resync.
  const server = await spawnServer(srv.path, logs.path, port, ['--retain-records', '5']);
  t.after(async () => {
    await stopChild(server, 'SIGKILL');
    for (const d of [srv, cl, logs]) d.cleanup();
  });
  // INTERSYNC_PROGRESS_MS=0: a line at every report, so the test waits for no interval.
  const child = spawn(process.execPath, [...NODE_ARGS, '--log-dir', logs.path, '--state-dir', STATE_DIR, '--server', `http://127.0.0.1:${port}`,
    '--secret-file', secretFile(srv.path), cl.path], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, INTERSYNC_PROGRESS_MS: '0' } });
  t.after(() => stopChild(child, 'SIGKILL'));
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  await new Promise<void>((res, rej) => {
    child.stdout.on('data', () => {
      if (out.includes('stop with Ctrl-C')) res();
    });
    child.once('exit', (code) => rej(new Error(`client exited with ${code}: ${out}`)));
  });
  await waitConverged([srv.path, cl.path]);
  const copies = out.split('\n').filter((l) => l.startsWith('copy: '));
  const counts = copies.map((l) => Number(/^copy: (\d+)\/601 files, /.exec(l)?.[1] ?? NaN));
  assert.ok(copies.length >= 2, `progress lines, not only the last: ${out}`);
  assert.ok(counts.every((n, i) => Number.isInteger(n) && (i === 0 || n >= counts[i - 1]!)), `counts grow: ${copies.join(' | ')}`);
  assert.equal(counts.at(-1), 601, 'the last line has every file (600 pages and their folder)');
  assert.ok(!out.includes('\u001b[') && !out.includes('first copy |'), 'no bar, no terminal escapes');
  assert.match(out, /^first copy: 601 files from /m);
  // The status of the client says the copy is done.
  const st = JSON.parse(cli(['status', cl.path, '--json']).stdout) as { client: { firstCopy: { done: boolean; files: number } } };
  assert.deepEqual([st.client.firstCopy.done, st.client.firstCopy.files], [true, 601]);
  assert.equal(readFileSync(join(cl.path, 'site', 'p7.html'), 'utf8'), '<p>7</p>\n');

  // A resync: the client is away while the server journals and prunes 20 records; back, it copies again.
  const count = (re: RegExp): number => readLogs(logs.path).split('\n').filter((l) => re.test(l)).length;
  assert.equal(cli(['disconnect', cl.path]).code, 0);
  await until('the client is disconnected', () => count(/"msg":"disconnected on request"/) > 0);
  const rcvd = BigInt(JSON.parse(cli(['status', cl.path, '--json']).stdout).client.lastRcvd as string);
  for (let i = 0; i < 20; i++) writeFileSync(join(srv.path, 'site', `n${i}.html`), `<p>new ${i}</p>\n`);
  await until('the server pruned the records the client missed', () => journalState(srv.path).firstKept > rcvd + 1n);
  assert.equal(cli(['reconnect', cl.path, '--no-wait']).code, 0); // the output below is read in this process while it runs
  // A resync places only what differs from the server's: the 20 new pages.
  await until('the resync placed every file that differs', () => /^resync: 20\/20 files, /m.test(out));
  await waitConverged([srv.path, cl.path]);
  const resyncs = out.split('\n').filter((l) => l.startsWith('resync: '));
  const rc = resyncs.map((l) => Number(/^resync: (\d+)\/20 files, /.exec(l)?.[1] ?? NaN));
  assert.ok(rc.every((n, i) => Number.isInteger(n) && (i === 0 || n >= rc[i - 1]!)), `counts grow: ${resyncs.join(' | ')}`);
  assert.equal(out.split('\n').filter((l) => l.startsWith('copy: ')).length, copies.length, 'the resync does not print first-copy lines');
  // The log is written apart from stdout: the line may follow the last progress line by a moment.
  await until('the resync is logged as done', () => count(/"msg":"resync done"/) > 0);
  assert.equal(count(/"msg":"resync done"/), 1);
});


async function until(what: string, fn: () => boolean): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (fn()) return;
    await sleep(100);
  }
  assert.fail(`timed out waiting for ${what}`);
}
