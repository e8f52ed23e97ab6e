// Shared helpers of the benchmark suite: daemon processes, /proc figures,
// journal polling, temp dirs and clean-up that runs even on failure.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const CLI = join(ROOT, 'dist', 'cli', 'main.js');
export const BENCH = join(ROOT, 'bench');
/** Extra node flags for every daemon a bench starts, for an investigation: INTERSYNC_BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof". */
export const DAEMON_NODE_ARGS = (process.env.INTERSYNC_BENCH_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');

/** Wall clock with sub-ms resolution, comparable across processes (the workload reports the same). */
export const nowMs = (): number => performance.timeOrigin + performance.now();
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- output

/** Human-readable output: stdout, or stderr when --json owns stdout. */
let out: (s: string) => void = (s) => process.stdout.write(`${s}\n`);
export function humanToStderr(): void {
  out = (s) => process.stderr.write(`${s}\n`);
}
export function say(s = ''): void {
  out(s);
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return '-';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** A plain text table; numbers right-aligned, text left-aligned. */
export function table(head: string[], rows: Array<Array<string | number>>): string {
  const cells = [head, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? fmt(c) : c)))];
  const right = head.map((_, i) => rows.some((r) => typeof r[i] === 'number'));
  const w = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => r.map((c, i) => (right[i] ? c.padStart(w[i]!) : c.padEnd(w[i]!))).join('  ').trimEnd();
  return [line(cells[0]!), w.map((n) => '-'.repeat(n)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

// ---------------------------------------------------------------- clean-up

const liveChildren = new Map<number, string>(); // pid -> what
const tmpDirs = new Set<string>();
let cleanupInstalled = false;

/** Kill every child still running and remove every temp dir when the process exits, however it exits. */
export function installCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on('exit', () => {
    for (const pid of liveChildren.keys()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    liveChildren.clear();
    for (const d of tmpDirs) {
      try {
        rmSync(d, { recursive: true, force: true });
      } catch {
        // best effort
      }
    }
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      process.stderr.write(`\nbench: ${sig}, killing ${liveChildren.size} child process(es) and removing temp dirs\n`);
      process.exit(130);
    });
  }
}

function track(child: ChildProcess, what: string): void {
  const pid = child.pid;
  if (pid === undefined) return;
  liveChildren.set(pid, what);
  child.once('exit', () => liveChildren.delete(pid));
}

export function makeTmp(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), `intersync-bench-${prefix}-`));
  tmpDirs.add(d);
  return d;
}

let benchState: string | undefined;

/**
 * The state directory of every daemon a bench starts (secrets, TLS keys, credentials), a temp dir
 * passed on through INTERSYNC_STATE_DIR: a bench never writes /var/lib/intersync.
 */
export function benchStateDir(): string {
  benchState ??= makeTmp('state');
  process.env.INTERSYNC_STATE_DIR = benchState;
  return benchState;
}

/** The fileset secret of the server whose backing directory is `dir` (for --secret-file). */
export function serverSecretFile(dir: string): string {
  const node = readFileSync(join(dir, '.intermezzo', 'node-id'), 'utf8').trim();
  return join(benchStateDir(), node, 'default', 'secret');
}

export function removeTmp(d: string): void {
  rmSync(d, { recursive: true, force: true });
  tmpDirs.delete(d);
}

/**
 * Remove every temp dir made so far. Runs keep their dirs until the end on
 * purpose: on ext4 without a journal (as /tmp is here) the inode allocator
 * skips inodes freed in the last 60-300 s one by one, so creating files right
 * after deleting thousands is many times slower and the next run would pay
 * for the previous one's clean-up.
 */
export function removeAllTmp(): void {
  for (const d of [...tmpDirs]) removeTmp(d);
}

/**
 * A quick file-system health figure: ms to create `n` 1000-byte files in a
 * fresh temp dir (kept until the end). Far above ~100 ms per 1000 files means
 * /tmp is slow right now (see removeAllTmp) and every figure will be inflated.
 */
export function createBaselineMs(n = 1000): number {
  const d = makeTmp('fscheck');
  const buf = Buffer.alloc(1000, 120);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) writeFileSync(join(d, `f${i}`), buf);
  return performance.now() - t0;
}

/** Flush dirty pages so one run's write-back does not land in the next run's timing. */
export function syncDisks(): void {
  spawnSync('sync', { stdio: 'ignore' });
}

// ---------------------------------------------------------------- child processes

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/** Run a node script as a child, tracked for clean-up; resolves when it exits. */
export function runNode(args: string[], opts: { timeoutMs?: number; what?: string } = {}): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    track(child, opts.what ?? args.join(' '));
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${opts.what ?? args.join(' ')}: timed out after ${opts.timeoutMs} ms`));
    }, opts.timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      if (timer !== undefined) clearTimeout(timer);
      resolvePromise({ code, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

/** Run the intersync CLI synchronously (short commands: status, digest, kml); throws on failure. */
export function cli(args: string[]): string {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`intersync ${args.join(' ')} exited ${r.status ?? r.signal}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Total journal records, as `intersync status --json` reports them. */
export function journalRecords(dir: string): number {
  return (JSON.parse(cli(['status', dir, '--json'])) as { records: number }).records;
}

/** `digest` (journal) against `digest --scan` (recomputed from disk). */
export function checkDigest(dir: string): { ok: boolean; journal: string; disk: string } {
  const journal = cli(['digest', dir]).trim();
  const disk = cli(['digest', '--scan', dir]).trim();
  return { ok: journal === disk && /^[0-9a-f]{64}$/.test(journal), journal, disk };
}

// ---------------------------------------------------------------- /proc

let clkTck: number | undefined;
export function clockTicks(): number {
  if (clkTck === undefined) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    const n = Number(r.stdout?.trim());
    clkTck = r.status === 0 && Number.isInteger(n) && n > 0 ? n : 100;
  }
  return clkTck;
}

/** utime + stime of a process, in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start at field 3; utime is 14, stime 15.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / clockTicks();
}

/** A /proc/PID/status field in kB (VmHWM: peak RSS, VmRSS: current). */
export function procStatusKb(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m === null ? Number.NaN : Number(m[1]);
}

// ---------------------------------------------------------------- the daemon

export interface CaptureStatus {
  state: string;
  watchedDirs: number;
  pending: number;
  records: number;
  lastScan: { entries: number; dirty: number; durMs: number } | null;
  lastError: string | null;
  watchLimit: unknown;
}
export interface StatusJson {
  pid: number;
  startedAt: number;
  updatedAt: number;
  capture: CaptureStatus;
}

/**
 * The daemon exited without being asked to (a crash, or a signal from
 * outside: this machine is shared, and something else may kill it). Runs
 * that hit this are retried.
 */
export class DaemonDiedError extends Error {
  readonly exit: string;
  constructor(dir: string, exit: string, stderr: string, when: string) {
    super(`daemon on ${dir} exited (${exit}) ${when}${stderr.trim() === '' ? '' : `: ${stderr.trim().split('\n').slice(0, 3).join(' | ')}`}`);
    this.exit = exit;
  }
}

/** Run `fn`, retrying (up to `attempts` in all) when the daemon died under it. */
export async function retryOnDeath<T>(what: string, fn: () => Promise<T>, attempts = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof DaemonDiedError) || i >= attempts) throw e;
      say(`    ${what}: ${e.message}; retrying (${i + 1}/${attempts})`);
    }
  }
}

export class Daemon {
  readonly dir: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly spawnedAt: number;
  readyAt = Number.NaN;
  stdout = '';
  stderr = '';
  #exited: Promise<number | null>;
  #exitCode: number | string | null | undefined;
  #stopRequested = false;

  private constructor(dir: string, child: ChildProcess) {
    this.dir = dir;
    this.child = child;
    this.pid = child.pid!;
    this.spawnedAt = nowMs();
    track(child, `daemon on ${dir}`);
    child.stdout!.on('data', (b: Buffer) => {
      if (this.stdout.length < 1 << 20) this.stdout += b.toString();
    });
    child.stderr!.on('data', (b: Buffer) => {
      if (this.stderr.length < 1 << 20) this.stderr += b.toString();
    });
    this.#exited = new Promise((r) => child.once('exit', (code, signal) => {
      this.#exitCode = code ?? signal;
      r(code);
    }));
  }

  /** Start `intersync DIR` and wait for its "serving fileset" line. */
  static async start(
    dir: string, logDir: string, opts: { timeoutMs?: number; extraNodeArgs?: string[]; extraArgs?: string[] } = {},
  ): Promise<Daemon> {
    const args = [...DAEMON_NODE_ARGS, ...(opts.extraNodeArgs ?? []), CLI, dir, '--log-dir', logDir, ...(opts.extraArgs ?? [])];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    if (child.pid === undefined) throw new Error('cannot spawn the daemon');
    const d = new Daemon(dir, child);
    const timeoutMs = opts.timeoutMs ?? 60_000;
    try {
      await new Promise<void>((ok, fail) => {
        const timer = setTimeout(() => fail(new Error(`daemon on ${dir} not ready after ${timeoutMs} ms`)), timeoutMs);
        const onData = (): void => {
          if (d.stdout.includes('serving fileset')) {
            d.readyAt = nowMs();
            clearTimeout(timer);
            child.stdout!.off('data', onData);
            ok();
          }
        };
        child.stdout!.on('data', onData);
        child.once('exit', (code, sig) => {
          clearTimeout(timer);
          fail(new DaemonDiedError(dir, String(code ?? sig), d.stderr, 'before it was ready'));
        });
      });
    } catch (e) {
      await d.stop();
      throw e;
    }
    return d;
  }

  get running(): boolean {
    return this.#exitCode === undefined;
  }

  get readyMs(): number {
    return this.readyAt - this.spawnedAt;
  }

  get statusFile(): string {
    return join(this.dir, '.intermezzo', 'default', 'status.json');
  }

  get dbFile(): string {
    return join(this.dir, '.intermezzo', 'default', 'fileset.db');
  }

  readStatus(): StatusJson | undefined {
    try {
      return JSON.parse(readFileSync(this.statusFile, 'utf8')) as StatusJson;
    } catch {
      return undefined; // between write and rename, or not written yet
    }
  }

  cpuSeconds(): number {
    this.#mustRun();
    return cpuSeconds(this.pid);
  }

  peakRssKb(): number {
    this.#mustRun();
    return procStatusKb(this.pid, 'VmHWM');
  }

  #mustRun(): void {
    if (!this.running) throw this.died('while running');
  }

  /** The error for an exit nobody asked for. */
  died(when: string): Error {
    const exit = String(this.#exitCode);
    return this.#stopRequested ? new Error(`daemon on ${this.dir} exited (${exit}) ${when}`) : new DaemonDiedError(this.dir, exit, this.stderr, when);
  }

  /** stop(), and say so when the daemon did not exit cleanly (exit code 0). */
  async stopChecked(): Promise<number | null> {
    const code = await this.stop();
    if (code !== 0) say(`    warning: daemon on ${this.dir} exited ${code ?? this.#exitCode}${this.stderr.trim() === '' ? '' : `: ${this.stderr.trim().split('\n')[0]}`}`);
    return code;
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. Resolves with the exit code. */
  async stop(graceMs = 30_000): Promise<number | null> {
    if (!this.running) return typeof this.#exitCode === 'number' ? this.#exitCode : null;
    this.#stopRequested = true;
    try {
      process.kill(this.pid, 'SIGTERM');
    } catch {
      // gone already
    }
    const killer = setTimeout(() => {
      try {
        process.kill(this.pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }, graceMs);
    try {
      return await this.#exited;
    } finally {
      clearTimeout(killer);
    }
  }
}

/**
 * Watches the journal of a running daemon: the last TID read straight from the
 * database (read-only, cheap) plus the daemon's status.json. Records when the
 * TID last moved, so "caught up" can be dated to the last record rather than
 * to when it was noticed.
 */
export class JournalMonitor {
  readonly #d: Daemon;
  readonly #db: Database.Database;
  readonly #stmt: Database.Statement;
  #timer: NodeJS.Timeout | undefined;
  tid = 0;
  lastChangeAt = nowMs();

  constructor(d: Daemon) {
    this.#d = d;
    if (!existsSync(d.dbFile)) throw new Error(`no database at ${d.dbFile}`);
    this.#db = new Database(d.dbFile, { readonly: true, fileMustExist: true });
    this.#db.pragma('busy_timeout = 2000');
    this.#stmt = this.#db.prepare('SELECT coalesce(max(tid), 0) FROM kml').pluck();
    this.poll();
  }

  poll(): number {
    let t: number;
    try {
      t = Number(this.#stmt.get());
    } catch {
      return this.tid; // busy: next time
    }
    if (t !== this.tid) {
      this.tid = t;
      this.lastChangeAt = nowMs();
    }
    return t;
  }

  /** Poll in the background every `ms` (while a workload runs). */
  startPolling(ms = 50): void {
    this.stopPolling();
    this.#timer = setInterval(() => this.poll(), ms);
  }

  stopPolling(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /**
   * Wait until the daemon is caught up: no pending hints in status.json, the
   * TID unchanged for `quietMs`, and a status.json written after the last
   * record that agrees with the journal (records since start = TIDs since `baseTid`).
   */
  async caughtUp(opts: { quietMs?: number; timeoutMs?: number; baseTid?: number } = {}): Promise<{ at: number; tid: number; status: StatusJson }> {
    const quietMs = opts.quietMs ?? 1000;
    const deadline = nowMs() + (opts.timeoutMs ?? 600_000);
    this.stopPolling();
    for (;;) {
      if (!this.#d.running) throw this.#d.died('while catching up');
      this.poll();
      const st = this.#d.readStatus();
      const now = nowMs();
      if (
        st !== undefined && st.capture.pending === 0 && now - this.lastChangeAt >= quietMs &&
        st.updatedAt >= this.lastChangeAt && st.capture.records === this.tid - (opts.baseTid ?? 0)
      ) {
        return { at: this.lastChangeAt, tid: this.tid, status: st };
      }
      if (now > deadline) {
        throw new Error(`daemon on ${this.#d.dir} not caught up: tid ${this.tid}, status ${JSON.stringify(st?.capture)}`);
      }
      await sleep(50);
    }
  }

  close(): void {
    this.stopPolling();
    this.#db.close();
  }
}

/**
 * What differs between the object table and the disk, for a digest mismatch:
 * the count and a few examples ("on disk only", "journal only", "content", ...).
 */
export function journalVsDisk(dir: string, maxExamples = 6): { differences: number; examples: string[] } {
  const db = new Database(join(dir, '.intermezzo', 'default', 'fileset.db'), { readonly: true, fileMustExist: true });
  const journal = new Map<string, { type: string; mode: number; hash: string | null; target: string | null }>();
  try {
    const rows = db.prepare('SELECT path, type, mode, hash, target FROM objects').all() as Array<{
      path: string; type: string; mode: number; hash: string | null; target: string | null;
    }>;
    for (const r of rows) journal.set(r.path, r);
  } finally {
    db.close();
  }
  const examples: string[] = [];
  let differences = 0;
  const note = (s: string): void => {
    differences++;
    if (examples.length < maxExamples) examples.push(s);
  };
  const stack = [''];
  while (stack.length > 0) {
    const rel = stack.pop()!;
    for (const name of readdirSync(rel === '' ? dir : join(dir, rel)).sort()) {
      if (rel === '' && name === '.intermezzo') continue;
      const p = rel === '' ? name : `${rel}/${name}`;
      const abs = join(dir, p);
      const st = lstatSync(abs);
      const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'other';
      if (type === 'dir') stack.push(p);
      const j = journal.get(p);
      journal.delete(p);
      if (type === 'other') continue;
      if (j === undefined) {
        note(`on disk only: ${type} ${p}`);
        continue;
      }
      if (j.type !== type) note(`type: ${p} journal ${j.type}, disk ${type}`);
      else if (type === 'file' && j.hash !== createHash('sha256').update(readFileSync(abs)).digest('hex')) note(`content: ${p}`);
      else if (type !== 'symlink' && (Number(j.mode) & 0o7777) !== (st.mode & 0o7777)) note(`mode: ${p}`);
      else if (type === 'symlink' && j.target !== readlinkSync(abs)) note(`symlink target: ${p}`);
    }
  }
  for (const [p, j] of journal) note(`journal only: ${j.type} ${p}`);
  return { differences, examples };
}

/** The daemon's warn/error log lines, as "msg (fields)". */
export function logProblems(logDir: string): string[] {
  return readLog(logDir).filter((l) => ['warn', 'error', 'fatal'].includes(String(l.level))).map((l) => {
    const { level: _l, time: _t, pid: _p, fileset: _f, component: _c, msg, ...rest } = l;
    return `${String(msg)} ${JSON.stringify(rest)}`;
  });
}

/** The daemon's log lines (pino JSON), for the start-up phase breakdown. */
export function readLog(logDir: string): Array<Record<string, unknown>> {
  const files = existsSync(logDir) ? readdirSync(logDir).filter((n) => /^intersync-.*\.log$/.test(n)) : [];
  const lines: Array<Record<string, unknown>> = [];
  for (const l of files.map((f) => readFileSync(join(logDir, f), 'utf8')).join('').split('\n')) {
    if (l.trim() === '') continue;
    try {
      lines.push(JSON.parse(l) as Record<string, unknown>);
    } catch {
      // a torn last line
    }
  }
  return lines;
}
