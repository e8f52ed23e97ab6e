// The CLI's rough edges a new user met (issue 18, item 6), each with the command that showed it. Every test
// here fails on the code before this change: a bare --listen port was read as address 1858 and port 1; a start
// that failed on a busy port left a fileset behind; --server ftp://… was taken as host "ftp"; `help`,
// `help status` and a mistyped command were taken as a directory to serve; a client started before its server
// exited at once (its hint said it retried); `resolve --keep mine` was refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseListen } from '../src/cli/output.js';
import { NODE_ARGS, ROOT, STATE_DIR, cli, freePort, secretFile, spawnServer, stopChild, tmpDir, waitConverged } from './helpers.js';

test('--listen takes a bare port, ADDR:PORT, :PORT and [v6]:PORT', () => {
  assert.deepEqual(parseListen('18581'), { host: '0.0.0.0', port: 18581 });
  assert.deepEqual(parseListen(':7777'), { host: '0.0.0.0', port: 7777 });
  assert.deepEqual(parseListen('127.0.0.1:7777'), { host: '127.0.0.1', port: 7777 });
  assert.deepEqual(parseListen('[::1]:7777'), { host: '::1', port: 7777 });
  assert.equal(parseListen('none'), null);
  assert.throws(() => parseListen('1858:1:2'), /is not ADDR:PORT/);
});

test('a start that fails on a busy port exits 1 and leaves no fileset behind', { timeout: 60_000 }, async (t) => {
  const d = tmpDir();
  const busy = createServer();
  t.after(() => {
    busy.close();
    d.cleanup();
  });
  const port = await freePort();
  await new Promise<void>((res) => busy.listen(port, '127.0.0.1', () => res()));
  const www = join(d.path, 'www');
  mkdirSync(www);
  writeFileSync(join(www, 'index.html'), '<p>hello</p>\n');
  const r = cli(['--listen', `127.0.0.1:${port}`, '--state-dir', join(d.path, 'state'), www]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /EADDRINUSE[^\n]*\[IO\]/);
  assert.deepEqual(readdirSync(www), ['index.html'], 'no .intermezzo left in the directory');
  assert.deepEqual(existsSync(join(d.path, 'state')) ? readdirSync(join(d.path, 'state')) : [], [], 'no node state left behind');
});

test('--server with a scheme other than http(s) is refused', () => {
  const d = tmpDir();
  try {
    const r = cli(['--server', 'ftp://files.example', '--secret-file', join(d.path, 's'), d.path]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /not ftp:\/\/ \[BAD_ARGUMENT\]/);
  } finally {
    d.cleanup();
  }
});

test('help, help COMMAND and a mistyped command', () => {
  const h = cli(['help']);
  assert.equal(h.code, 0, h.stderr);
  assert.match(h.stdout, /Usage: intersync/);
  assert.match(h.stdout, /--settle-ms <N> +quiet time \(ms\) before a batch of changes is journaled \(default 20\)/);
  const hs = cli(['help', 'status']);
  assert.equal(hs.code, 0, hs.stderr);
  assert.match(hs.stdout, /Usage: intersync status/);
  const typo = cli(['stauts', '/tmp']);
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /unknown command 'stauts' \(did you mean status\?\) \[BAD_ARGUMENT\]/);
  assert.equal(existsSync(join(ROOT, 'stauts')), false, 'nothing made for it');
});

test('a client started before its server waits for it, then makes its first copy; --connect-timeout gives up cleanly', { timeout: 120_000 }, async (t) => {
  const s = tmpDir();
  const c = tmpDir();
  const c2 = tmpDir();
  const logs = tmpDir();
  const procs: Array<import('node:child_process').ChildProcess> = [];
  t.after(async () => {
    for (const p of procs) await stopChild(p);
    for (const d of [s, c, c2, logs]) d.cleanup();
  });
  writeFileSync(join(s.path, 'index.html'), '<p>hello</p>\n');
  assert.equal(cli(['mkfs', '--state-dir', STATE_DIR, s.path]).code, 0);
  const port = await freePort();

  // Gives up after 1 s, exit 1, and the directory is as it was.
  const gaveUp = cli(['--server', `http://127.0.0.1:${port}`, '--secret-file', secretFile(s.path), '--connect-timeout', '1', '--log-dir', logs.path, c2.path]);
  assert.equal(gaveUp.code, 1, gaveUp.stderr);
  assert.match(gaveUp.stderr, /waiting for the server, next try in/);
  assert.match(gaveUp.stderr, /did not answer within --connect-timeout 1s[^\n]*\[PEER_UNREACHABLE\]/);
  assert.deepEqual(readdirSync(c2.path), [], 'no .intermezzo left');

  // Without a timeout it waits, saying so, until the server comes.
  const client = spawn(process.execPath, [...NODE_ARGS, '--log-dir', logs.path, '--state-dir', STATE_DIR,
    '--server', `http://127.0.0.1:${port}`, '--secret-file', secretFile(s.path), c.path], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(client);
  let out = '';
  let err = '';
  client.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  client.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  for (let i = 0; i < 1200 && !/waiting for the server/.test(err); i++) await new Promise((r) => setTimeout(r, 50));
  assert.match(err, /cannot reach http:\/\/127\.0\.0\.1:\d+[^\n]*; waiting for the server, next try in [0-9.]+ s \(--connect-timeout to give up\)/);
  assert.equal(client.exitCode, null, 'still running');
  procs.push(await spawnServer(s.path, logs.path, port));
  for (let i = 0; i < 2400 && !out.includes('stop with Ctrl-C'); i++) await new Promise((r) => setTimeout(r, 50));
  assert.match(out, /first copy: 1 files from/);
  await waitConverged([s.path, c.path]);
});
