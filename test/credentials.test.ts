// Invariant: a node whose own secret or credential is missing or unreadable stops at once with a clear
// error (code NO_CREDENTIAL, a hint that says what to do) and exit code 1; it never runs on unable to
// authenticate, and never replaces a lost secret behind its clients' backs (issue 19, item 4).
//
// Each test FAILS without the fix (checked by reverting src/ to the commit before it):
// - a server whose secret was deleted made a new one silently and ran (clients enrolling with the old one
//   were refused with no word why);
// - a client whose credential was deleted, started while its server was away, ran on for ever (killed
//   here at the deadline), journaling and retrying; with the server up it exited 2 with BAD_ARGUMENT;
// - a missing --secret-file was "NO_SUCH_DIRECTORY … create the directory first (mkdir -p)".
// - a server's self-signed TLS key that could not be read (here a directory at its name) was
//   "[INTERNAL] EISDIR … this is a bug", and one deleted beside its certificate was replaced by a new pair
//   silently, so every client that had pinned the old certificate was refused with no word why (the last
//   test; fails without daemon/server-keys.ts readTlsPair and the check of the pair).
// - a client's --tls-ca that was missing, unreadable or not PEM was "[INTERNAL] ENOENT … this is a bug" (the
//   fifth test; fails without net/peer-client.ts readCa).
// Runs the real CLI in separate processes on 127.0.0.1; every process is stopped by its pid.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { NODE_ARGS, ROOT, STATE_DIR, cli, freePort, secretFile, spawnClient, spawnServer, stopChild, tmpDir, waitConverged } from './helpers.js';

interface Run { code: number | null; stdout: string; stderr: string; timedOut: boolean }

/** Run the CLI until it exits, or kill it (by its pid) at the deadline. */
function runToExit(args: string[], deadlineMs = 30_000): Promise<Run> {
  const child = spawn(process.execPath, [...NODE_ARGS, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((res) => {
    let timedOut = false;
    const t = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    }, deadlineMs);
    child.on('exit', (code) => {
      clearTimeout(t);
      res({ code, stdout, stderr, timedOut });
    });
  });
}

function assertNoCredential(r: Run, file: string): void {
  assert.equal(r.timedOut, false, `the process exits by itself (it ran on: ${r.stdout}${r.stderr})`);
  assert.equal(r.code, 1, `exit code 1 (stderr: ${r.stderr})`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one error line, got: ${r.stderr}`);
  assert.match(lines[0]!, /^intersync: .*\[NO_CREDENTIAL\] \(hint: .+\)$/);
  assert.ok(lines[0]!.includes(file), 'the line names the file');
  assert.doesNotMatch(r.stderr, /INTERNAL|this is a bug/);
}

test('a server whose fileset secret was deleted refuses to start, says what to do, and exits 1', async (t) => {
  const d = tmpDir();
  const logs = tmpDir('intersync-cred-logs-');
  t.after(() => {
    d.cleanup();
    logs.cleanup();
  });
  assert.equal(cli(['mkfs', d.path]).code, 0);
  const secret = secretFile(d.path);
  const before = readFileSync(secret, 'utf8');
  rmSync(secret);
  const port = await freePort();
  const r = await runToExit(['--log-dir', logs.path, '--state-dir', STATE_DIR, '--listen', `127.0.0.1:${port}`, d.path]);
  assertNoCredential(r, secret);
  assert.match(r.stderr, /backup|openssl rand/, 'the hint says how to get a secret back');
  assert.equal(existsSync(secret), false, 'no new secret made behind the clients\' backs');
  assert.equal(existsSync(join(d.path, '.intermezzo/default/daemon.pid')), false, 'the pid file is released');

  // An empty one is the same refusal (an empty secret must never stand for one); the secret put back starts it.
  writeFileSync(secret, '\n');
  const empty = await runToExit(['--log-dir', logs.path, '--state-dir', STATE_DIR, '--listen', `127.0.0.1:${port}`, d.path]);
  assertNoCredential(empty, secret);
  writeFileSync(secret, before);
  chmodSync(secret, 0o600);
  const up = await spawnServer(d.path, logs.path, port);
  await stopChild(up);
});

test('a client whose credential was deleted stops with NO_CREDENTIAL and exit 1, whether its server is up or away', async (t) => {
  const srv = tmpDir('intersync-cred-srv-');
  const cl = tmpDir('intersync-cred-cl-');
  const logs = tmpDir('intersync-cred-logs-');
  const port = await freePort();
  const server = await spawnServer(srv.path, logs.path, port);
  t.after(async () => {
    await stopChild(server);
    for (const x of [srv, cl, logs]) x.cleanup();
  });
  const client = await spawnClient(cl.path, logs.path, port, secretFile(srv.path));
  writeFileSync(join(srv.path, 'a'), 'from the server\n');
  await waitConverged([srv.path, cl.path]);
  await stopChild(client);
  const node = readFileSync(join(cl.path, '.intermezzo', 'node-id'), 'utf8').trim();
  const credential = join(STATE_DIR, node, 'default', 'credential');
  assert.ok(existsSync(credential), 'the client enrolled and kept its credential');
  rmSync(credential);

  // Server up: refused at start.
  const url = `http://127.0.0.1:${port}`;
  assertNoCredential(await runToExit(['--log-dir', logs.path, '--state-dir', STATE_DIR, '--server', url, cl.path]), credential);
  // Server away: a client may start off line, but not one that could never join again.
  await stopChild(server);
  assertNoCredential(await runToExit(['--log-dir', logs.path, '--state-dir', STATE_DIR, '--server', url, cl.path]), credential);
  assert.equal(existsSync(join(cl.path, '.intermezzo/default/daemon.pid')), false, 'the pid file is released');
});

test('a --secret-file that does not exist is NO_CREDENTIAL, not a missing directory', async (t) => {
  const cl = tmpDir('intersync-cred-cl-');
  const logs = tmpDir('intersync-cred-logs-');
  t.after(() => {
    cl.cleanup();
    logs.cleanup();
  });
  const missing = join(cl.path, '..', `no-such-secret-${process.pid}`);
  const port = await freePort();
  assertNoCredential(await runToExit(['--log-dir', logs.path, '--state-dir', STATE_DIR, '--server', `http://127.0.0.1:${port}`, '--secret-file', missing, cl.path]), missing);
});

test('a server whose TLS key is unreadable or deleted refuses to start with NO_CREDENTIAL naming it, and makes no new pair', async (t) => {
  const d = tmpDir();
  const logs = tmpDir('intersync-cred-logs-');
  t.after(() => {
    d.cleanup();
    logs.cleanup();
  });
  assert.equal(cli(['mkfs', d.path]).code, 0);
  const state = dirname(secretFile(d.path));
  const key = join(state, 'tls-key.pem');
  const cert = join(state, 'tls-cert.pem');
  const certBefore = readFileSync(cert, 'utf8');
  const port = await freePort();
  const start = (): Promise<Run> => runToExit(['--log-dir', logs.path, '--state-dir', STATE_DIR, '--listen', `https://127.0.0.1:${port}`, d.path]);

  // Unreadable: a directory where the key should be.
  renameSync(key, `${key}.kept`);
  mkdirSync(key);
  const unreadable = await start();
  assertNoCredential(unreadable, key);
  assert.match(unreadable.stderr, /cannot be read/);
  rmdirSync(key);

  // Deleted, its certificate still there: clients pinned that certificate, so no new pair is made over it.
  const deleted = await start();
  assertNoCredential(deleted, key);
  assert.match(deleted.stderr, /backup/, 'the hint says how to get the pair back');
  assert.equal(existsSync(key), false, 'no new key made');
  assert.equal(readFileSync(cert, 'utf8'), certBefore, 'the certificate clients pinned is left as it was');

  // Put back, the server starts with the same certificate.
  renameSync(`${key}.kept`, key);
  const up = await spawnServer(d.path, logs.path, port, ['--listen', `https://127.0.0.1:${port}`]);
  await stopChild(up);
  assert.equal(readFileSync(cert, 'utf8'), certBefore);
});

test('a client whose --tls-ca is missing, unreadable or not a certificate stops with NO_CREDENTIAL naming it', async (t) => {
  const cl = tmpDir('intersync-cred-cl-');
  const logs = tmpDir('intersync-cred-logs-');
  t.after(() => {
    cl.cleanup();
    logs.cleanup();
  });
  const secret = join(logs.path, 'secret');
  writeFileSync(secret, 'a'.repeat(64), { mode: 0o600 });
  const port = await freePort(); // nobody listens: the file is refused before any connection
  const start = (ca: string): Promise<Run> => runToExit([
    '--log-dir', logs.path, '--state-dir', STATE_DIR, '--server', `https://127.0.0.1:${port}`, '--tls-ca', ca, '--secret-file', secret, '--connect-timeout', '5', cl.path,
  ]);
  const missing = join(logs.path, 'no-such-ca.pem');
  assertNoCredential(await start(missing), missing);
  const dir = join(logs.path, 'ca-dir.pem');
  mkdirSync(dir);
  assertNoCredential(await start(dir), dir);
  const garbage = join(logs.path, 'garbage.pem');
  writeFileSync(garbage, 'not a certificate\n');
  assertNoCredential(await start(garbage), garbage);
});
