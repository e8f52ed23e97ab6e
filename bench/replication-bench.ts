// 3. Replication, side by side with rsync over the same local trees:
//   (a) initial sync of many small files into an empty directory,
//   (b) incremental sync of 20 changes in a small and a large tree,
//   (c) one large file: its initial sync, then 1 MiB changed in its middle (bytes on the wire via a counting proxy),
//   (d) propagation lag from a file's close on one client to its content on another.
// Every intersync run ends with a check: the client's `digest` equals its `digest --scan` and the server's `digest`.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import {
  closeSync, cpSync, existsSync, lstatSync, mkdirSync, openSync, readFileSync, rmSync, symlinkSync, unlinkSync, watch, writeFileSync, writeSync,
  type FSWatcher,
} from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { digestAdd, digestSub, formatDigest, parseDigest, type DigestEntry } from '#core/digest.js';
import {
  ROOT, DAEMON_NODE_ARGS, DaemonDiedError, type StatusJson, fmt, journalVsDisk, logProblems, makeTmp, median, readLog, removeTmp, retryOnDeath, say, sleep, syncDisks, table, benchStateDir, serverSecretFile,
} from './lib.js';
import { ByteProxy, type ByteCounts } from './proxy.js';

export interface ReplicationOptions {
  /** (a) files in the initial-sync tree, and its directories. */
  readonly initialFiles: number;
  readonly initialDirs: number;
  /** (b) tree sizes for the incremental sync. */
  readonly incSizes: readonly number[];
  /** (b) the changes of one round. */
  readonly modify: number;
  readonly create: number;
  readonly delete: number;
  /** (c) size of the large file, bytes. */
  readonly bigBytes: number;
  /** (c) bytes changed in its middle. */
  readonly patchBytes: number;
  /** (d) writes timed. */
  readonly lagWrites: number;
  /** Interleaved rounds of (a) and (c). */
  readonly rounds: number;
  /** Rounds of (b), per tree size. */
  readonly incRounds: number;
}

const MiB = 1 << 20;
export const EXCLUDE = '--exclude=/.intermezzo';
/** Extra daemon flags for an investigation, e.g. INTERSYNC_BENCH_DEBUG=31 (logs under each run's log dir). */
const DEBUG_ARGS = process.env.INTERSYNC_BENCH_DEBUG === undefined ? [] : ['--debug', process.env.INTERSYNC_BENCH_DEBUG];

// ---------------------------------------------------------------- processes: clients and rsync

const live = new Map<number, ChildProcess>();
let exitHook = false;
function track(child: ChildProcess): void {
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => {
      for (const pid of live.keys()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
    });
  }
  const pid = child.pid;
  if (pid === undefined) return;
  live.set(pid, child);
  child.once('exit', () => live.delete(pid));
}

/**
 * The intersync CLI this suite runs: a private copy of dist/ taken when the suite starts. dist/ is shared:
 * another build (of a newer src, say with a new store format) may replace it while daemons of the old one
 * still run, and a newer `intersync digest` would then refuse their databases.
 */
let cliPath = '';
/** For an A/B comparison: INTERSYNC_BENCH_ROOT names another built tree (its dist/ and package.json) whose daemons the suites run. */
const DIST_ROOT = process.env.INTERSYNC_BENCH_ROOT ?? ROOT;
function snapshotCli(): string {
  if (cliPath !== '') return cliPath;
  const d = makeTmp('dist');
  cpSync(join(DIST_ROOT, 'dist'), join(d, 'dist'), { recursive: true });
  cpSync(join(DIST_ROOT, 'package.json'), join(d, 'package.json'));
  symlinkSync(join(ROOT, 'node_modules'), join(d, 'node_modules'), 'dir');
  cliPath = join(d, 'dist', 'cli', 'main.js');
  return cliPath;
}

/** Run a short intersync command (digest, status) of the snapshot; throws on failure. */
function cli(args: string[]): string {
  const r = spawnSync(process.execPath, [snapshotCli(), ...args], { encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`intersync ${args.join(' ')} exited ${r.status ?? r.signal}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** A daemon of the snapshot: a server (`--listen`) or a client (`--server URL`), ready when it prints "stop with Ctrl-C". */
export class NodeProc {
  readonly dir: string;
  readonly logDir: string;
  readonly child: ChildProcess;
  readonly spawnedAt = performance.now();
  readyAt = Number.NaN;
  stdout = '';
  stderr = '';
  #exit: Promise<number | null>;
  #exited = false;
  #exitText = '';
  #stopRequested = false;

  private constructor(dir: string, logDir: string, child: ChildProcess) {
    this.dir = dir;
    this.logDir = logDir;
    this.child = child;
    track(child);
    child.stdout!.on('data', (b: Buffer) => {
      if (this.stdout.length < 1 << 20) this.stdout += b.toString();
    });
    child.stderr!.on('data', (b: Buffer) => {
      if (this.stderr.length < 1 << 20) this.stderr += b.toString();
    });
    this.#exit = new Promise((r) => child.once('exit', (code, sig) => {
      this.#exited = true;
      this.#exitText = String(code ?? sig);
      r(code);
    }));
  }

  /** A client of `url` on `dir`. */
  static client(dir: string, logDir: string, url: string, secretFile: string, extra: string[] = []): NodeProc {
    return NodeProc.#spawn(dir, logDir, ['--server', url, '--secret-file', secretFile, ...extra]);
  }

  /** A server of `dir` on a free port of 127.0.0.1. */
  static server(dir: string, logDir: string, extra: string[] = []): NodeProc {
    benchStateDir();
    return NodeProc.#spawn(dir, logDir, ['--listen', '127.0.0.1:0', ...extra]);
  }

  static #spawn(dir: string, logDir: string, args: string[]): NodeProc {
    const child = spawn(process.execPath, [...DAEMON_NODE_ARGS, snapshotCli(), ...args, '--log-dir', logDir, ...DEBUG_ARGS, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    if (child.pid === undefined) throw new Error(`cannot spawn a daemon on ${dir}`);
    return new NodeProc(dir, logDir, child);
  }

  get statusFile(): string {
    return join(this.dir, '.intermezzo', 'default', 'status.json');
  }

  readStatus(): StatusJson | undefined {
    try {
      return JSON.parse(readFileSync(this.statusFile, 'utf8')) as StatusJson;
    } catch {
      return undefined; // between write and rename, or not written yet
    }
  }

  /** Resolves at the "stop with Ctrl-C" line (first copy done). */
  ready(timeoutMs: number): Promise<void> {
    return new Promise((ok, fail) => {
      const check = (): boolean => {
        if (!this.stdout.includes('stop with Ctrl-C')) return false;
        if (Number.isNaN(this.readyAt)) this.readyAt = performance.now();
        return true;
      };
      if (check()) {
        ok();
        return;
      }
      const timer = setTimeout(() => {
        cleanup();
        fail(new Error(`daemon on ${this.dir} not ready after ${timeoutMs} ms: ${this.stderr.trim().slice(0, 300)}`));
      }, timeoutMs);
      const onData = (): void => {
        if (check()) {
          cleanup();
          ok();
        }
      };
      const onExit = (code: number | null, sig: string | null): void => {
        cleanup();
        fail(new DaemonDiedError(this.dir, String(code ?? sig), this.stderr, 'before it was ready'));
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        this.child.stdout!.off('data', onData);
        this.child.off('exit', onExit);
      };
      this.child.stdout!.on('data', onData);
      this.child.once('exit', onExit);
    });
  }

  get running(): boolean {
    return !this.#exited;
  }

  /** Throw DaemonDiedError (runs that hit it are retried) when it exited without being asked to. */
  mustRun(when: string): void {
    if (this.#exited && !this.#stopRequested) throw new DaemonDiedError(this.dir, this.#exitText, this.stderr, when);
  }

  /** stop(), and say so when the daemon did not exit cleanly. */
  async stopChecked(): Promise<void> {
    const code = await this.stop();
    if (code !== 0) say(`    warning: daemon on ${this.dir} exited ${this.#exitText}${this.stderr.trim() === '' ? '' : `: ${this.stderr.trim().split('\n')[0]}`}`);
  }

  async stop(graceMs = 30_000): Promise<number | null> {
    this.#stopRequested = true;
    if (this.#exited) return this.#exit;
    try {
      this.child.kill('SIGTERM');
    } catch {
      // gone already
    }
    const killer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    try {
      return await this.#exit;
    } finally {
      clearTimeout(killer);
    }
  }
}

/** Run a command (rsync), tracked for clean-up; resolves with its wall time. */
export function runCmd(cmd: string, args: string[], timeoutMs = 1_800_000): Promise<{ ms: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    track(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, sig) => {
      clearTimeout(timer);
      const ms = performance.now() - t0;
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')} exited ${code ?? sig}: ${stderr.trim().slice(0, 300)}`));
      else resolve({ ms, stdout, stderr });
    });
  });
}

/** ms to write back one file system's dirty pages (`sync -f DIR`): what rsync leaves to the kernel and intersync's client does before it acknowledges. */
export function syncFsMs(dir: string): number {
  const t0 = performance.now();
  spawnSync('sync', ['-f', dir], { stdio: 'ignore' });
  return performance.now() - t0;
}

export function rsyncVersion(): string {
  const r = spawnSync('rsync', ['--version'], { encoding: 'utf8' });
  if (r.status !== 0 || r.error !== undefined) {
    throw new Error('rsync is not installed: apt-get update && apt-get install -y rsync');
  }
  return /version\s+(\S+)/.exec(r.stdout)?.[1] ?? '?';
}

// ---------------------------------------------------------------- the server and journal digests

export interface Server {
  readonly daemon: NodeProc;
  readonly dir: string;
  readonly url: string;
  readonly port: number;
  readonly secretFile: string;
}

export async function startServer(dir: string, logDir: string, extra: string[] = []): Promise<Server> {
  const daemon = NodeProc.server(dir, logDir, extra);
  try {
    await daemon.ready(3_600_000);
    const m = /serving fileset .* at (http:\/\/127\.0\.0\.1:(\d+))/.exec(daemon.stdout);
    if (m === null) throw new Error(`server on ${dir}: no listen address in its output: ${daemon.stdout.slice(0, 300)}`);
    // The start-up scan journals what is there before "serving"; wait for the journal to go quiet all the same.
    await journalQuiet(daemon, 500, 3_600_000);
    return { daemon, dir, url: m[1]!, port: Number(m[2]), secretFile: serverSecretFile(dir) };
  } catch (e) {
    await daemon.stop();
    throw e;
  }
}

/**
 * Wait until a server's journal is quiet: its state digest unchanged for `quietMs`, and a status.json written
 * after the last change with no capture events pending. (Not by KML TIDs: the server may prune its KML.)
 */
async function journalQuiet(d: NodeProc, quietMs: number, timeoutMs: number): Promise<void> {
  const reader = new DigestReader(d.dir);
  try {
    const deadline = performance.now() + timeoutMs;
    let last = reader.get();
    let changedAt = Date.now();
    for (;;) {
      d.mustRun('while journaling');
      const now = reader.get();
      if (now !== last) {
        last = now;
        changedAt = Date.now();
      }
      const st = d.readStatus();
      if (st !== undefined && st.capture.pending === 0 && st.capture.state === 'watching' && Date.now() - changedAt >= quietMs && st.updatedAt >= changedAt) {
        return;
      }
      if (performance.now() > deadline) throw new Error(`server on ${d.dir}: journal not quiet after ${timeoutMs} ms`);
      await sleep(50);
    }
  } finally {
    reader.close();
  }
}

/** The journal's state digest (meta 'digest') of a running node, read straight from its database: cheap enough to poll every millisecond. */
export class DigestReader {
  readonly file: string;
  #db: Database.Database | undefined;
  #stmt: Database.Statement | undefined;

  constructor(dir: string) {
    this.file = join(dir, '.intermezzo', 'default', 'fileset.db');
  }

  get(): string | undefined {
    try {
      if (this.#stmt === undefined) {
        if (!existsSync(this.file)) return undefined;
        this.#db = new Database(this.file, { readonly: true, fileMustExist: true });
        this.#db.pragma('busy_timeout = 1000');
        this.#stmt = this.#db.prepare("SELECT value FROM meta WHERE key = 'digest'").pluck();
      }
      return this.#stmt.get() as string | undefined;
    } catch {
      return undefined; // busy, or not set up yet: next time
    }
  }

  close(): void {
    this.#db?.close();
    this.#db = undefined;
    this.#stmt = undefined;
  }
}

type Proc = NodeProc | Server;

/** Throw DaemonDiedError when one of `procs` exited without being asked to (something else on this shared machine may kill it). */
function mustRun(procs: readonly Proc[], when: string): void {
  for (const p of procs) (p instanceof NodeProc ? p : p.daemon).mustRun(when);
}

/**
 * Poll `done` about every `everyMs` until it returns true; the time it first did (performance.now()), or NaN on timeout.
 * Every 100 ms, checks that `procs` still run.
 */
export async function pollUntil(done: () => boolean, timeoutMs: number, procs: readonly Proc[], everyMs = 1): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  let checked = performance.now();
  for (;;) {
    if (done()) return performance.now();
    const now = performance.now();
    if (now - checked > 100) {
      checked = now;
      mustRun(procs, 'during the run');
    }
    if (now > deadline) return Number.NaN;
    await sleep(everyMs);
  }
}

interface Verdict {
  readonly ok: boolean;
  readonly client: string;
  readonly disk: string;
  readonly server: string;
  readonly note: string;
}

/** The check after each intersync run: the client's journal digest = its disk = the server's journal digest. */
export function verify(clientDir: string, serverDir: string, expected?: string): Verdict {
  const journal = cli(['digest', clientDir]).trim();
  const disk = cli(['digest', '--scan', clientDir]).trim();
  const c = { ok: journal === disk && /^[0-9a-f]{64}$/.test(journal), journal, disk };
  const server = cli(['digest', serverDir]).trim();
  const ok = c.ok && c.journal === server && (expected === undefined || expected === server);
  let note = '';
  if (!ok) {
    const parts: string[] = [];
    if (c.journal !== c.disk) {
      const d = journalVsDisk(clientDir);
      parts.push(`client journal != client disk (${d.differences} objects, e.g. ${d.examples.slice(0, 3).join('; ')})`);
    }
    if (c.journal !== server) parts.push(`client journal ${c.journal.slice(0, 12)} != server ${server.slice(0, 12)}`);
    if (expected !== undefined && expected !== server) parts.push(`server ${server.slice(0, 12)} != expected ${expected.slice(0, 12)}`);
    note = parts.join('; ');
  }
  return { ok, client: c.journal, disk: c.disk, server, note };
}

/** The client's own figure for its first copy (snapshot request to synced), from its log. */
function firstCopyMs(logDir: string): number {
  const l = readLog(logDir).find((x) => x.msg === 'first copy done');
  return l === undefined ? Number.NaN : Number(l.durMs);
}

export const okText = (v: Verdict): string => (v.ok ? 'OK' : `MISMATCH (${v.note})`);

// ---------------------------------------------------------------- trees and content

/** mulberry32: small, fast, deterministic. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class ContentMaker {
  readonly #rand: () => number;
  readonly #pool: Buffer;

  constructor(seed: number) {
    this.#rand = prng(seed);
    this.#pool = Buffer.alloc(1 << 16);
    for (let i = 0; i < this.#pool.length; i++) this.#pool[i] = 32 + Math.floor(this.#rand() * 95);
  }

  int(lo: number, hi: number): number {
    return lo + Math.floor(this.#rand() * (hi - lo + 1));
  }

  /** 100-2,000 bytes, unique per tag. */
  small(tag: string): Buffer {
    const size = this.int(100, 2000);
    const head = Buffer.from(`${tag}\n`);
    const off = this.int(0, this.#pool.length - size);
    return Buffer.concat([head, this.#pool.subarray(off, off + Math.max(0, size - head.length))]);
  }
}

/** `files` small files (100-2,000 bytes) in `dirs` directories d000..; returns their relative paths. */
function makeTree(root: string, files: number, dirs: number, seed: number): { paths: string[]; bytes: number; ms: number } {
  const t0 = performance.now();
  const c = new ContentMaker(seed);
  mkdirSync(root, { recursive: true });
  const dirNames: string[] = [];
  for (let d = 0; d < dirs; d++) {
    const name = `d${String(d).padStart(3, '0')}`;
    mkdirSync(join(root, name));
    dirNames.push(name);
  }
  const paths: string[] = [];
  let bytes = 0;
  for (let i = 0; i < files; i++) {
    const p = `${dirNames[i % dirs]!}/f${String(i).padStart(6, '0')}.txt`;
    const buf = c.small(`file ${i} seed ${seed}`);
    writeFileSync(join(root, p), buf);
    paths.push(p);
    bytes += buf.length;
  }
  return { paths, bytes, ms: performance.now() - t0 };
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

function fileEntry(root: string, rel: string, hash: string): DigestEntry {
  return { path: rel, type: 'file', mode: lstatSync(join(root, rel)).mode, hash, target: null };
}

/** Random-ish bytes, fast: an AES-128-CTR key stream (position `offset` of stream `seed`). */
export function keyStream(seed: number, offset: number, length: number): Buffer {
  const key = createHash('sha256').update(`intersync bench ${seed}`).digest().subarray(0, 16);
  const block = Math.floor(offset / 16);
  const iv = Buffer.alloc(16);
  iv.writeBigUInt64BE(BigInt(block), 8);
  const skip = offset - block * 16;
  const c = createCipheriv('aes-128-ctr', key, iv);
  return c.update(Buffer.alloc(skip + length)).subarray(skip);
}

export function makeBigFile(file: string, bytes: number, seed: number): number {
  const t0 = performance.now();
  const fd = openSync(file, 'w', 0o644);
  try {
    const chunk = 8 * MiB;
    for (let off = 0; off < bytes; off += chunk) writeSync(fd, keyStream(seed, off, Math.min(chunk, bytes - off)));
  } finally {
    closeSync(fd);
  }
  return performance.now() - t0;
}

export function patchFile(file: string, offset: number, data: Buffer): void {
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, data, 0, data.length, offset);
  } finally {
    closeSync(fd);
  }
}

/** "Total bytes sent: 1,234" and "Total bytes received: ..." of `rsync --stats`. */
export function rsyncStats(out: string): { sent: number; received: number; literal: number } {
  const num = (re: RegExp): number => {
    const m = re.exec(out);
    return m === null ? Number.NaN : Number(m[1]!.replace(/[,.]/g, ''));
  };
  return {
    sent: num(/Total bytes sent:\s+([\d,.]+)/), received: num(/Total bytes received:\s+([\d,.]+)/),
    literal: num(/Literal data:\s+([\d,.]+)/),
  };
}

const mib = (n: number, digits = 2): string => `${fmt(n / MiB, digits)} MiB`;
const mbps = (bytes: number, ms: number): number => bytes / 1e6 / (ms / 1000);

/** The p-th percentile of `xs` (nearest rank); NaN when empty. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

// ---------------------------------------------------------------- results

export interface InitialRun {
  readonly rsyncMs: number;
  readonly rsyncSyncMs: number; // sync -f after rsync (not in rsyncMs)
  readonly intersyncMs: number; // spawn -> ready and digest equal
  readonly readyMs: number; // spawn -> "stop with Ctrl-C"
  readonly copyMs: number; // the client's own 'first copy done' durMs (snapshot to synced)
  readonly digest: Verdict;
}

export interface InitialResult {
  readonly files: number;
  readonly bytes: number;
  readonly serverJournalMs: number;
  readonly runs: InitialRun[];
  readonly median: { readonly rsyncMs: number; readonly intersyncMs: number; readonly rsyncFilesPerSec: number; readonly intersyncFilesPerSec: number; readonly ratio: number };
}

export interface IncRound {
  readonly intersyncMs: number; // changes start -> client journal digest = expected
  readonly serverMs: number; // changes start -> server journal digest = expected
  readonly changeMs: number; // the 20 file-system calls themselves
  readonly rsyncMs: number;
  readonly digest: Verdict;
}

export interface IncResult {
  readonly files: number;
  readonly changes: number;
  readonly serverJournalMs: number;
  readonly clientCopyMs: number;
  readonly rsyncCopyMs: number;
  readonly rounds: IncRound[];
  readonly median: { readonly intersyncMs: number; readonly rsyncMs: number };
}

export interface BigInitialRun {
  readonly rsyncMs: number;
  readonly rsyncSyncMs: number;
  readonly intersyncMs: number;
  readonly wire: ByteCounts;
  readonly digest: Verdict;
}

export interface BigChangeRound {
  readonly offset: number;
  readonly intersyncMs: number;
  readonly serverMs: number; // change -> server journaled it
  readonly wire: ByteCounts; // change -> client caught up, plus 1 s for the acknowledgement
  readonly rsyncMs: number;
  readonly rsyncSent: number;
  readonly rsyncReceived: number;
  readonly rsyncLiteral: number;
  readonly digest: Verdict;
}

export interface BigResult {
  readonly bytes: number;
  readonly patchBytes: number;
  readonly serverJournalMs: number;
  readonly initial: BigInitialRun[];
  readonly changes: BigChangeRound[];
  readonly median: {
    readonly rsyncInitialMs: number;
    readonly intersyncInitialMs: number;
    readonly rsyncInitialMBps: number;
    readonly intersyncInitialMBps: number;
    readonly intersyncChangeMs: number;
    readonly intersyncChangeBytes: number;
    readonly rsyncChangeMs: number;
    readonly rsyncChangeBytes: number;
  };
}

export interface LagResult {
  readonly writes: number;
  readonly lagsMs: number[];
  readonly timeouts: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly digests: Verdict[];
}

export interface ReplicationResult {
  readonly options: ReplicationOptions;
  readonly rsync: string;
  readonly initial: InitialResult;
  readonly incremental: IncResult[];
  readonly big: BigResult;
  readonly lag: LagResult;
  readonly digestsOk: number;
  readonly digestsTotal: number;
  readonly allOk: boolean;
}

// ---------------------------------------------------------------- (a) initial sync of small files

export async function initialBench(o: ReplicationOptions): Promise<InitialResult> {
  say(`  (a) initial sync: ${fmt(o.initialFiles)} files of 100-2,000 bytes in ${o.initialDirs} dirs; ` +
    `${o.rounds} interleaved rounds: rsync -a, then an intersync client on an empty dir`);
  const root = makeTmp('repl-a');
  const srvDir = join(root, 'server');
  const tree = makeTree(srvDir, o.initialFiles, o.initialDirs, 11);
  syncDisks();
  const t0 = performance.now();
  const server = await startServer(srvDir, join(root, 'log-server'));
  const serverJournalMs = performance.now() - t0;
  say(`    tree: ${fmt(tree.paths.length)} files, ${mib(tree.bytes, 1)}, built in ${fmt(tree.ms)} ms; server journaled it, ready in ${fmt(serverJournalMs)} ms`);
  const serverDigest = new DigestReader(srvDir);
  const runs: InitialRun[] = [];
  try {
    const want = serverDigest.get();
    if (want === undefined) throw new Error('no server digest');
    for (let i = 0; i < o.rounds; i++) {
      // A: rsync into an empty directory.
      const rdst = join(root, `rsync-${i}`);
      mkdirSync(rdst);
      syncDisks();
      const r = await runCmd('rsync', ['-a', EXCLUDE, `${srvDir}/`, `${rdst}/`]);
      const rsyncSyncMs = syncFsMs(rdst);
      // B: a client on an empty directory, from spawn until ready and its journal digest is the server's.
      const cdir = join(root, `client-${i}`);
      mkdirSync(cdir);
      syncDisks();
      const client = NodeProc.client(cdir, join(root, `log-client-${i}`), server.url, server.secretFile);
      const reader = new DigestReader(cdir);
      try {
        await client.ready(1_800_000);
        const at = await pollUntil(() => reader.get() === want, 600_000, [server, client]);
        if (Number.isNaN(at)) throw new Error(`client ${i}: digest never reached the server's (${reader.get() ?? 'none'} vs ${want})`);
        const intersyncMs = at - client.spawnedAt;
        const readyMs = client.readyAt - client.spawnedAt;
        const copyMs = firstCopyMs(client.logDir);
        const digest = verify(cdir, srvDir);
        const run: InitialRun = { rsyncMs: r.ms, rsyncSyncMs, intersyncMs, readyMs, copyMs, digest };
        runs.push(run);
        say(`    round ${i + 1}/${o.rounds}  rsync ${fmt(r.ms)} ms (${fmt(o.initialFiles / (r.ms / 1000))} files/s; then sync -f ${fmt(rsyncSyncMs)} ms)  ` +
          `intersync ${fmt(intersyncMs)} ms (${fmt(o.initialFiles / (intersyncMs / 1000))} files/s; ready at ${fmt(readyMs)} ms, ` +
          `of which the first copy ${fmt(copyMs)} ms)  digest ${okText(digest)}`);
      } finally {
        reader.close();
        await client.stop();
      }
    }
  } finally {
    serverDigest.close();
    await server.daemon.stopChecked();
  }
  const rsyncMs = median(runs.map((r) => r.rsyncMs));
  const intersyncMs = median(runs.map((r) => r.intersyncMs));
  const m = {
    rsyncMs, intersyncMs, rsyncFilesPerSec: o.initialFiles / (rsyncMs / 1000), intersyncFilesPerSec: o.initialFiles / (intersyncMs / 1000),
    ratio: rsyncMs / intersyncMs,
  };
  return { files: o.initialFiles, bytes: tree.bytes, serverJournalMs, runs, median: m };
}

// ---------------------------------------------------------------- (b) incremental sync

interface Change {
  readonly kind: 'modify' | 'create' | 'delete';
  readonly rel: string;
  readonly data: Buffer | null;
  readonly oldHash: string | null;
}

export async function incrementalBench(o: ReplicationOptions, files: number): Promise<IncResult> {
  const nChanges = o.modify + o.create + o.delete;
  const dirs = Math.max(5, Math.round(files / 200));
  say(`  (b) incremental sync, ${fmt(files)}-file tree in ${dirs} dirs: ${nChanges} changes per round (modify ${o.modify}, create ${o.create}, ` +
    `delete ${o.delete}) made on the server; ${o.incRounds} rounds: intersync to caught up, then rsync -a --delete`);
  const root = makeTmp(`repl-b${files}`);
  const srvDir = join(root, 'server');
  const tree = makeTree(srvDir, files, dirs, 22);
  syncDisks();
  let t0 = performance.now();
  const server = await startServer(srvDir, join(root, 'log-server'));
  const serverJournalMs = performance.now() - t0;
  const cdir = join(root, 'client');
  mkdirSync(cdir);
  let client: NodeProc | undefined;
  const sReader = new DigestReader(srvDir);
  const cReader = new DigestReader(cdir);
  const rounds: IncRound[] = [];
  try {
    const want0 = sReader.get()!;
    client = NodeProc.client(cdir, join(root, 'log-client'), server.url, server.secretFile);
    await client.ready(3_600_000);
    if (Number.isNaN(await pollUntil(() => cReader.get() === want0, 600_000, [server, client], 5))) throw new Error('client copy never reached the server digest');
    const clientCopyMs = performance.now() - client.spawnedAt;
    const rdst = join(root, 'rsync');
    mkdirSync(rdst);
    const rc = await runCmd('rsync', ['-a', '--delete', EXCLUDE, `${srvDir}/`, `${rdst}/`]);
    say(`    tree built in ${fmt(tree.ms)} ms; server ready in ${fmt(serverJournalMs)} ms; client first copy ${fmt(clientCopyMs)} ms; ` +
      `rsync first copy ${fmt(rc.ms)} ms`);

    const live = [...tree.paths];
    const maker = new ContentMaker(1000 + files);
    let created = 0;
    for (let round = 0; round < o.incRounds; round++) {
      await sleep(500); // connected and quiet: acknowledgements and status writes of the last round are done
      syncDisks();
      await sleep(200);
      // Plan: distinct files to modify and delete, new names to create.
      const picked = new Set<number>();
      const pick = (): number => {
        for (;;) {
          const k = maker.int(0, live.length - 1);
          if (!picked.has(k)) {
            picked.add(k);
            return k;
          }
        }
      };
      const changes: Change[] = [];
      for (let j = 0; j < o.modify; j++) {
        const rel = live[pick()]!;
        changes.push({ kind: 'modify', rel, data: maker.small(`modified in round ${round}: ${rel}`), oldHash: sha256(readFileSync(join(srvDir, rel))) });
      }
      const deleteIdx: number[] = [];
      for (let j = 0; j < o.delete; j++) {
        const k = pick();
        deleteIdx.push(k);
        const rel = live[k]!;
        changes.push({ kind: 'delete', rel, data: null, oldHash: sha256(readFileSync(join(srvDir, rel))) });
      }
      for (let j = 0; j < o.create; j++) {
        const rel = `d${String(maker.int(0, dirs - 1)).padStart(3, '0')}/new-${String(created++).padStart(5, '0')}.txt`;
        changes.push({ kind: 'create', rel, data: maker.small(`created in round ${round}: ${rel}`), oldHash: null });
      }
      // Shuffle so the kinds interleave, as a person's edits would.
      for (let j = changes.length - 1; j > 0; j--) {
        const k = maker.int(0, j);
        [changes[j], changes[k]] = [changes[k]!, changes[j]!];
      }
      const d0 = sReader.get()!;
      if (cReader.get() !== d0) throw new Error(`round ${round}: client not caught up before the changes`);
      let expected = parseDigest(d0);
      for (const c of changes) if (c.oldHash !== null) expected = digestSub(expected, fileEntry(srvDir, c.rel, c.oldHash));

      // Timed from here: the changes, then polling the client's journal digest.
      t0 = performance.now();
      for (const c of changes) {
        const abs = join(srvDir, c.rel);
        if (c.kind === 'delete') unlinkSync(abs);
        else writeFileSync(abs, c.data!);
      }
      const changeMs = performance.now() - t0;
      for (const c of changes) if (c.data !== null) expected = digestAdd(expected, fileEntry(srvDir, c.rel, sha256(c.data)));
      const want = formatDigest(expected);
      let serverAt = Number.NaN;
      const at = await pollUntil(() => {
        if (Number.isNaN(serverAt) && sReader.get() === want) serverAt = performance.now();
        return cReader.get() === want;
      }, 120_000, [server, client!]);
      const intersyncMs = at - t0;
      const serverMs = serverAt - t0;
      for (const k of deleteIdx.sort((a, b) => b - a)) live.splice(k, 1);
      for (const c of changes) if (c.kind === 'create') live.push(c.rel);
      const digest = verify(cdir, srvDir, want);
      if (Number.isNaN(at)) say(`    round ${round + 1}: the client's digest never reached the expected one in 120 s`);

      // rsync over the same changes, into its copy made before the first round.
      syncDisks();
      const r = await runCmd('rsync', ['-a', '--delete', EXCLUDE, `${srvDir}/`, `${rdst}/`]);
      rounds.push({ intersyncMs, serverMs, changeMs, rsyncMs: r.ms, digest });
      say(`    round ${round + 1}/${o.incRounds}  intersync ${fmt(intersyncMs, 1)} ms (the changes themselves ${fmt(changeMs, 1)} ms, ` +
        `journaled on the server at ${fmt(serverMs, 1)} ms)  ` +
        `rsync ${fmt(r.ms, 1)} ms  digest ${okText(digest)}`);
    }
    return {
      files, changes: nChanges, serverJournalMs, clientCopyMs, rsyncCopyMs: rc.ms, rounds,
      median: { intersyncMs: median(rounds.map((r) => r.intersyncMs)), rsyncMs: median(rounds.map((r) => r.rsyncMs)) },
    };
  } finally {
    sReader.close();
    cReader.close();
    if (client !== undefined) {
      const problems = logProblems(client.logDir);
      if (problems.length > 0) say(`    client logged ${problems.length} warning(s)/error(s), e.g. ${problems[0]!.slice(0, 200)}`);
      await client.stop();
    }
    await server.daemon.stopChecked();
  }
}

// ---------------------------------------------------------------- (c) one large file

export async function bigFileBench(o: ReplicationOptions): Promise<BigResult> {
  say(`  (c) large file: ${mib(o.bigBytes, 0)} of random-ish content; ${o.rounds} interleaved initial syncs (rsync -a; intersync through a byte-counting proxy), ` +
    `then ${o.rounds} rounds of ${mib(o.patchBytes, 0)} changed in its middle (intersync; rsync -a --no-whole-file --stats)`);
  const root = makeTmp('repl-c');
  const srvDir = join(root, 'server');
  mkdirSync(srvDir);
  const big = join(srvDir, 'big.bin');
  const genMs = makeBigFile(big, o.bigBytes, 33);
  syncDisks();
  let t0 = performance.now();
  const server = await startServer(srvDir, join(root, 'log-server'));
  const serverJournalMs = performance.now() - t0;
  say(`    file written in ${fmt(genMs)} ms (${fmt(mbps(o.bigBytes, genMs))} MB/s); server journaled it, ready in ${fmt(serverJournalMs)} ms`);
  const proxy = await ByteProxy.start(server.port);
  const proxyUrl = `http://127.0.0.1:${proxy.port}`;
  const sReader = new DigestReader(srvDir);
  let client: NodeProc | undefined;
  let cReader: DigestReader | undefined;
  let cdir = '';
  let rdst = '';
  const initial: BigInitialRun[] = [];
  const changes: BigChangeRound[] = [];
  try {
    const want = sReader.get()!;
    for (let i = 0; i < o.rounds; i++) {
      const last = i === o.rounds - 1;
      // A: rsync into an empty directory (the last copy is kept for the change rounds).
      if (rdst !== '') rmSync(rdst, { recursive: true, force: true });
      rdst = join(root, `rsync-${i}`);
      mkdirSync(rdst);
      syncDisks();
      const r = await runCmd('rsync', ['-a', EXCLUDE, `${srvDir}/`, `${rdst}/`]);
      const rsyncSyncMs = syncFsMs(rdst);
      // B: a client on an empty directory, through the proxy (the last one stays up for the change rounds).
      if (cdir !== '') rmSync(cdir, { recursive: true, force: true });
      cdir = join(root, `client-${i}`);
      mkdirSync(cdir);
      syncDisks();
      const before = proxy.counts();
      client = NodeProc.client(cdir, join(root, `log-client-${i}`), proxyUrl, server.secretFile);
      cReader = new DigestReader(cdir);
      await client.ready(1_800_000);
      const rd = cReader;
      const at = await pollUntil(() => rd.get() === want, 600_000, [server, client]);
      if (Number.isNaN(at)) throw new Error(`client ${i}: digest never reached the server's`);
      const intersyncMs = at - client.spawnedAt;
      const wire = proxy.since(before);
      const digest = verify(cdir, srvDir);
      initial.push({ rsyncMs: r.ms, rsyncSyncMs, intersyncMs, wire, digest });
      say(`    initial ${i + 1}/${o.rounds}  rsync ${fmt(r.ms)} ms (${fmt(mbps(o.bigBytes, r.ms))} MB/s; then sync -f ${fmt(rsyncSyncMs)} ms)  ` +
        `intersync ${fmt(intersyncMs)} ms (${fmt(mbps(o.bigBytes, intersyncMs))} MB/s; wire ${mib(wire.down)} down, ${mib(wire.up)} up)  ` +
        `digest ${okText(digest)}`);
      if (!last) {
        cReader.close();
        cReader = undefined;
        await client.stop();
        client = undefined;
      }
    }

    const c = client!;
    const cr = cReader!;
    const patchSeed = 4000;
    for (let round = 0; round < o.rounds; round++) {
      await sleep(1000);
      syncDisks();
      await sleep(200);
      // Unaligned on purpose: a change rarely starts on a block boundary (it touches one block more).
      const offset = Math.max(0, Math.min(o.bigBytes - o.patchBytes, Math.floor(o.bigBytes / 2) + (round - 1) * 3 * MiB + 4099));
      const data = keyStream(patchSeed + round, 0, o.patchBytes);
      const d0 = sReader.get()!;
      if (cr.get() !== d0) throw new Error(`change round ${round}: client not caught up before the change`);
      const before = proxy.counts();
      t0 = performance.now();
      patchFile(big, offset, data);
      let sd = d0;
      let serverAt = Number.NaN;
      const at = await pollUntil(() => {
        sd = sReader.get() ?? sd;
        if (sd !== d0 && Number.isNaN(serverAt)) serverAt = performance.now();
        return sd !== d0 && cr.get() === sd;
      }, 600_000, [server, c]);
      const intersyncMs = at - t0;
      const serverMs = serverAt - t0;
      await sleep(1000); // the acknowledgement and anything else the change causes
      const wire = proxy.since(before);
      const digest = verify(cdir, srvDir);
      if (Number.isNaN(at)) say(`    change ${round + 1}: the client's digest never reached the server's in 600 s`);
      syncDisks();
      const r = await runCmd('rsync', ['-a', '--no-whole-file', '--stats', EXCLUDE, `${srvDir}/`, `${rdst}/`]);
      const st = rsyncStats(r.stdout);
      changes.push({ offset, intersyncMs, serverMs, wire, rsyncMs: r.ms, rsyncSent: st.sent, rsyncReceived: st.received, rsyncLiteral: st.literal, digest });
      say(`    change ${round + 1}/${o.rounds} at offset ${fmt(offset)}  intersync ${fmt(intersyncMs)} ms (journaled on the server at ${fmt(serverMs)} ms), wire ${fmt(wire.up + wire.down)} bytes ` +
        `(${mib(wire.down)} down, ${mib(wire.up)} up)  rsync ${fmt(r.ms)} ms, ${fmt(st.sent + st.received)} bytes ` +
        `(sent ${fmt(st.sent)}, received ${fmt(st.received)}, literal ${fmt(st.literal)})  digest ${okText(digest)}`);
    }
    await c.stop();
  } finally {
    sReader.close();
    cReader?.close();
    if (client !== undefined) {
      const problems = logProblems(client.logDir);
      if (problems.length > 0) say(`    client logged ${problems.length} warning(s)/error(s), e.g. ${problems[0]!.slice(0, 200)}`);
      await client.stop();
    }
    await proxy.close();
    await server.daemon.stopChecked();
    // One large file per copy: removing them now costs nothing in inodes (see removeAllTmp) and frees GiBs.
    removeTmp(root);
  }
  const rIms = median(initial.map((r) => r.rsyncMs));
  const iIms = median(initial.map((r) => r.intersyncMs));
  return {
    bytes: o.bigBytes, patchBytes: o.patchBytes, serverJournalMs, initial, changes,
    median: {
      rsyncInitialMs: rIms, intersyncInitialMs: iIms, rsyncInitialMBps: mbps(o.bigBytes, rIms), intersyncInitialMBps: mbps(o.bigBytes, iIms),
      intersyncChangeMs: median(changes.map((r) => r.intersyncMs)), intersyncChangeBytes: median(changes.map((r) => r.wire.up + r.wire.down)),
      rsyncChangeMs: median(changes.map((r) => r.rsyncMs)), rsyncChangeBytes: median(changes.map((r) => r.rsyncSent + r.rsyncReceived)),
    },
  };
}

// ---------------------------------------------------------------- (d) propagation lag

export async function lagBench(o: Pick<ReplicationOptions, 'lagWrites'>): Promise<LagResult> {
  const settle = ['--settle-ms', '2'];
  say(`  (d) propagation lag: server + clients A and B, all --settle-ms 2; ${o.lagWrites} small files written on A (after 3 untimed), ` +
    'each timed from its close on A to its content on B (polled every ~1 ms and on fs.watch)');
  const root = makeTmp('repl-d');
  const srvDir = join(root, 'server');
  const aDir = join(root, 'client-a');
  const bDir = join(root, 'client-b');
  for (const d of [srvDir, aDir, bDir]) mkdirSync(d);
  const server = await startServer(srvDir, join(root, 'log-server'), settle);
  let a: NodeProc | undefined;
  let b: NodeProc | undefined;
  let watcher: FSWatcher | undefined;
  const lags: number[] = [];
  let timeouts = 0;
  try {
    a = NodeProc.client(aDir, join(root, 'log-a'), server.url, server.secretFile, settle);
    b = NodeProc.client(bDir, join(root, 'log-b'), server.url, server.secretFile, settle);
    await Promise.all([a.ready(120_000), b.ready(120_000)]);
    let wake: (() => void) | undefined;
    watcher = watch(bDir, () => wake?.());
    const arrive = async (file: string, want: Buffer, timeoutMs: number): Promise<number> => {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        try {
          if (readFileSync(file).equals(want)) return performance.now();
        } catch {
          // not there yet
        }
        if (performance.now() > deadline || !server.daemon.running || !a!.running || !b!.running) return Number.NaN;
        await new Promise<void>((r) => {
          const t = setTimeout(done, 1);
          function done(): void {
            clearTimeout(t);
            wake = undefined;
            r();
          }
          wake = done;
        });
      }
    };
    const rand = prng(44);
    const slow: string[] = [];
    for (let i = -3; i < o.lagWrites; i++) {
      const name = `lag-${String(i + 3).padStart(4, '0')}.txt`;
      const data = Buffer.from(`write ${i} at ${Date.now()} ${rand().toString(36)}\n${'x'.repeat(100 + Math.floor(rand() * 900))}\n`);
      writeFileSync(join(aDir, name), data);
      const closed = performance.now();
      const at = await arrive(join(bDir, name), data, 10_000);
      mustRun([server, a, b], `at write ${i}`);
      if (i >= 0) {
        if (Number.isNaN(at)) timeouts++;
        else lags.push(at - closed);
        if (at - closed > 50) slow.push(`#${i} ${fmt(at - closed)} ms`);
      }
      await sleep(20 + Math.floor(rand() * 20)); // a gap with jitter, so writes do not phase-lock with any timer
    }
    if (slow.length > 0) say(`    writes over 50 ms: ${slow.slice(0, 12).join(', ')}${slow.length > 12 ? ', ...' : ''}`);
    // Everyone caught up, then the checks.
    const readers = [srvDir, aDir, bDir].map((d) => new DigestReader(d));
    try {
      const same = await pollUntil(() => {
        const [s, x, y] = readers.map((r) => r.get());
        return s !== undefined && s === x && s === y;
      }, 60_000, [server, a, b], 20);
      if (Number.isNaN(same)) say('    the three digests did not agree within 60 s');
    } finally {
      for (const r of readers) r.close();
    }
    const digests = [verify(aDir, srvDir), verify(bDir, srvDir)];
    for (const c of [a, b]) {
      const problems = logProblems(c.logDir);
      if (problems.length > 0) say(`    client ${c === a ? 'A' : 'B'} logged ${problems.length} warning(s)/error(s), e.g. ${problems[0]!.slice(0, 200)}`);
    }
    const r: LagResult = {
      writes: o.lagWrites, lagsMs: lags, timeouts, p50: percentile(lags, 50), p90: percentile(lags, 90), p99: percentile(lags, 99),
      max: lags.length === 0 ? Number.NaN : Math.max(...lags), digests,
    };
    say(`    lag over ${fmt(lags.length)} writes: p50 ${fmt(r.p50, 1)} ms, p90 ${fmt(r.p90, 1)} ms, p99 ${fmt(r.p99, 1)} ms, max ${fmt(r.max, 1)} ms` +
      `${timeouts > 0 ? `, ${timeouts} TIMED OUT (10 s)` : ''}; digest A ${okText(digests[0]!)}, B ${okText(digests[1]!)}`);
    return r;
  } finally {
    watcher?.close();
    await Promise.all([a?.stop(), b?.stop()]);
    await server.daemon.stopChecked();
  }
}

// ---------------------------------------------------------------- the suite

export async function replicationBench(o: ReplicationOptions): Promise<ReplicationResult> {
  const rsync = rsyncVersion();
  snapshotCli();
  say(`== 3. Replication vs rsync ${rsync} (local trees under /tmp, intersync over HTTP on 127.0.0.1)`);
  const initial = await retryOnDeath('(a) initial sync', () => initialBench(o));
  say('');
  const incremental: IncResult[] = [];
  for (const n of o.incSizes) {
    incremental.push(await retryOnDeath(`(b) ${n}-file tree`, () => incrementalBench(o, n)));
    say('');
  }
  const big = await retryOnDeath('(c) large file', () => bigFileBench(o));
  say('');
  const lag = await retryOnDeath('(d) lag', () => lagBench(o));
  say('');

  const verdicts = [
    ...initial.runs.map((r) => r.digest), ...incremental.flatMap((x) => x.rounds.map((r) => r.digest)),
    ...big.initial.map((r) => r.digest), ...big.changes.map((r) => r.digest), ...lag.digests,
  ];
  const digestsOk = verdicts.filter((v) => v.ok).length;
  const timedOut = [
    ...incremental.flatMap((x) => x.rounds.map((r) => r.intersyncMs)), ...big.changes.map((r) => r.intersyncMs),
  ].some((x) => Number.isNaN(x)) || lag.timeouts > 0;
  const verdict = (ok: boolean): string => (ok ? 'ok' : 'MISSED');
  const rows: Array<Array<string | number>> = [];
  const mi = initial.median;
  rows.push([`(a) initial sync, ${fmt(initial.files)} files`, `${fmt(mi.intersyncMs)} ms, ${fmt(mi.intersyncFilesPerSec)} files/s`,
    `${fmt(mi.rsyncMs)} ms, ${fmt(mi.rsyncFilesPerSec)} files/s`, `${fmt(mi.ratio, 2)}x rsync; target >= 1.0x ${verdict(mi.ratio >= 1)}`]);
  for (const x of incremental) {
    const times = x.rounds.map((r) => r.intersyncMs);
    rows.push([`(b) ${x.changes} changes, ${fmt(x.files)}-file tree`,
      `${fmt(x.median.intersyncMs, 1)} ms (min ${fmt(Math.min(...times), 1)}, max ${fmt(Math.max(...times), 1)})`,
      `${fmt(x.median.rsyncMs, 1)} ms`, `target < 100 ms ${verdict(x.median.intersyncMs < 100)}`]);
  }
  if (incremental.length >= 2) {
    const first = incremental[0]!;
    const lastInc = incremental[incremental.length - 1]!;
    rows.push([`(b) growth ${fmt(first.files)} -> ${fmt(lastInc.files)} files`, `${fmt(lastInc.median.intersyncMs / first.median.intersyncMs, 2)}x`,
      `${fmt(lastInc.median.rsyncMs / first.median.rsyncMs, 2)}x`, 'intersync should stay flat']);
  }
  const mb = big.median;
  rows.push([`(c) initial sync, ${mib(big.bytes, 0)} file`, `${fmt(mb.intersyncInitialMs)} ms, ${fmt(mb.intersyncInitialMBps)} MB/s`,
    `${fmt(mb.rsyncInitialMs)} ms, ${fmt(mb.rsyncInitialMBps)} MB/s`, `${fmt(mb.rsyncInitialMs / mb.intersyncInitialMs, 2)}x rsync's speed`]);
  rows.push([`(c) ${mib(big.patchBytes, 0)} changed: time`, `${fmt(mb.intersyncChangeMs)} ms`, `${fmt(mb.rsyncChangeMs)} ms`, '']);
  rows.push([`(c) ${mib(big.patchBytes, 0)} changed: bytes on the wire`, `${fmt(mb.intersyncChangeBytes)} (${mib(mb.intersyncChangeBytes)})`,
    `${fmt(mb.rsyncChangeBytes)} (${mib(mb.rsyncChangeBytes)})`, `target < 2 MiB ${verdict(mb.intersyncChangeBytes < 2 * MiB)}`]);
  rows.push([`(d) lag close -> content, p50 (${fmt(lag.lagsMs.length)} writes)`, `${fmt(lag.p50, 1)} ms`, '', `target < 20 ms ${verdict(lag.p50 < 20)}`]);
  rows.push(['(d) lag close -> content, p99', `${fmt(lag.p99, 1)} ms`, '', `target < 100 ms ${verdict(lag.p99 < 100)}`]);
  rows.push(['digest checks (client = client --scan = server)', `${digestsOk}/${verdicts.length} ${digestsOk === verdicts.length ? 'OK' : 'MISMATCH'}`, '', '']);
  say(table(['replication (medians)', 'intersync', 'rsync', 'ratio / target'], rows));
  say('  rsync times exclude its write-back (sync -f, printed per run); the intersync client syncs before it acknowledges, inside its time.');
  say('');
  return {
    options: o, rsync, initial, incremental, big, lag, digestsOk, digestsTotal: verdicts.length,
    allOk: digestsOk === verdicts.length && !timedOut,
  };
}
