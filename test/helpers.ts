import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { systemClock } from '#core/clock.js';
import type { KmlRecord } from '#core/record.js';
import { NO_VERSION } from '#core/ids.js';
import { FilesetNode, type FilesetNodeOptions } from '#daemon/fileset-node.js';

export const ROOT = resolve(import.meta.dirname, '..');
/**
 * `npm test` builds dist/ first and sets INTERSYNC_TEST_BUILT=1: the daemons and CLI commands the tests spawn
 * then run the compiled JavaScript, as users do, instead of tsx compiling the sources in each of them (about
 * 0.5 s of CPU per process, over a thousand processes per run). A test run on its own from the sources
 * (`node --import tsx --test test/X.test.ts`) spawns them through tsx, so it never runs a stale build.
 */
export const BUILT = process.env.INTERSYNC_TEST_BUILT === '1';
export const CLI = join(ROOT, BUILT ? 'dist/cli/main.js' : 'src/cli/main.ts');
export const NODE_ARGS = BUILT ? [CLI] : ['--conditions=development', '--import', 'tsx', CLI];
if (BUILT) requireFreshBuild();

/** With INTERSYNC_TEST_BUILT=1, dist/ must be newer than every source file: a stale build would test old code. */
function requireFreshBuild(): void {
  const built = statSync(CLI, { throwIfNoEntry: false })?.mtimeMs ?? 0;
  const newest = (dir: string): number => readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .reduce((m, e) => Math.max(m, statSync(join(e.parentPath, e.name)).mtimeMs), 0);
  if (newest(join(ROOT, 'src')) > built) throw new Error('INTERSYNC_TEST_BUILT=1 but dist/ is older than src/: run npm run build first (npm test does)');
}

/**
 * One state directory (secrets, TLS keys, credentials; keyed inside by node id) for every node this test
 * process starts, removed at exit: tests never write /var/lib/intersync. Daemons get it as --state-dir;
 * the other commands find it through the fileset (the daemon records it) or INTERSYNC_STATE_DIR.
 */
export const STATE_DIR = mkdtempSync(join(tmpdir(), 'intersync-state-'));
process.env.INTERSYNC_STATE_DIR = STATE_DIR;
process.on('exit', () => rmSync(STATE_DIR, { recursive: true, force: true }));

/** Where the server of backing directory `dir` keeps its fileset secret (for --secret-file). */
export function secretFile(dir: string, fileset = 'default'): string {
  const node = readFileSync(join(dir, '.intermezzo', 'node-id'), 'utf8').trim();
  return join(STATE_DIR, node, fileset, 'secret');
}

/**
 * Enrol `node` with the fileset secret of the server at `base` (its directory `dir`): its own credential,
 * which the routes that act for a node (reint, ack, token, the forwarded stream) require.
 */
export async function enrolNode(base: string, dir: string, node: string): Promise<string> {
  const { request } = await import('undici');
  const { PROTOCOL_VERSION } = await import('#core/format.js');
  const shared = readFileSync(secretFile(dir), 'utf8').trim();
  const res = await request(`${base}/v1/enrol`, {
    method: 'POST', headers: { authorization: `Bearer ${shared}`, 'content-type': 'application/json' },
    body: JSON.stringify({ node, proto: PROTOCOL_VERSION }),
  });
  const body = await res.body.json() as { credential?: string };
  if (res.statusCode !== 200 || typeof body.credential !== 'string') throw new Error(`enrol ${node}: HTTP ${res.statusCode} ${JSON.stringify(body)}`);
  return body.credential;
}

/** Every daemon's log in `logDir` (one file per fileset directory, `intersync-<fileset>@<path>.log`), joined. */
export function readLogs(logDir: string): string {
  let names: string[];
  try {
    names = readdirSync(logDir).filter((n) => /^intersync-.*\.log$/.test(n)).sort();
  } catch {
    return '';
  }
  return names.map((n) => readFileSync(join(logDir, n), 'utf8')).join('');
}

export function tmpDir(prefix = 'intersync-test-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  // INTERSYNC_KEEP=1 keeps every temp directory (logs, trees, journals) to look at after a failure.
  return { path, cleanup: () => process.env.INTERSYNC_KEEP === '1' ? undefined : rmSync(path, { recursive: true, force: true }) };
}

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run the intersync CLI from source in a separate process. */
export function cli(args: string[], opts: { uid?: number; gid?: number } = {}): CliResult {
  const r = spawnSync(process.execPath, [...NODE_ARGS, ...args], {
    cwd: ROOT, encoding: 'utf8', timeout: 120_000, maxBuffer: 1 << 28, ...opts,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Start the daemon as its own process; resolves once it says it is serving. */
export async function spawnDaemon(dir: string, logDir: string, extra: string[] = []): Promise<ChildProcess> {
  const state = extra.includes('--state-dir') ? [] : ['--state-dir', STATE_DIR];
  const child = spawn(process.execPath, [...NODE_ARGS, '--log-dir', logDir, ...state, ...extra, dir], {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  await new Promise<void>((res, rej) => {
    const t = setTimeout(() => rej(new Error(`daemon did not start: ${out}${err}`)), 120_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('stop with Ctrl-C')) {
        clearTimeout(t);
        res();
      }
    });
    child.on('exit', (code) => {
      clearTimeout(t);
      rej(new Error(`daemon exited with ${code}: ${out}${err}`));
    });
  });
  child.removeAllListeners('exit');
  return child;
}

export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise<void>((res) => child.once('exit', () => res()));
  child.kill(signal);
  await done;
}

export async function startNode(dir: string, logDir: string, o: Partial<FilesetNodeOptions> = {}): Promise<FilesetNode> {
  return FilesetNode.start({ dir, debug: 0, logDir, clock: systemClock, settleMs: 15, stateDir: STATE_DIR, ...o });
}

/**
 * An in-process server (a FilesetNode listening on 127.0.0.1, options `o` besides) and a client daemon joined to
 * it, each in a new temporary directory; `prepare` runs on the served directory before the client starts. Both
 * are stopped, and the directories removed, after the test.
 */
export async function inProcessPair(
  t: import('node:test').TestContext, prefix: string, o: Partial<FilesetNodeOptions> = {}, prepare?: (srv: string, node: FilesetNode) => Promise<void>,
): Promise<{ node: FilesetNode; client: ChildProcess; srv: string; cli: string; logDir: string }> {
  const box = tmpDir(prefix);
  const logs = tmpDir(`${prefix}logs-`);
  const srv = join(box.path, 'server');
  const cli = join(box.path, 'client');
  mkdirSync(srv);
  mkdirSync(cli);
  const node = await startNode(srv, logs.path, { listen: { host: '127.0.0.1', port: 0, tokenScope: 'fileset', leaseMs: 30_000, retainRecords: 1_000_000 }, ...o });
  const clients: ChildProcess[] = [];
  t.after(async () => {
    for (const c of clients) await stopChild(c);
    await node.stop();
    box.cleanup();
    logs.cleanup();
  });
  await prepare?.(srv, node);
  const client = await spawnClient(cli, logs.path, node.server!.address().port, secretFile(srv));
  clients.push(client);
  return { node, client, srv, cli, logDir: logs.path };
}

/** Run `fn` with a node started on a new temporary directory; the node is stopped and both directories removed after the test. */
export async function withNode(t: import('node:test').TestContext, fn: (dir: string, node: FilesetNode) => Promise<void>): Promise<void> {
  const dir = tmpDir();
  const logs = tmpDir('intersync-logs-');
  const node = await startNode(dir.path, logs.path);
  t.after(async () => {
    await node.stop();
    dir.cleanup();
    logs.cleanup();
  });
  await fn(dir.path, node);
}

/** Wait until the node has journaled everything the kernel reported (the TID stays put across quiet rounds). */
export async function settle(node: FilesetNode, quietMs = 80): Promise<void> {
  let last = -1n;
  for (let stable = 0; stable < 2;) {
    await sleep(quietMs);
    await node.capture.idle();
    const now = node.db.lastTid;
    stable = now === last ? stable + 1 : 0;
    last = now;
  }
}

export function records(node: FilesetNode, since = NO_VERSION): KmlRecord[] {
  return node.db.readKml(since, 1_000_000);
}

/** Compact form of records for exact comparisons: "kind path[ -> newPath]". */
export function shapes(recs: readonly KmlRecord[]): string[] {
  return recs.map((r) => `${r.kind} ${r.path}${r.newPath !== null ? ` -> ${r.newPath}` : ''}`);
}

export { sleep };

import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { FilesetDb } from '#journal/fileset-db.js';
import { findFileset } from '#journal/layout.js';
import { formatDigest } from '#core/digest.js';
import { digestOfDisk } from '#presto/scan.js';

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      s.close(() => res(port));
    });
    s.on('error', rej);
  });
}

export async function spawnServer(dir: string, logDir: string, port: number, extra: string[] = []): Promise<ChildProcess> {
  return spawnDaemon(dir, logDir, ['--listen', `127.0.0.1:${port}`, ...extra]);
}

export async function spawnClient(dir: string, logDir: string, port: number, secretFile: string, extra: string[] = []): Promise<ChildProcess> {
  return spawnDaemon(dir, logDir, ['--server', `http://127.0.0.1:${port}`, '--secret-file', secretFile, ...extra]);
}

/** What a node's journal says now (read-only, while its daemon runs); `firstKept`: the first TID its KML still holds. */
export function journalState(dir: string): { digest: string; lastTid: bigint; lml: number; records: number; firstKept: bigint } {
  const db = FilesetDb.open(findFileset(dir).db, { readonly: true, check: false });
  try {
    return { digest: formatDigest(db.digest), lastTid: db.lastTid, lml: db.lmlCount(), records: db.recordCount(), firstKept: db.firstKeptTid };
  } finally {
    db.close();
  }
}

export async function diskDigest(dir: string): Promise<string> {
  return formatDigest((await digestOfDisk(dir)).digest);
}

/** Wait until every node's journal digest is the same, no client has pending records, and the TIDs agree. */
export async function waitConverged(dirs: string[], timeoutMs = 60_000): Promise<void> {
  const t0 = Date.now();
  let last = '';
  for (;;) {
    try {
      const states = dirs.map(journalState);
      last = JSON.stringify(states, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
      const d0 = states[0]!;
      if (states.every((s) => s.digest === d0.digest && s.lml === 0 && s.lastTid === d0.lastTid)) return;
    } catch {
      // a database being created or migrated: look again
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`nodes did not converge in ${timeoutMs} ms: ${last}`);
    await sleep(100);
  }
}

/**
 * A TCP proxy on 127.0.0.1 for requests a client sends that match `match` (a request line, say): it holds
 * each one back by `delayMs`, keeping each connection's bytes in order, or, while `refuse` is set, drops
 * the connection instead (the request fails as with a cut link). All three can be changed while it runs.
 * Between pause() and resume(), matching requests wait, whatever the delay.
 */
export class DelayProxy {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  match: RegExp;
  delayMs: number;
  refuse = false;
  /** Matching requests held back, and refused, so far. */
  delayed = 0;
  refused = 0;
  /** Matching requests held by pause() so far (each waits for resume()). */
  paused = 0;
  #gate: Promise<void> | null = null;
  #resume: (() => void) | null = null;

  private constructor(targetPort: number, match: RegExp, delayMs: number) {
    this.match = match;
    this.delayMs = delayMs;
    this.#server = createServer({ noDelay: true }, (down) => {
      const up = createConnection({ host: '127.0.0.1', port: targetPort, noDelay: true });
      for (const s of [down, up]) {
        this.#sockets.add(s);
        s.on('close', () => {
          this.#sockets.delete(s);
          down.destroy();
          up.destroy();
        });
        s.on('error', () => s.destroy());
      }
      let chain = Promise.resolve();
      down.on('data', (b: Buffer) => {
        const hit = this.match.test(b.toString('latin1'));
        if (hit && this.refuse) {
          this.refused++;
          down.destroy();
          return;
        }
        const hold = hit ? this.delayMs : 0;
        if (hold > 0) this.delayed++;
        const gate = hit ? this.#gate : null;
        if (gate !== null) this.paused++;
        chain = chain.then(async () => {
          if (gate !== null) await gate;
          if (hold > 0) await sleep(hold);
          if (!up.destroyed) up.write(b);
        });
      });
      up.pipe(down);
    });
  }

  static async start(targetPort: number, match: RegExp, delayMs: number): Promise<DelayProxy> {
    const p = new DelayProxy(targetPort, match, delayMs);
    await new Promise<void>((ok, fail) => {
      p.#server.once('error', fail);
      p.#server.listen(0, '127.0.0.1', () => ok());
    });
    return p;
  }

  get port(): number {
    const a = this.#server.address();
    if (a === null || typeof a !== 'object') throw new Error('proxy: not listening');
    return a.port;
  }

  /** From now on, hold each matching request (and what follows it on its connection) until resume(). */
  pause(): void {
    if (this.#gate !== null) return;
    this.#gate = new Promise((res) => {
      this.#resume = res;
    });
  }

  /** Let the held requests go on. */
  resume(): void {
    this.#resume?.();
    this.#gate = null;
    this.#resume = null;
  }

  /** Drop every open connection (long-lived ones too), as a cut link does. */
  cut(): void {
    for (const s of this.#sockets) s.destroy();
  }

  async close(): Promise<void> {
    this.resume();
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((ok) => this.#server.close(() => ok()));
  }
}

/** A server and one client whose requests matching `match` pass a DelayProxy (held `delayMs`), started and converged. */
export interface ProxiedPair {
  readonly srv: string;
  readonly cli: string;
  readonly logs: string;
  readonly proxy: DelayProxy;
  /** The log both daemons write (JSON lines). */
  log(): string;
}

/**
 * Start a server (with `serverArgs`) and a client that reaches it through a DelayProxy; `prepare` runs on the
 * server's directory first. Everything is stopped by PID and removed when the test ends.
 */
export async function proxiedPair(
  t: import('node:test').TestContext, o: { match: RegExp; delayMs: number; serverArgs?: string[]; prepare?: (srv: string) => void },
): Promise<ProxiedPair> {
  const dirs = [tmpDir('intersync-srv-'), tmpDir('intersync-cli-'), tmpDir('intersync-logs-')] as const;
  const procs: ChildProcess[] = [];
  const proxies: DelayProxy[] = [];
  t.after(async () => {
    for (const p of procs) await stopChild(p, 'SIGKILL');
    for (const p of proxies) await p.close();
    for (const d of dirs) d.cleanup();
  });
  const [srv, cli, logs] = dirs.map((d) => d.path) as [string, string, string];
  o.prepare?.(srv);
  const port = await freePort();
  procs.push(await spawnServer(srv, logs, port, o.serverArgs ?? []));
  const proxy = await DelayProxy.start(port, o.match, o.delayMs);
  proxies.push(proxy);
  procs.push(await spawnClient(cli, logs, proxy.port, secretFile(srv)));
  await waitConverged([srv, cli]);
  return { srv, cli, logs, proxy, log: () => readLogs(logs) };
}
