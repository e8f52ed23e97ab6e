// A small farm of real daemons for regression tests: one server and its clients, each node in its own
// process, with its own log directory (so a client's log can be read alone), stopped by PID after the test.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { linkSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { FilesetDb } from '#journal/fileset-db.js';
import { findFileset } from '#journal/layout.js';
import { hashFile, identityOf, lstatOrNull, nowNs } from '#fsio/disk.js';
import { ChaosProxy } from './chaos/proxy.js';
import { cli, diskDigest, freePort, journalState, readLogs, secretFile, sleep, spawnClient, spawnServer, stopChild, tmpDir } from './helpers.js';

export interface FarmOptions {
  /** Clients started with the server. */
  readonly clients?: number;
  /** Extra arguments of the server daemon (`--retain-records 5`). */
  readonly serverArgs?: readonly string[];
  /** Called on the server's directory before its daemon starts. */
  readonly prepare?: (serverDir: string) => void;
  /** Extra arguments of every client daemon (`--settle-ms 8000`). */
  readonly clientArgs?: readonly string[];
  /** The server's backing directory (an empty one the test owns, a small tmpfs say), instead of a new temp one. */
  readonly serverDir?: string;
  /** Each client reaches the server through its own proxy (Farm#proxyOf): its link can be cut, its record stream held. */
  readonly proxied?: boolean;
}

export class Farm {
  readonly server: string;
  readonly clients: string[] = [];
  readonly port: number;
  readonly #procs = new Map<string, ChildProcess>();
  readonly #logDirs = new Map<string, string>();
  readonly #cleanups: Array<() => void> = [];
  readonly #serverArgs: readonly string[];
  readonly #clientArgs: readonly string[];
  /** A client's own extra arguments (addClient), after the farm's. */
  readonly #ownArgs = new Map<string, readonly string[]>();
  readonly #proxies = new Map<string, ChaosProxy>();
  #proxied = false;

  private constructor(server: string, port: number, serverArgs: readonly string[], clientArgs: readonly string[]) {
    this.server = server;
    this.port = port;
    this.#serverArgs = serverArgs;
    this.#clientArgs = clientArgs;
  }

  /** The server's fileset secret file (in the test state directory), once the server has started. */
  get secret(): string {
    return secretFile(this.server);
  }

  static async start(t: TestContext, o: FarmOptions = {}): Promise<Farm> {
    const srv = o.serverDir === undefined ? tmpDir('intersync-srv-') : { path: o.serverDir, cleanup: () => undefined };
    const farm = new Farm(srv.path, await freePort(), o.serverArgs ?? [], o.clientArgs ?? []);
    farm.#proxied = o.proxied === true;
    farm.#cleanups.push(srv.cleanup);
    t.after(() => farm.#close());
    o.prepare?.(srv.path);
    farm.#logDirs.set(srv.path, farm.#tmp('intersync-logs-'));
    await farm.startNode(srv.path);
    for (let i = 0; i < (o.clients ?? 1); i++) await farm.addClient();
    return farm;
  }

  /** All nodes, the server first. */
  get all(): string[] {
    return [this.server, ...this.clients];
  }

  /**
   * A new client directory (or `dir`, an empty one the test owns), its daemon started (it makes its first copy
   * before it says it serves), with `args` of its own after the farm's client arguments.
   */
  async addClient(dir = this.#tmp('intersync-cli-'), args: readonly string[] = []): Promise<string> {
    this.#logDirs.set(dir, this.#tmp('intersync-logs-'));
    this.#ownArgs.set(dir, args);
    this.clients.push(dir);
    await this.startNode(dir);
    return dir;
  }

  /** The proxy a client of a `proxied` farm reaches the server through. */
  proxyOf(dir: string): ChaosProxy {
    const p = this.#proxies.get(dir);
    assert.ok(p !== undefined, `${dir}: no proxy (Farm.start with proxied: true)`);
    return p;
  }

  /** Start (again) the daemon of a node of this farm. */
  async startNode(dir: string): Promise<void> {
    assert.equal(this.#procs.has(dir), false, `${dir}: its daemon is running already`);
    const logDir = this.#logDirs.get(dir)!;
    if (dir !== this.server && this.#proxied && !this.#proxies.has(dir)) this.#proxies.set(dir, await ChaosProxy.start(this.port));
    const port = this.#proxies.get(dir)?.port ?? this.port;
    const p = dir === this.server
      ? await spawnServer(dir, logDir, this.port, [...this.#serverArgs])
      : await spawnClient(dir, logDir, port, this.secret, [...this.#clientArgs, ...(this.#ownArgs.get(dir) ?? [])]);
    this.#procs.set(dir, p);
  }

  /** Stop a node's daemon with SIGTERM (by its PID) and wait for it to exit. */
  async stopNode(dir: string): Promise<void> {
    const p = this.#procs.get(dir);
    assert.ok(p !== undefined, `${dir}: no daemon to stop`);
    this.#procs.delete(dir);
    await stopChild(p, 'SIGTERM');
  }

  /** The node's log so far (JSON lines). */
  log(dir: string): string {
    return readLogs(this.#logDirs.get(dir)!);
  }

  /** The `msg` of each log line of the node that matches `re`. */
  logMessages(dir: string, re: RegExp): string[] {
    const out: string[] = [];
    for (const line of this.log(dir).split('\n')) {
      if (line === '') continue;
      try {
        const m = String((JSON.parse(line) as { msg?: unknown }).msg ?? '');
        if (re.test(m)) out.push(m);
      } catch {
        if (re.test(line)) out.push(line);
      }
    }
    return out;
  }

  /** Stop every daemon of the farm (SIGKILL, by PID) now, before the test's own clean-up (an unmount). */
  async stopAll(): Promise<void> {
    for (const [dir, p] of this.#procs) {
      this.#procs.delete(dir);
      await stopChild(p, 'SIGKILL');
    }
  }

  #tmp(prefix: string): string {
    const d = tmpDir(prefix);
    this.#cleanups.push(d.cleanup);
    return d.path;
  }

  async #close(): Promise<void> {
    await this.stopAll();
    for (const p of this.#proxies.values()) await p.close();
    for (const c of this.#cleanups) c();
  }
}

/** Where a node's object table and its disk disagree (for failure messages). */
export async function differences(dir: string): Promise<string[]> {
  const db = FilesetDb.open(findFileset(dir).db, { readonly: true, check: false });
  const out: string[] = [];
  try {
    const seen = new Set<string>();
    for (const o of db.allObjects()) {
      seen.add(o.path);
      const st = lstatOrNull(join(dir, o.path));
      const h = st?.type === 'file' ? await hashFile(join(dir, o.path), st.size) : null;
      if (st === null || st.type !== o.type || (o.type !== 'symlink' && st.mode !== o.mode) || (o.type === 'file' && h !== o.hash)) {
        out.push(`${o.path}: journal ${o.type} ${o.mode.toString(8)} ${o.hash?.slice(0, 8)}, disk ${st?.type} ${st?.mode.toString(8)} ${h?.slice(0, 8)}`);
      }
    }
    const walk = (rel: string): void => {
      for (const n of readdirSync(join(dir, rel))) {
        const p = rel === '' ? n : `${rel}/${n}`;
        if (p === '.intermezzo') continue;
        if (!seen.has(p)) out.push(`${p}: on disk, not journaled`);
        if (lstatOrNull(join(dir, p))?.type === 'dir') walk(p);
      }
    };
    walk('');
    const lml = db.readLml(0n, 20).map((r) => `${r.seq}:${r.kind}:${r.path}${r.newPath === null ? '' : `->${r.newPath}`}`);
    if (lml.length > 0) out.push(`lml: ${lml.join(', ')}`);
  } finally {
    db.close();
  }
  return out;
}

interface NodeView {
  readonly dir: string;
  readonly journal: string;
  readonly disk: string;
  readonly lastTid: bigint;
  readonly lml: number;
}

async function view(dir: string): Promise<NodeView> {
  const j = journalState(dir);
  return { dir, journal: j.digest, disk: await diskDigest(dir), lastTid: j.lastTid, lml: j.lml };
}

/**
 * Wait until the nodes agree and stay so for a few rounds: every journal digest equal, every disk digest
 * equal to its own journal digest, the same last TID, no pending local record. On timeout, fail saying
 * where each node's journal and disk differ.
 */
export async function assertSettled(dirs: readonly string[], timeoutMs = 25_000): Promise<void> {
  await waitAgree(dirs, true, timeoutMs);
}

/**
 * Wait until the journals agree (equal digests, the same last TID, no pending local record), whatever
 * the disks hold: a step of a scenario whose end state is checked later.
 */
export async function assertJournalsAgree(dirs: readonly string[], timeoutMs = 25_000): Promise<void> {
  await waitAgree(dirs, false, timeoutMs);
}

async function waitAgree(dirs: readonly string[], disks: boolean, timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  let stable = 0;
  let last: NodeView[] = [];
  for (;;) {
    try {
      last = await Promise.all(dirs.map(view));
      const v0 = last[0]!;
      const ok = last.every((v) => v.journal === v0.journal && (!disks || v.disk === v.journal) && v.lastTid === v0.lastTid && v.lml === 0);
      stable = ok ? stable + 1 : 0;
    } catch {
      stable = 0; // a database being created: look again
    }
    if (stable >= (disks ? 3 : 2)) return;
    if (Date.now() - t0 > timeoutMs) break;
    await sleep(250);
  }
  const lines: string[] = [];
  for (const v of last) {
    lines.push(`${v.dir}: journal ${v.journal.slice(0, 16)} disk ${v.disk.slice(0, 16)} tid ${v.lastTid} lml ${v.lml}`);
    for (const d of await differences(v.dir)) lines.push(`    ${d}`);
  }
  const what = disks ? 'journal digest == disk digest on each, all equal, LML empty' : 'journal digests equal, same TID, LML empty';
  assert.fail(`nodes did not ${disks ? 'settle' : 'agree'} in ${timeoutMs} ms (${what}):\n${lines.join('\n')}`);
}

/** Wait until one node's journal digest equals its disk digest (a lone node, or one of a farm). */
export async function assertJournalIsDisk(dir: string, timeoutMs = 15_000): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    const v = await view(dir);
    if (v.journal === v.disk) return;
    if (Date.now() - t0 > timeoutMs) {
      assert.fail(`${dir}: journal digest ${v.journal.slice(0, 16)} != disk digest ${v.disk.slice(0, 16)} after ${timeoutMs} ms:\n    ${(await differences(dir)).join('\n    ')}`);
    }
    await sleep(200);
  }
}

/** Every `*.conflict-*` name under dir (relative paths), .intermezzo left out. */
export function conflictCopies(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const n of readdirSync(join(dir, rel))) {
    const p = rel === '' ? n : `${rel}/${n}`;
    if (p === '.intermezzo') continue;
    if (n.includes('.conflict-')) out.push(p);
    if (lstatOrNull(join(dir, p))?.type === 'dir') out.push(...conflictCopies(dir, p));
  }
  return out;
}

/** Wait until `check` holds; fail with `what`, the last value seen and `context()` after the timeout. */
export async function eventually<T>(what: string, get: () => T | Promise<T>, check: (v: T) => boolean, timeoutMs = 20_000, context?: () => string): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    let v: T | undefined;
    let err: unknown = null;
    try {
      v = await get();
      if (check(v)) return v;
    } catch (e) {
      err = e;
    }
    if (Date.now() - t0 > timeoutMs) {
      const more = context === undefined ? '' : `; ${context()}`;
      assert.fail(`${what}: not so after ${timeoutMs} ms (last: ${err !== null ? String(err) : show(v)})${more}`);
    }
    await sleep(200);
  }
}

function show(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x)) ?? String(v);
}

/** `intersync status DIR --json`, parsed. */
export function statusJson(dir: string): Record<string, unknown> {
  const r = cli(['status', dir, '--json']);
  assert.equal(r.code, 0, `intersync status ${dir} --json: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

/** Wait until the server has journaled something after `before` (its capture saw a change). */
export async function journaled(dir: string, before: bigint, timeoutMs = 10_000): Promise<void> {
  await eventually(`${dir} journals the change`, () => journalState(dir).lastTid, (t) => t > before, timeoutMs);
}

/** Make a change on a disconnected client and wait until it journals it (its LML grows): one record per change. */
export async function journaledHere(dir: string, what: string, change: () => void): Promise<void> {
  const n = journalState(dir).lml;
  change();
  await eventually(`${dir} journals ${what}`, () => journalState(dir).lml, (m) => m > n);
}

/** Read a file, or null when it is not there. */
/** Every file below `dir` (relative names) with its content, the .intermezzo folder left out. */
export function treeFiles(dir: string, rel = ''): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
    const p = rel === '' ? e.name : `${rel}/${e.name}`;
    if (p === '.intermezzo') continue;
    if (e.isDirectory()) for (const [k, v] of treeFiles(dir, p)) out.set(k, v);
    else if (e.isFile()) out.set(p, readFileSync(join(dir, p), 'utf8'));
  }
  return out;
}

export function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** Take a client off line with the CLI and wait until its daemon says so. */
export async function disconnect(farm: Farm, dir: string): Promise<void> {
  // Counted: a second disconnect of the same daemon must wait for its own log line, not the first one's.
  const before = farm.logMessages(dir, /disconnected on request/).length;
  const r = cli(['disconnect', dir]);
  assert.equal(r.code, 0, r.stderr);
  await eventually(`${dir} is disconnected`, () => farm.logMessages(dir, /disconnected on request/).length, (n) => n > before);
}

/** How a client is away while it changes things: disconnected on request, or its daemon stopped. */
export type Away = 'disconnected' | 'stopped';

/**
 * A client away (`how`) makes `steps` one after another. Disconnected, each is journaled before the next
 * (at least `records` LML records, 1 by default), so each is its own record as a user's would be; stopped,
 * the next start's scan journals what it finds.
 */
export async function changeAway(farm: Farm, c: string, how: Away, steps: ReadonlyArray<readonly [string, () => void, number?]>): Promise<void> {
  if (how === 'disconnected') await disconnect(farm, c);
  else await farm.stopNode(c);
  for (const [what, step, records = 1] of steps) {
    const before = journalState(c).lml;
    step();
    if (how === 'disconnected') await eventually(`the client journals ${what}`, () => journalState(c).lml, (n) => n >= before + records);
  }
}

/** The client comes back from `changeAway`: reconnected, or started again. */
export async function comeBack(farm: Farm, c: string, how: Away): Promise<void> {
  if (how === 'disconnected') reconnect(c);
  else await farm.startNode(c);
}

/**
 * On the server, file `a` with `content` and a hard link `b` to it, each journaled, then every node settled:
 * the start of a scenario about the two names of one inode.
 */
export async function serverLinked(farm: Farm, a: string, b: string, content: string): Promise<void> {
  const s = farm.server;
  let before = journalState(s).lastTid;
  writeFileSync(join(s, a), content);
  await journaled(s, before);
  before = journalState(s).lastTid;
  linkSync(join(s, a), join(s, b));
  await journaled(s, before);
  await assertSettled(farm.all);
}

/** Bring a client back on line with the CLI. */
export function reconnect(dir: string): void {
  const r = cli(['reconnect', dir, '--no-wait']);
  assert.equal(r.code, 0, r.stderr);
}

/**
 * Write `n` files `other-<i>` on the server, each journaled, then wait until it pruned its journal: a client
 * away meanwhile (the server started with a small `--retain-records`) is then past retention and resyncs.
 */
export async function pastRetention(farm: Farm, n = 12): Promise<void> {
  const s = farm.server;
  for (let i = 0; i < n; i++) {
    const before = journalState(s).lastTid;
    writeFileSync(join(s, `other-${i}`), `other ${i}\n`);
    await journaled(s, before);
  }
  await eventually('the server pruned the records the client missed', () => farm.logMessages(s, /journal pruned/).length, (x) => x > 0);
}

/**
 * A farm whose client holds `names` as one inode (the first name's), consistently on disk and in its
 * journal with nothing pending, as a resync or a conflict step can leave it, while the server holds them as
 * `prepare` made them. The client runs again and all have settled.
 */
export async function groupedHere(
  t: TestContext, prepare: (s: string) => void, names: readonly string[], o: { firstApart?: boolean } = {},
): Promise<{ farm: Farm; c: string }> {
  const farm = await Farm.start(t, { clients: 1, prepare });
  const c = farm.clients[0]!;
  await assertSettled(farm.all);
  await farm.stopNode(c);
  if (o.firstApart === true) {
    // The first name a file of its own (off the inode it shares with others there).
    writeFileSync(join(c, `${names[0]!}.new`), readFileSync(join(c, names[0]!)));
    renameSync(join(c, `${names[0]!}.new`), join(c, names[0]!));
  }
  for (const name of names.slice(1)) {
    linkSync(join(c, names[0]!), join(c, `${name}.link`));
    renameSync(join(c, `${name}.link`), join(c, name));
  }
  journalAsOnDisk(c, names);
  await farm.startNode(c);
  await assertSettled(farm.all);
  return { farm, c };
}

/**
 * With the node of `dir` stopped: its journal takes `names` as they are on disk now (their stat identity),
 * as a resync or a conflict step leaves them; nothing may be pending.
 */
export function journalAsOnDisk(dir: string, names: readonly string[]): void {
  const db = FilesetDb.open(findFileset(dir).db);
  try {
    for (const name of names) {
      const o = db.objectByPath(name);
      const st = lstatOrNull(join(dir, name));
      assert.ok(o !== undefined && st !== null, `${dir} journaled ${name}`);
      db.setIdentity(o.fid, identityOf(st, nowNs()));
    }
    assert.equal(db.lmlCount(), 0, 'nothing pending');
  } finally {
    db.close();
  }
}
