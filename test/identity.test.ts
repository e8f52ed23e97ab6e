// Invariant: trust at the edge (issue 12). Each node acts only for itself, with the credential it got
// when it enrolled: a node posing as another is refused on every route that acts for a node, and the
// other's changes keep flowing; `intersync revoke` cuts a node off at once (requests refused, its
// stream closed); `invite` + `join` set up a working client with no file copied by hand, over TLS
// with the server's certificate pinned, and a wrong pin is refused clearly; secrets and the TLS key sit
// outside the backing directory, 0600; plain HTTP outside the loopback address needs --insecure-http.
//
// Every test here fails on the code before per-node identity: there was no /v1/enrol route, no
// invite/join/nodes/revoke command, the secret lived in DIR/.intermezzo/<fileset>/secret, and
// `--listen http://…` was not understood (a usage error, not INSECURE_HTTP).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { request } from 'undici';
import { PROTOCOL_VERSION } from '#core/format.js';
import { readStatusFile } from '#daemon/status-file.js';
import { eventually, readOrNull } from './farm.js';
import { NODE_ARGS, ROOT, STATE_DIR, cli, freePort, secretFile, sleep, spawnDaemon, spawnServer, stopChild, tmpDir, waitConverged } from './helpers.js';

const IMPOSTOR = 'b0b0b0b0b0b0b0b0';

interface Answer {
  readonly status: number;
  readonly code: string | undefined;
  readonly json: unknown;
}

async function call(url: string, method: 'GET' | 'POST', bearer: string, json?: unknown): Promise<Answer> {
  const res = await request(url, {
    method, headers: { authorization: `Bearer ${bearer}`, ...(json === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(json === undefined ? {} : { body: JSON.stringify(json) }),
  });
  const text = await res.body.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.statusCode, code: (parsed as { error?: { code?: string } } | undefined)?.error?.code, json: parsed };
}

const nodeIdOf = (dir: string): string => readFileSync(join(dir, '.intermezzo', 'node-id'), 'utf8').trim();

/** Temp dirs and daemons of one test, removed and stopped (by PID) after it. */
function scope(t: TestContext): { dir: (p: string) => string; procs: ChildProcess[] } {
  const dirs: Array<{ cleanup: () => void }> = [];
  const procs: ChildProcess[] = [];
  t.after(async () => {
    for (const p of procs) await stopChild(p, 'SIGKILL');
    for (const d of dirs) d.cleanup();
  });
  return {
    procs,
    dir: (prefix) => {
      const d = tmpDir(prefix);
      dirs.push(d);
      return d.path;
    },
  };
}

/** `intersync ARGS…` as a daemon (join runs one); resolves once it says it serves. */
async function spawnCli(args: string[]): Promise<ChildProcess> {
  const child = spawn(process.execPath, [...NODE_ARGS, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  await new Promise<void>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`no start: ${out}`)), 120_000);
    child.stdout!.on('data', () => {
      if (out.includes('stop with Ctrl-C')) {
        clearTimeout(timer);
        res();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`exited ${code}: ${out}`));
    });
  });
  child.removeAllListeners('exit');
  return child;
}

function connected(serverDir: string): string[] {
  const s = readStatusFile(join(serverDir, '.intermezzo/default/status.json'));
  return ((s?.server ?? {}) as { connected?: string[] }).connected ?? [];
}

test('a node posing as another is refused on reint, ack, token, stream and hello; the other\'s changes still flow', { timeout: 120_000 }, async (t) => {
  const s = scope(t);
  const srv = s.dir('intersync-srv-');
  const a = s.dir('intersync-cli-');
  const logs = s.dir('intersync-logs-');
  const port = await freePort();
  s.procs.push(await spawnServer(srv, logs, port));
  s.procs.push(await spawnDaemon(a, logs, ['--server', `http://127.0.0.1:${port}`, '--secret-file', secretFile(srv)]));
  const victim = nodeIdOf(a);
  const base = `http://127.0.0.1:${port}`;
  const shared = readFileSync(secretFile(srv), 'utf8').trim();
  const uuid = (JSON.parse(cli(['status', srv, '--json']).stdout) as { uuid: string }).uuid;
  const fs = (rest: string): string => `${base}/v1/filesets/${uuid}/${rest}`;

  // The impostor enrols as itself (it has the fileset secret), then tries to act as the victim.
  const enrol = await call(`${base}/v1/enrol`, 'POST', shared, { node: IMPOSTOR, proto: PROTOCOL_VERSION });
  assert.equal(enrol.status, 200, JSON.stringify(enrol.json));
  const mine = (enrol.json as { credential: string }).credential;
  assert.equal((await call(`${base}/v1/enrol`, 'POST', shared, { node: victim, proto: PROTOCOL_VERSION })).code, 'NODE_TAKEN', 'the victim\'s id cannot be enrolled again');

  for (const [who, bearer] of [['the impostor\'s credential', mine], ['the fileset secret', shared]] as const) {
    const reint = await request(fs(`reint?node=${victim}`), {
      method: 'POST', headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/octet-stream' }, body: Buffer.alloc(0),
    });
    const body = (await reint.body.json()) as { error?: { code?: string } };
    assert.equal(reint.statusCode, 403, `reint as the victim with ${who}`);
    assert.equal(body.error?.code, 'FORBIDDEN');
    for (const [what, r] of [
      ['ack', await call(fs('ack'), 'POST', bearer, { node: victim, tid: '0x0' })],
      ['token release', await call(fs('token'), 'POST', bearer, { node: victim, scope: '/', op: 'release' })],
      ['token acquire', await call(fs('token'), 'POST', bearer, { node: victim, scope: '/', op: 'acquire', waitMs: 0 })],
      ['forwarded stream', await call(fs(`kml?since=0&follow=0&node=${victim}`), 'GET', bearer)],
    ] as const) {
      assert.equal(r.status, 403, `${what} as the victim with ${who}: ${JSON.stringify(r.json)}`);
      assert.equal(r.code, 'FORBIDDEN');
    }
  }
  assert.equal((await call(`${base}/v1/hello`, 'POST', mine, { node: victim, proto: PROTOCOL_VERSION })).code, 'FORBIDDEN', 'hello as the victim');
  // The status route names no other node to a node.
  const st = await call(fs('status'), 'GET', mine);
  assert.deepEqual((st.json as { connected: string[] }).connected, [], 'a node sees no other node in /status');

  // The victim is undisturbed: its changes reach the server, the server's reach it.
  writeFileSync(join(a, 'from-victim.txt'), 'still mine');
  writeFileSync(join(srv, 'from-server.txt'), 'still flowing');
  await eventually('the victim\'s change reaches the server', () => readOrNull(join(srv, 'from-victim.txt')), (v) => v === 'still mine', 30_000);
  await eventually('the server\'s change reaches the victim', () => readOrNull(join(a, 'from-server.txt')), (v) => v === 'still flowing', 30_000);
  await waitConverged([srv, a], 30_000);
});

test('revoke cuts a node off at once: its requests fail with REVOKED and its open stream is closed', { timeout: 120_000 }, async (t) => {
  const s = scope(t);
  const srv = s.dir('intersync-srv-');
  const a = s.dir('intersync-cli-');
  const logs = s.dir('intersync-logs-');
  const port = await freePort();
  s.procs.push(await spawnServer(srv, logs, port));
  s.procs.push(await spawnDaemon(a, logs, ['--server', `http://127.0.0.1:${port}`, '--secret-file', secretFile(srv)]));
  const node = nodeIdOf(a);
  const credential = readFileSync(join(STATE_DIR, node, 'default', 'credential'), 'utf8').trim();
  await eventually('the client\'s stream is open', () => connected(srv), (c) => c.includes(node));

  const listed = cli(['nodes', srv, '--json']);
  assert.equal(listed.code, 0, listed.stderr);
  const rows = listed.stdout.trim().split('\n').map((l) => JSON.parse(l) as { node: string; lastSeen: number | null; revoked: number | null });
  assert.deepEqual(rows.map((r) => r.node), [node]);
  assert.ok(rows[0]!.lastSeen !== null && rows[0]!.revoked === null);
  assert.match(cli(['nodes', srv]).stdout, new RegExp(`${node}\\s+enrolled`));

  const r = cli(['revoke', srv, node]);
  assert.equal(r.code, 0, r.stderr);
  const uuid = (JSON.parse(cli(['status', srv, '--json']).stdout) as { uuid: string }).uuid;
  const ack = await call(`http://127.0.0.1:${port}/v1/filesets/${uuid}/ack`, 'POST', credential, { node, tid: '0x0' });
  assert.equal(ack.status, 401);
  assert.equal(ack.code, 'REVOKED');
  await eventually('the revoked node\'s stream is closed', () => connected(srv), (c) => !c.includes(node), 10_000);
  assert.match(cli(['nodes', srv]).stdout, new RegExp(`${node}\\s+REVOKED`));
  // Nothing reaches it any more.
  writeFileSync(join(srv, 'after-revoke.txt'), 'not for you');
  await sleep(2500);
  assert.equal(existsSync(join(a, 'after-revoke.txt')), false);
  assert.deepEqual(connected(srv), []);
});

test('invite + join set up a working client over pinned TLS, with no file copied by hand', { timeout: 180_000 }, async (t) => {
  const s = scope(t);
  const srv = s.dir('intersync-srv-');
  const cl = s.dir('intersync-cli-');
  const srvState = s.dir('intersync-state-');
  const clState = s.dir('intersync-state-');
  const logs = s.dir('intersync-logs-');
  writeFileSync(join(srv, 'index.html'), '<h1>joined</h1>');
  const port = await freePort();
  s.procs.push(await spawnDaemon(srv, logs, ['--listen', `https://127.0.0.1:${port}`, '--state-dir', srvState]));
  // The server recorded its state dir: invite needs no --state-dir.
  const inv = cli(['invite', srv, '--expires', '10m', '--json']);
  assert.equal(inv.code, 0, inv.stderr);
  const token = (JSON.parse(inv.stdout) as { token: string; fingerprint: string }).token;
  assert.match(token, /^isync1-/);
  s.procs.push(await spawnCli(['join', token, cl, '--state-dir', clState, '--log-dir', logs]));
  assert.equal(readFileSync(join(cl, 'index.html'), 'utf8'), '<h1>joined</h1>');
  writeFileSync(join(cl, 'from-client.html'), 'over pinned tls');
  await eventually('the client\'s change reaches the server', () => readOrNull(join(srv, 'from-client.html')), (v) => v === 'over pinned tls', 30_000);
  await waitConverged([srv, cl], 30_000);
  // The invitation was used up: a second machine cannot join with it.
  const again = cli(['join', token, s.dir('intersync-cli-'), '--state-dir', clState, '--log-dir', logs]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /\[UNAUTHORIZED\]/);
  // The client's credential sits in its state dir, 0600, and nowhere in the tree.
  const cred = join(clState, nodeIdOf(cl), 'default', 'credential');
  assert.equal(statSync(cred).mode & 0o777, 0o600);
  const listed = JSON.parse(cli(['nodes', srv, '--json']).stdout.trim()) as { node: string; via: string };
  assert.deepEqual([listed.node, listed.via], [nodeIdOf(cl), 'invite']);
  // A restart needs no token: the credential and the pin were kept.
  await stopChild(s.procs.pop()!);
  s.procs.push(await spawnDaemon(cl, logs, ['--server', `https://127.0.0.1:${port}`, '--state-dir', clState]));
  writeFileSync(join(srv, 'after-restart.html'), 'again');
  await eventually('the server\'s change reaches the restarted client', () => readOrNull(join(cl, 'after-restart.html')), (v) => v === 'again', 30_000);
});

test('a client whose pinned fingerprint is not the server\'s certificate refuses to connect, clearly', { timeout: 120_000 }, async (t) => {
  const s = scope(t);
  const srv = s.dir('intersync-srv-');
  const logs = s.dir('intersync-logs-');
  const port = await freePort();
  s.procs.push(await spawnDaemon(srv, logs, ['--listen', `https://127.0.0.1:${port}`]));
  const token = (JSON.parse(cli(['invite', srv, '--json']).stdout) as { token: string }).token;
  const body = JSON.parse(Buffer.from(token.slice('isync1-'.length), 'base64url').toString('utf8')) as { fp: string };
  body.fp = `sha256:${'ab'.repeat(32)}`;
  const forged = `isync1-${Buffer.from(JSON.stringify(body)).toString('base64url')}`;
  for (const args of [['join', forged, s.dir('intersync-cli-'), '--log-dir', logs], ['--log-dir', logs, '--server', forged, s.dir('intersync-cli-')]]) {
    const r = cli(args);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /\[TLS_PIN_MISMATCH\]/);
  }
  // The client stopped before any request: the invitation was never sent, nothing enrolled.
  assert.equal(cli(['nodes', srv, '--json']).stdout.trim(), '');
});

test('mkfs keeps the secret and the TLS key outside the backing directory, mode 0600; an old in-tree secret is moved out', { timeout: 60_000 }, async (t) => {
  const s = scope(t);
  const dir = s.dir('intersync-srv-');
  const state = s.dir('intersync-state-');
  const logs = s.dir('intersync-logs-');
  const r = cli(['mkfs', dir, '--state-dir', state, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const m = JSON.parse(r.stdout) as { secretFile: string; tlsKey: string; tlsCert: string; fingerprint: string };
  for (const f of [m.secretFile, m.tlsKey]) {
    assert.ok(f.startsWith(`${state}/`), `${f} is in the state dir`);
    assert.equal(statSync(f).mode & 0o777, 0o600, `${f} is 0600`);
  }
  assert.match(m.fingerprint, /^sha256:[0-9a-f]{64}$/);
  const walk = (rel: string): string[] => readdirSync(join(dir, rel), { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? walk(join(rel, e.name)) : [join(rel, e.name)]));
  const inTree = walk('');
  assert.deepEqual(inTree.filter((f) => /secret|key|credential|\.pem$/.test(f)), [], `no secret in the tree: ${inTree.join(' ')}`);
  // A secret left in the tree by an older release goes at the next start.
  const legacy = join(dir, '.intermezzo/default/secret');
  writeFileSync(legacy, 'old-secret\n', { mode: 0o600 });
  s.procs.push(await spawnDaemon(dir, logs, ['--listen', 'none', '--state-dir', state]));
  assert.equal(existsSync(legacy), false);
});

test('plain HTTP outside the loopback address is refused without --insecure-http (server and client)', { timeout: 60_000 }, async (t) => {
  const s = scope(t);
  const dir = s.dir('intersync-srv-');
  const logs = s.dir('intersync-logs-');
  const port = await freePort();
  const srv = cli(['--listen', `http://0.0.0.0:${port}`, '--log-dir', logs, dir]);
  assert.equal(srv.code, 1, srv.stderr);
  assert.match(srv.stderr, /\[INSECURE_HTTP\]/);
  const client = cli(['--server', 'http://192.0.2.1:7777', '--log-dir', logs, s.dir('intersync-cli-')]);
  assert.equal(client.code, 1, client.stderr);
  assert.match(client.stderr, /\[INSECURE_HTTP\]/);
});
