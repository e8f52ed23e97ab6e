// Invariant: a log a person can read: one file per fileset directory (never shared by two daemons whose
// filesets have the same name), levels by name, each key once, pretty lines on request or by default on a
// terminal (JSON otherwise), and a warning repeated within the window written once with the count of
// those left out.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { configureLogs, logFileName } from '#daemon/logger.js';
import { LogShaper, prettyLine } from '#daemon/log-shaper.js';
import { logFormatOf } from '#cli/run-daemon.js';
import { NODE_ARGS, ROOT, STATE_DIR, cli, sleep, spawnDaemon, startNode, stopChild, tmpDir } from './helpers.js';

test('identical warnings within the window are written once, then with the count left out', () => {
  let now = 1_000;
  const out: string[] = [];
  const shaper = new LogShaper('json', (l) => out.push(l), { windowMs: 60_000, now: () => now });
  const log = pino({ base: null, formatters: { level: (label) => ({ level: label }) } }, { write: (l: string) => shaper.write(l) });
  const peer = log.child({ component: 'node' }).child({ component: 'client' });
  for (let i = 0; i < 50; i++) peer.warn({ peer: 'abc', attempt: i }, 'server unreachable, retrying');
  peer.warn({ peer: 'other' }, 'server unreachable, retrying'); // another peer is another warning
  peer.info('connected'); // info is never summarised
  peer.info('connected');
  assert.equal(out.length, 4, out.join(''));
  const first = JSON.parse(out[0]!) as Record<string, unknown>;
  assert.equal(first.level, 'warn', 'level by name');
  assert.equal(first.component, 'client', 'the innermost binding');
  assert.equal((out[0]!.match(/"component"/g) ?? []).length, 1, 'each key once');
  now += 60_001;
  peer.warn({ peer: 'abc', attempt: 99 }, 'server unreachable, retrying');
  const later = JSON.parse(out[4]!) as Record<string, unknown>;
  assert.equal(later.suppressed, 49);
  assert.equal(later.attempt, 99);
  for (let i = 0; i < 3; i++) peer.warn({ peer: 'abc' }, 'server unreachable, retrying');
  shaper.flush();
  assert.match(out.at(-1)!, /"suppressed":3/);
  assert.match(prettyLine({ time: 0, level: 'warn', component: 'server', msg: 'refused', code: 'UNAUTHORIZED', ip: '1.2.3.4', pid: 1 }),
    /^1970-01-01T00:00:00\.000Z WARN {2}server: refused code=UNAUTHORIZED ip=1\.2\.3\.4$/);
});

test('two filesets named "default" in two directories log to two files; pretty lines on request', async (t) => {
  const [a, b, logs] = [tmpDir(), tmpDir(), tmpDir()];
  t.after(() => {
    configureLogs({ format: 'json' });
    for (const d of [a, b, logs]) d.cleanup();
  });
  const na = await startNode(a.path, logs.path);
  await na.stop();
  configureLogs({ format: 'pretty' });
  const nb = await startNode(b.path, logs.path);
  await nb.stop();
  // The log file opens asynchronously: a node stopped right after its start writes it a moment later.
  for (let i = 0; i < 100 && readdirSync(logs.path).length < 2; i++) await sleep(50);
  await sleep(100);
  const files = readdirSync(logs.path).sort();
  assert.deepEqual(files, [logFileName('default', a.path), logFileName('default', b.path)].sort());
  assert.notEqual(na.logFile, nb.logFile);
  const jsonLines = readFileSync(na.logFile, 'utf8').trim().split('\n');
  for (const l of jsonLines) {
    const o = JSON.parse(l) as Record<string, unknown>;
    assert.equal(typeof o.level, 'string', l);
    for (const k of Object.keys(o)) assert.equal((l.match(new RegExp(`"${k}":`, 'g')) ?? []).length, 1, `${k} once in ${l}`);
  }
  assert.ok(jsonLines.some((l) => l.includes(a.path)), 'the directory is named in its own log');
  const pretty = readFileSync(nb.logFile, 'utf8');
  assert.match(pretty, /^\d{4}-\d\d-\d\dT[0-9:.]+Z INFO {2}node: starting dir=\S+/m);
  assert.doesNotMatch(pretty, /^\{/m);
  assert.match(join(logs.path, logFileName('default', '/exports/site')), /intersync-default@exports-site\.log$/);
});

test('the log format: as asked, else pretty on a terminal and JSON otherwise', () => {
  const cases: Array<[string | undefined, boolean, string]> = [
    ['json', true, 'json'], ['pretty', false, 'pretty'], ['auto', true, 'pretty'], ['auto', false, 'json'], [undefined, true, 'pretty'], [undefined, false, 'json'],
  ];
  for (const [asked, tty, want] of cases) assert.equal(logFormatOf(asked, tty), want, `${asked} on ${tty ? 'a terminal' : 'a pipe'}`);
});

const shq = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`;

test('a daemon started on a terminal writes pretty lines, one started by a service JSON', async (t) => {
  // util-linux script(1) gives the daemon a pseudo-terminal for stdin, stdout and stderr.
  assert.equal(spawnSync('script', ['--version']).status, 0, 'script (util-linux) is installed');
  const [d, logs] = [tmpDir(), tmpDir()];
  t.after(() => {
    for (const x of [d, logs]) x.cleanup();
  });
  const [onTty, onPipe] = ['tty', 'pipe'].map((n) => join(d.path, n)) as [string, string];
  mkdirSync(onTty);
  mkdirSync(onPipe);
  const cmd = [process.execPath, ...NODE_ARGS, '--log-dir', logs.path, '--state-dir', STATE_DIR, '--listen', '127.0.0.1:0', onTty].map(shq).join(' ');
  const script = spawn('script', ['-qec', cmd, '/dev/null'], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  script.stdout.on('data', (b: Buffer) => {
    out += b.toString();
  });
  t.after(() => stopChild(script, 'SIGKILL'));
  await new Promise<void>((res, rej) => {
    script.stdout.on('data', () => {
      if (out.includes('stop with Ctrl-C')) res();
    });
    script.once('exit', (code) => rej(new Error(`script exited with ${code}: ${out}`)));
  });
  const piped = await spawnDaemon(onPipe, logs.path, ['--listen', '127.0.0.1:0']);
  t.after(() => stopChild(piped, 'SIGKILL'));
  // Stopped by the pid in their pid files: the log's last line is written.
  for (const dir of [onTty, onPipe]) assert.equal(cli(['stop', dir]).code, 0);
  assert.equal(existsSync(join(onTty, '.intermezzo/default/daemon.pid')), false);
  const logOf = (dir: string): string => readFileSync(join(logs.path, logFileName('default', dir)), 'utf8');
  const pretty = logOf(onTty);
  assert.match(pretty, /^\d{4}-\d\d-\d\dT[0-9:.]+Z INFO {2}node: starting dir=\S+/m);
  assert.doesNotMatch(pretty, /^\{/m, 'no JSON line');
  for (const l of logOf(onPipe).trim().split('\n')) assert.equal(typeof (JSON.parse(l) as { level: unknown }).level, 'string', l);
});
