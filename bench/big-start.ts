// Big trees (issue 19, item 5): the first start on a tree nobody journaled yet, then an unchanged restart.
//
//   npm run bench -- --only big-start [--files N] [--rounds R]
//
// `bench/mktree.mjs` builds N files, 10 a directory (1M files: 100k directories), in a fresh temp dir. The
// daemon (`intersync DIR --listen none`) is started on it and timed until it has journaled everything and is
// idle (status.json: capture watching, nothing pending, no start-up progress); meanwhile status.json is polled
// every 250 ms (the first moment it answers, the largest progress it showed) and so is the WAL's size (the
// largest seen). Peak RSS is the daemon's VmHWM. Then it is stopped and started again on the unchanged tree,
// timed the same way. With INTERSYNC_BENCH_BASE=/a/built/tree the same runs are made with that tree's dist/
// too, interleaved (base first in each round), for a before/after on the same machine at the same moment.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BENCH, ROOT, benchStateDir, checkDigest, fmt, makeTmp, median, nowMs, procStatusKb, removeTmp, say, sleep, syncDisks, table, type StatusJson } from './lib.js';

export interface BigStartOptions {
  readonly files: number;
  readonly rounds: number;
}

export interface StartFigures {
  /** Spawn until status.json first answered (the daemon's status is up). */
  readonly statusUpMs: number;
  /** Spawn until everything is journaled and capture is idle. */
  readonly idleMs: number;
  readonly records: number;
  readonly peakRssMb: number;
  readonly maxWalMb: number;
  /** The largest "done" of the start-up progress status.json showed, and its total (0: none shown). */
  readonly progressSeen: number;
  readonly progressTotal: number;
}

export interface BigStartRun {
  readonly tree: string; // which build: 'this' or 'base'
  readonly first: StartFigures;
  readonly restart: StartFigures;
  readonly digestOk: boolean;
}

export interface BigStartResult {
  readonly options: BigStartOptions;
  readonly runs: BigStartRun[];
  readonly allOk: boolean;
}

interface Progress {
  readonly done?: number;
  readonly about?: number | null;
}
type BigStatus = StatusJson & { capture: StatusJson['capture'] & { progress?: Progress | null } };

/** Start a daemon of `root`'s dist/ on `dir` and wait until it journaled everything and is idle. */
async function timedStart(root: string, dir: string, logDir: string): Promise<StartFigures> {
  const statusFile = join(dir, '.intermezzo', 'default', 'status.json');
  const wal = join(dir, '.intermezzo', 'default', 'fileset.db-wal');
  const t0 = nowMs();
  const child = spawn(process.execPath, [join(root, 'dist', 'cli', 'main.js'), dir, '--log-dir', logDir, '--listen', 'none'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => {
    if (stderr.length < 1 << 16) stderr += b.toString();
  });
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  const pid = child.pid!;
  let statusUpMs = Number.NaN;
  let maxWal = 0;
  let progressSeen = 0;
  let progressTotal = 0;
  let st: BigStatus | undefined;
  try {
    for (;;) {
      if (exited) throw new Error(`daemon on ${dir} exited before it was idle: ${stderr.trim().split('\n')[0] ?? ''}`);
      if (existsSync(wal)) maxWal = Math.max(maxWal, statSync(wal).size);
      st = readStatus(statusFile, pid);
      if (st !== undefined) {
        if (Number.isNaN(statusUpMs)) statusUpMs = nowMs() - t0;
        const p = st.capture.progress;
        if (p?.done !== undefined && p.done > progressSeen) {
          progressSeen = p.done;
          progressTotal = p.about ?? 0;
        }
        if (st.capture.state === 'watching' && st.capture.pending === 0 && (p === undefined || p === null)) break;
      }
      await sleep(250);
    }
    const idleMs = nowMs() - t0;
    const peakRssMb = procStatusKb(pid, 'VmHWM') / 1024;
    if (existsSync(wal)) maxWal = Math.max(maxWal, statSync(wal).size);
    return { statusUpMs, idleMs, records: st.capture.records, peakRssMb, maxWalMb: maxWal / 2 ** 20, progressSeen, progressTotal };
  } finally {
    if (!exited) {
      const gone = new Promise((r) => child.once('exit', r));
      process.kill(pid, 'SIGTERM');
      const killer = setTimeout(() => process.kill(pid, 'SIGKILL'), 60_000);
      await gone;
      clearTimeout(killer);
    }
  }
}

/** This daemon's status.json, once it is written by this very process (not a previous run's). */
function readStatus(file: string, pid: number): BigStatus | undefined {
  try {
    const s = JSON.parse(readFileSync(file, 'utf8')) as BigStatus;
    return s.pid === pid ? s : undefined;
  } catch {
    return undefined;
  }
}

function buildTree(dir: string, files: number): number {
  const t0 = nowMs();
  const r = spawnSyncNode([join(BENCH, 'mktree.mjs'), dir, '--dirs', String(Math.ceil(files / 10)), '--files', '10']);
  if (r !== 0) throw new Error(`mktree.mjs exited ${r}`);
  return nowMs() - t0;
}

function spawnSyncNode(args: string[]): number | null {
  return spawnSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] }).status;
}

export async function bigStartBench(o: BigStartOptions): Promise<BigStartResult> {
  benchStateDir();
  const base = process.env.INTERSYNC_BENCH_BASE;
  const trees: Array<[string, string]> = base === undefined ? [['this', ROOT]] : [['base', base], ['this', ROOT]];
  say(`big start: ${fmt(o.files)} files in ${fmt(Math.ceil(o.files / 10))} directories, ${o.rounds} round(s)${base === undefined ? '' : `, interleaved with ${base}`}`);
  const runs: BigStartRun[] = [];
  for (let round = 0; round < o.rounds; round++) {
    for (const [name, root] of trees) {
      const tmp = makeTmp('big');
      const dir = join(tmp, 'tree');
      const buildMs = buildTree(dir, o.files);
      syncDisks();
      say(`  ${name}: tree built in ${fmt(buildMs)} ms`);
      const first = await timedStart(root, dir, join(tmp, 'log'));
      say(`  ${name}: first start   status up ${fmt(first.statusUpMs)} ms, journaled and idle ${fmt(first.idleMs)} ms, ${fmt(first.records)} records, ` +
        `peak RSS ${fmt(first.peakRssMb)} MB, WAL max ${fmt(first.maxWalMb, 1)} MB, progress seen ${fmt(first.progressSeen)} of ${fmt(first.progressTotal)}`);
      const restart = await timedStart(root, dir, join(tmp, 'log'));
      say(`  ${name}: unchanged restart   status up ${fmt(restart.statusUpMs)} ms, idle ${fmt(restart.idleMs)} ms, ${fmt(restart.records)} records, ` +
        `peak RSS ${fmt(restart.peakRssMb)} MB, WAL max ${fmt(restart.maxWalMb, 1)} MB`);
      const digestOk = o.files <= 200_000 ? checkDigest(dir).ok : true; // digest --scan reads every file: skipped past 200k
      runs.push({ tree: name, first, restart, digestOk });
      removeTmp(tmp);
    }
  }
  const rows: Array<Array<string | number>> = [];
  for (const [name] of trees) {
    const mine = runs.filter((r) => r.tree === name);
    const m = (f: (r: BigStartRun) => number): number => median(mine.map(f));
    rows.push([name, 'first start: status up / journaled and idle', `${fmt(m((r) => r.first.statusUpMs))} / ${fmt(m((r) => r.first.idleMs))} ms`]);
    rows.push([name, 'first start: records/s', fmt(m((r) => r.first.records / (r.first.idleMs / 1000)))]);
    rows.push([name, 'first start: peak RSS / WAL max', `${fmt(m((r) => r.first.peakRssMb))} MB / ${fmt(m((r) => r.first.maxWalMb), 1)} MB`]);
    rows.push([name, 'unchanged restart: status up / idle', `${fmt(m((r) => r.restart.statusUpMs))} / ${fmt(m((r) => r.restart.idleMs))} ms`]);
    rows.push([name, 'unchanged restart: peak RSS', `${fmt(m((r) => r.restart.peakRssMb))} MB`]);
    rows.push([name, 'digest == digest --scan', mine.every((r) => r.digestOk) ? 'OK' : 'MISMATCH']);
  }
  say(table(['build', 'figure', 'median'], rows));
  return { options: o, runs, allOk: runs.every((r) => r.digestOk) };
}
