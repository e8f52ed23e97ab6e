// Invariant: bad input from the command line or a damaged file gets one clear error line with a stable
// code and a non-zero exit, and changes nothing on disk.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, truncateSync, writeFileSync, chmodSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { cli, tmpDir, type CliResult } from './helpers.js';

/** A fingerprint of every file under dir (names, sizes and content hashes). */
function fingerprint(dir: string): string {
  const h = createHash('sha256');
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = statSync(p);
      h.update(`${p}:${st.mode}:${st.size}\n`);
      if (st.isDirectory()) walk(p);
      else h.update(readFileSync(p));
    }
  };
  walk(dir);
  return h.digest('hex');
}

function assertOneLineError(r: CliResult, code: string, exit = 1): void {
  assert.equal(r.code, exit, `exit code (stderr: ${r.stderr})`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one error line, got: ${r.stderr}`);
  assert.match(lines[0]!, new RegExp(`^intersync: .*\\[${code}\\] \\(hint: .+\\)$`));
}

test('mkfs on a missing path, a file, or a directory without permission', (t) => {
  const d = tmpDir();
  t.after(d.cleanup);
  assertOneLineError(cli(['mkfs', join(d.path, 'missing')]), 'NO_SUCH_DIRECTORY');
  assert.equal(existsSync(join(d.path, 'missing')), false);

  writeFileSync(join(d.path, 'plain'), 'x');
  assertOneLineError(cli(['mkfs', join(d.path, 'plain')]), 'NOT_A_DIRECTORY');
  assert.equal(readFileSync(join(d.path, 'plain'), 'utf8'), 'x');

  // As an unprivileged user on a root-owned directory (root itself is never refused by the kernel).
  const locked = join(d.path, 'locked');
  mkdirSync(locked, { mode: 0o755 });
  chmodSync(d.path, 0o755);
  const r = cli(['mkfs', locked], { uid: 65534, gid: 65534 });
  assertOneLineError(r, 'PERMISSION_DENIED');
  assert.deepEqual(readdirSync(locked), []);
});

test('mkfs twice refuses without --force; --json prints what was made', (t) => {
  const d = tmpDir();
  t.after(d.cleanup);
  const first = cli(['mkfs', d.path, '--json']);
  assert.equal(first.code, 0, first.stderr);
  const made = JSON.parse(first.stdout) as { uuid: string; fileset: string; secretFile: string };
  assert.equal(made.fileset, 'default');
  assert.match(readFileSync(made.secretFile, 'utf8'), /^[0-9a-f]{64}\n$/);
  assert.equal(statSync(made.secretFile).mode & 0o777, 0o600);
  const before = fingerprint(d.path);
  assertOneLineError(cli(['mkfs', d.path]), 'FILESET_EXISTS');
  assert.equal(fingerprint(d.path), before);
  const forced = cli(['mkfs', d.path, '--force', '--json']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.notEqual((JSON.parse(forced.stdout) as { uuid: string }).uuid, made.uuid);
});

test('a corrupted or truncated database is refused by every command and left untouched', (t) => {
  const d = tmpDir();
  t.after(d.cleanup);
  assert.equal(cli(['mkfs', d.path]).code, 0);
  const db = join(d.path, '.intermezzo/default/fileset.db');
  const good = readFileSync(db);

  writeFileSync(db, Buffer.concat([Buffer.from('garbage!'), good.subarray(8)]));
  let before = fingerprint(d.path);
  for (const args of [['kml', d.path], ['digest', d.path], ['status', d.path], ['--log-dir', join(d.path, '..', 'logs-x'), d.path]]) {
    assertOneLineError(cli(args), 'DB_CORRUPT');
    assert.equal(fingerprint(d.path), before, `${args[0]} changed nothing`);
  }

  writeFileSync(db, good);
  truncateSync(db, Math.floor(good.length / 3));
  before = fingerprint(d.path);
  for (const args of [['kml', d.path], ['digest', d.path]]) {
    assertOneLineError(cli(args), 'DB_CORRUPT');
    assert.equal(fingerprint(d.path), before);
  }
});

test('bad arguments: --debug abc, --since junk, unknown fileset', (t) => {
  const d = tmpDir();
  t.after(d.cleanup);
  assertOneLineError(cli(['--debug', 'abc', d.path]), 'BAD_ARGUMENT', 2);
  assertOneLineError(cli(['--debug', '64', d.path]), 'BAD_ARGUMENT', 2);
  assert.deepEqual(readdirSync(d.path), [], 'nothing created');
  assert.equal(cli(['mkfs', d.path]).code, 0);
  assertOneLineError(cli(['kml', d.path, '--since', 'junk']), 'BAD_ARGUMENT', 2);
  assertOneLineError(cli(['kml', d.path, '--fileset', 'nope']), 'NO_FILESET');
  assertOneLineError(cli(['kml', join(d.path, 'nothing-here')]), 'NO_SUCH_DIRECTORY');
  const json = cli(['digest', '--json', join(d.path, 'nothing-here')]);
  assert.equal(json.code, 1);
  assert.equal((JSON.parse(json.stderr) as { error: { code: string } }).error.code, 'NO_SUCH_DIRECTORY');
});

test('help explains every command', () => {
  const r = cli(['--help']);
  assert.equal(r.code, 0);
  for (const word of ['mkfs', 'kml', 'digest', 'status', '--debug', 'D_KML', '--log-dir']) assert.ok(r.stdout.includes(word), word);
  const k = cli(['kml', '--help']);
  assert.equal(k.code, 0);
  assert.match(k.stdout, /--since <TID>/);
});

test('--version prints the version with the store format and protocol', () => {
  const r = cli(['--version']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^intersync \d+\.\d+\.\d+ \(store format \d+, protocol \d+\)\n$/);
});

// Fails without the fix in FilesetNode.start: a daemon whose port was taken printed the error and never
// exited (its watches and identity store kept the process alive), so a service manager saw it running.
test('a server whose port is taken exits with one error line and leaves no pid file behind', async (t) => {
  const d = tmpDir();
  t.after(d.cleanup);
  const busy = createServer();
  await new Promise<void>((ok) => busy.listen(0, '127.0.0.1', () => ok()));
  t.after(() => busy.close());
  const port = (busy.address() as AddressInfo).port;
  const r = cli(['--log-dir', d.path, '--listen', `127.0.0.1:${port}`, d.path]);
  assertOneLineError(r, 'IO');
  assert.match(r.stderr, /another process uses this port/);
  assert.equal(existsSync(join(d.path, '.intermezzo/default/daemon.pid')), false, 'the pid file was released');
});
