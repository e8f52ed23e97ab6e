// Invariant: every setting has one effective value with a known source (flag > file > fileset database >
// default); a file with a bad key or value is refused at start with key, value and reason on one line and
// nothing is created; SIGHUP applies the live keys (the conflict policy) without a restart, on a server and
// on a client alike, and logs what changed.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { FilesetDb } from '#journal/fileset-db.js';
import { findFileset } from '#journal/layout.js';
import { cli, freePort, journalState, readLogs, secretFile, sleep, spawnClient, spawnDaemon, spawnServer, stopChild, tmpDir, waitConverged } from './helpers.js';

interface Shown { key: string; value: unknown; source: string; live: boolean }

function shown(dir: string, extra: string[] = []): Map<string, Shown> {
  const r = cli(['config', dir, '--json', ...extra]);
  assert.equal(r.code, 0, r.stderr);
  return new Map((JSON.parse(r.stdout) as { keys: Shown[] }).keys.map((k) => [k.key, k]));
}

function meta(dir: string, key: string): string | undefined {
  const db = FilesetDb.open(findFileset(dir).db, { readonly: true, check: false });
  try {
    return db.getMeta(key);
  } finally {
    db.close();
  }
}

test('a bad value of each type, an unknown key and bad syntax are refused at start with key, value and reason', (t) => {
  const d = tmpDir();
  t.after(d.cleanup);
  const dir = join(d.path, 'tree');
  const cases: Array<[string, string, RegExp]> = [
    ['lease-ms = "soon"', 'lease-ms', /lease-ms = "soon": takes a whole number/],
    ['lease-ms = -5', 'lease-ms', /lease-ms = -5: takes a whole number/],
    ['insecure-http = "yes"', 'insecure-http', /insecure-http = "yes": takes true or false/],
    ['token-scope = "dir"', 'token-scope', /token-scope = "dir": takes one of none, fileset, subtree/],
    ['listen = "here"', 'listen', /listen = "here": not ADDR:PORT/],
    ['log-dir = ""', 'log-dir', /log-dir = "": takes a non-empty string/],
    ['conflict-policy = "coin-toss"', 'conflict-policy', /conflict-policy = "coin-toss": not one of keep-both/],
    ['debug = 64', 'debug', /debug = 64: .*unknown flags/],
    ['leese-ms = 5', 'leese-ms', /leese-ms = 5: unknown key \(known: fileset, debug/],
    ['lease-ms = = 3', '', /not valid TOML/],
  ];
  for (const [line, , want] of cases) {
    const file = join(d.path, 'bad.toml');
    writeFileSync(file, `# a site's settings\nsettle-ms = 20\n${line}\n`);
    // The file is checked before the directory: the error names the file's line, not the missing directory.
    const r = cli(['--config', file, '--log-dir', join(d.path, 'logs'), dir]);
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(r.code, 1, `${line}: ${r.stderr}`);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /^intersync: .*bad\.toml: .*\[BAD_CONFIG\] \(hint: .+\)$/);
    assert.match(lines[0]!, want, line);
  }
  assert.equal(existsSync(dir), false, 'nothing created');
  assert.equal(existsSync(join(d.path, 'logs')), false, 'no log either');
});

test('flag > file > default, each shown with its source; TOML and JSON; a first start writes the file', async (t) => {
  const d = tmpDir();
  t.after(d.cleanup);
  const [a, b, logs] = ['a', 'b', 'logs'].map((x) => join(d.path, x)) as [string, string, string];
  const port = await freePort();
  const file = join(d.path, 'site.toml');
  // One key of each type: string (listen), int (lease-ms), bool (insecure-http), enum (token-scope), path (log-dir).
  writeFileSync(file, [`listen = "127.0.0.1:${port}"`, 'lease-ms = 4000', 'insecure-http = false', 'token-scope = "subtree"', `log-dir = "${logs}"`, 'retain-records = 5000', ''].join('\n'));
  mkdirSync(a);
  mkdirSync(b);
  const child = await spawnDaemon(a, logs, ['--config', file, '--retain-records', '777']);
  t.after(() => stopChild(child, 'SIGKILL'));
  const s = shown(a);
  assert.deepEqual([s.get('listen')?.value, s.get('listen')?.source], [`127.0.0.1:${port}`, 'file']);
  assert.deepEqual([s.get('lease-ms')?.value, s.get('lease-ms')?.source], [4000, 'file']);
  assert.deepEqual([s.get('token-scope')?.value, s.get('token-scope')?.source], ['subtree', 'file']);
  assert.deepEqual([s.get('retain-records')?.value, s.get('retain-records')?.source], [777, 'flag'], 'the flag wins over the file');
  assert.deepEqual([s.get('log-dir')?.source, s.get('debug')?.source, s.get('debug')?.value], ['flag', 'default', 0]);
  // The file's listen address is the one served.
  const status = JSON.parse(cli(['status', a, '--json']).stdout) as { server: { url: string } };
  assert.equal(status.server.url, `http://127.0.0.1:${port}`);
  const human = cli(['config', a]);
  assert.match(human.stdout, /^lease-ms +=  ?4000 +\[file .*site\.toml\]$/m);
  assert.match(human.stdout, /^conflict-policy += "keep-both" +\[default, live\]$/m);
  await stopChild(child);

  // No file anywhere: the first start writes DIR/.intermezzo/default/config.toml with every key.
  const c2 = await spawnDaemon(b, logs, ['--listen', '127.0.0.1:0']);
  await stopChild(c2);
  const written = readFileSync(join(b, '.intermezzo/default/config.toml'), 'utf8');
  for (const k of ['listen', 'lease-ms', 'token-scope', 'conflict-policy', 'log-format', 'metrics', 'ui']) assert.match(written, new RegExp(`^# ${k} = `, 'm'), k);
  assert.match(written, /^# lease-ms = 30000$/m, 'defaults spelled out');
  // JSON works too; a stored setting changed with `config` shows its new source.
  const jf = join(d.path, 'b.json');
  writeFileSync(jf, JSON.stringify({ 'lease-ms': 1234, 'safe-links': true }));
  const sj = shown(b, ['--config', jf]);
  assert.deepEqual([sj.get('lease-ms')?.value, sj.get('safe-links')?.value, sj.get('safe-links')?.source], [1234, true, 'file']);
  assert.equal(cli(['config', b, 'conflict-policy=newest-wins']).code, 0);
  assert.match(readFileSync(join(b, '.intermezzo/default/config.toml'), 'utf8'), /^conflict-policy = "newest-wins"$/m);
  assert.equal(shown(b).get('conflict-policy')?.source, 'file');
  assert.equal(meta(b, 'conflict-policy'), 'newest-wins');
  const bad = cli(['config', b, 'lease-ms=abc']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /lease-ms = "abc": takes a whole number.*\[BAD_ARGUMENT\]/);
});

test('SIGHUP reloads the conflict policy live and logs what changed; a bad edit changes nothing', async (t) => {
  const d = tmpDir();
  t.after(d.cleanup);
  const [dir, logs] = ['srv', 'logs'].map((x) => join(d.path, x)) as [string, string];
  mkdirSync(dir);
  const child = await spawnDaemon(dir, logs, ['--listen', '127.0.0.1:0']);
  t.after(() => stopChild(child, 'SIGKILL'));
  const file = join(dir, '.intermezzo/default/config.toml');
  const text = readFileSync(file, 'utf8');
  assert.equal(meta(dir, 'conflict-policy') ?? 'keep-both', 'keep-both');

  writeFileSync(file, text.replace(/^# conflict-policy = .*$/m, 'conflict-policy = "server-wins"').replace(/^# lease-ms = .*$/m, 'lease-ms = 9000'));
  child.kill('SIGHUP');
  for (let i = 0; i < 100 && meta(dir, 'conflict-policy') !== 'server-wins'; i++) await sleep(100);
  assert.equal(meta(dir, 'conflict-policy'), 'server-wins', 'applied without a restart');
  assert.equal(child.exitCode, null, 'still running');
  const s = shown(dir);
  assert.deepEqual([s.get('conflict-policy')?.value, s.get('conflict-policy')?.source], ['server-wins', 'file']);
  assert.equal(s.get('lease-ms')?.value, 30000, 'a restart-only key keeps its running value');

  writeFileSync(file, 'conflict-policy = "coin-toss"\n');
  child.kill('SIGHUP');
  let log = '';
  for (let i = 0; i < 100 && !log.includes('config refused'); i++) {
    await sleep(100);
    log = readdirSync(logs).map((f) => readFileSync(join(logs, f), 'utf8')).join('');
  }
  assert.equal(meta(dir, 'conflict-policy'), 'server-wins', 'a bad file changes nothing');
  const lines = log.split('\n').filter((l) => l.includes('config changed')).join('\n');
  assert.match(lines, /conflict-policy/);
  assert.match(lines, /server-wins/);
  assert.match(log, /lease-ms/, 'the restart-only key is named');
});

test('SIGHUP on a client: its own conflict policy changes live, is logged, and decides the next conflict', { timeout: 180_000 }, async (t) => {
  const [srv, cl, logs] = [tmpDir('intersync-srv-'), tmpDir('intersync-cli-'), tmpDir('intersync-logs-')];
  writeFileSync(join(srv.path, 'doc.txt'), 'v0\n');
  const port = await freePort();
  const server = await spawnServer(srv.path, logs.path, port);
  const client = await spawnClient(cl.path, logs.path, port, secretFile(srv.path));
  t.after(async () => {
    await stopChild(client, 'SIGKILL');
    await stopChild(server, 'SIGKILL');
    for (const d of [srv, cl, logs]) d.cleanup();
  });
  await waitConverged([srv.path, cl.path]);
  // The client's first start wrote its own file (with its server's URL); the server keeps keep-both.
  const file = join(cl.path, '.intermezzo/default/config.toml');
  const text = readFileSync(file, 'utf8');
  assert.match(text, /^server = "http:\/\/127\.0\.0\.1:\d+"$/m);
  writeFileSync(file, text.replace(/^# conflict-policy = .*$/m, 'conflict-policy = "server-wins"'));
  client.kill('SIGHUP');
  for (let i = 0; i < 100 && meta(cl.path, 'conflict-policy') !== 'server-wins'; i++) await sleep(100);
  assert.equal(meta(cl.path, 'conflict-policy'), 'server-wins', 'applied without a restart');
  assert.equal(client.exitCode, null, 'still running');
  let changed: Record<string, unknown> | undefined;
  for (let i = 0; i < 100 && changed === undefined; i++) {
    changed = readLogs(logs.path).split('\n').filter((l) => l.includes('config changed live')).map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((o) => o.key === 'conflict-policy');
    if (changed === undefined) await sleep(100);
  }
  assert.deepEqual([changed?.component, changed?.from, changed?.to], ['client', 'keep-both', 'server-wins'], 'the client logs the key, its old and new value');
  assert.deepEqual([shown(cl.path).get('conflict-policy')?.value, shown(cl.path).get('conflict-policy')?.source], ['server-wins', 'file']);
  assert.equal(meta(srv.path, 'conflict-policy') ?? 'keep-both', 'keep-both', 'the server\'s own policy is untouched');

  // The next conflict on the client is decided by the new policy: the server's version takes the name
  // (keep-both, the policy before the reload, would have kept both names).
  assert.equal(cli(['disconnect', cl.path]).code, 0);
  await sleep(400);
  writeFileSync(join(cl.path, 'doc.txt'), 'client\n');
  writeFileSync(join(srv.path, 'doc.txt'), 'server\n');
  for (let i = 0; i < 100 && (journalState(cl.path).lml < 1 || journalState(srv.path).records < 3); i++) await sleep(100);
  assert.equal(cli(['reconnect', cl.path]).code, 0);
  let rows: Array<{ path: string; policy: string; decision: string }> = [];
  for (let i = 0; i < 300 && rows.length === 0; i++) {
    rows = cli(['conflicts', cl.path, '--all', '--json']).stdout.trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { path: string; policy: string; decision: string });
    if (rows.length === 0) await sleep(100);
  }
  assert.deepEqual(rows.map((r) => [r.path, r.policy, r.decision]), [['doc.txt', 'server-wins', 'remote']]);
  await waitConverged([srv.path, cl.path]);
  assert.equal(readFileSync(join(cl.path, 'doc.txt'), 'utf8'), 'server\n');
});
