// 1. Capture overhead: the workload unwatched (A) and watched by the daemon
// (B), interleaved A B A B ..., each in a fresh temp dir.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  BENCH, Daemon, JournalMonitor, checkDigest, fmt, journalRecords, journalVsDisk, logProblems, makeTmp, median, retryOnDeath, runNode, say,
  syncDisks, table,
} from './lib.js';

export interface CaptureOptions {
  readonly files: number;
  readonly dirs: number;
  readonly pairs: number;
}

interface WorkloadOut {
  files: number;
  startEpochMs: number;
  endEpochMs: number;
  createMs: number;
  modifyMs: number;
  renameMs: number;
  deleteMs: number;
  totalMs: number;
}

export interface UnwatchedRun {
  readonly workloadMs: number;
  readonly processMs: number;
  readonly phases: Pick<WorkloadOut, 'createMs' | 'modifyMs' | 'renameMs' | 'deleteMs'>;
}

export interface WatchedRun extends UnwatchedRun {
  readonly records: number;
  readonly journalRecords: number;
  readonly caughtUpMs: number; // workload start -> last record
  readonly catchUpMs: number; // workload end -> last record
  readonly recordsPerSec: number;
  readonly daemonCpuS: number; // workload start -> caught up
  readonly daemonCpuDuringWorkloadS: number;
  readonly peakRssMb: number;
  readonly digestOk: boolean;
  /** On a digest mismatch: how the journal and the disk differ. */
  readonly mismatch: { readonly differences: number; readonly examples: string[] } | null;
  readonly lastError: string | null;
  /** The daemon's warn/error log lines during the run. */
  readonly logProblems: string[];
}

export interface CaptureResult {
  readonly options: CaptureOptions;
  readonly unwatched: UnwatchedRun[];
  readonly watched: WatchedRun[];
  readonly median: {
    readonly unwatchedMs: number;
    readonly watchedMs: number;
    readonly speedRatio: number; // unwatched time / watched time: 1 = no overhead
    readonly pairRatio: number; // median over pairs of A_i / B_i (robust to drift across the bench)
    readonly daemonCpuS: number;
    readonly records: number;
    readonly recordsPerSec: number;
    readonly catchUpMs: number;
    readonly caughtUpMs: number;
    readonly peakRssMb: number;
  };
  readonly allDigestsOk: boolean;
}

function workloadArgs(dir: string, o: CaptureOptions, seed: number): string[] {
  return [join(BENCH, 'workload.mjs'), dir, '--files', String(o.files), '--dirs', String(o.dirs), '--seed', String(seed)];
}

async function runWorkload(dir: string, o: CaptureOptions, seed: number): Promise<{ out: WorkloadOut; processMs: number }> {
  const r = await runNode(workloadArgs(dir, o, seed), { timeoutMs: 600_000, what: 'workload' });
  if (r.code !== 0) throw new Error(`workload exited ${r.code}: ${r.stderr.trim()}`);
  return { out: JSON.parse(r.stdout.trim()) as WorkloadOut, processMs: r.ms };
}

async function unwatchedRun(o: CaptureOptions, seed: number): Promise<UnwatchedRun> {
  const root = makeTmp('cap-a'); // removed at the end of the bench (see removeAllTmp)
  const dir = join(root, 'data');
  mkdirSync(dir);
  syncDisks();
  const { out, processMs } = await runWorkload(dir, o, seed);
  return { workloadMs: out.totalMs, processMs, phases: out };
}

async function watchedRun(o: CaptureOptions, seed: number): Promise<WatchedRun> {
  const root = makeTmp('cap-b'); // removed at the end of the bench (see removeAllTmp)
  let daemon: Daemon | undefined;
  let mon: JournalMonitor | undefined;
  try {
    const dir = join(root, 'data');
    const logDir = join(root, 'log');
    mkdirSync(dir);
    daemon = await Daemon.start(dir, logDir);
    mon = new JournalMonitor(daemon);
    syncDisks();
    const cpu0 = daemon.cpuSeconds();
    mon.startPolling(50);
    const { out, processMs } = await runWorkload(dir, o, seed);
    const cpuAtEnd = daemon.cpuSeconds();
    const done = await mon.caughtUp({ quietMs: 1000 });
    const cpu1 = daemon.cpuSeconds();
    const peakRssMb = daemon.peakRssKb() / 1024;
    const records = done.tid;
    const total = journalRecords(dir);
    const digest = checkDigest(dir);
    const mismatch = digest.ok ? null : journalVsDisk(dir);
    const caughtUpMs = Math.max(done.at - out.startEpochMs, out.totalMs);
    return {
      workloadMs: out.totalMs, processMs, phases: out,
      records, journalRecords: total, caughtUpMs, catchUpMs: Math.max(0, done.at - out.endEpochMs),
      recordsPerSec: records / (caughtUpMs / 1000), daemonCpuS: cpu1 - cpu0, daemonCpuDuringWorkloadS: cpuAtEnd - cpu0,
      peakRssMb, digestOk: digest.ok, mismatch, lastError: done.status.capture.lastError, logProblems: logProblems(logDir),
    };
  } finally {
    mon?.close();
    if (daemon !== undefined) await daemon.stopChecked();
  }
}

export async function captureBench(o: CaptureOptions): Promise<CaptureResult> {
  say(`== 1. Capture overhead: ${fmt(o.files)} files in ${o.dirs} dirs, modify ${fmt(Math.floor(o.files / 4))}, ` +
    `rename ${fmt(Math.floor(o.files / 10))}, delete ${fmt(Math.floor(o.files / 10))}; ${o.pairs} interleaved pairs`);
  const unwatched: UnwatchedRun[] = [];
  const watched: WatchedRun[] = [];
  for (let i = 0; i < o.pairs; i++) {
    const seed = i + 1; // the same workload for A and B of a pair
    const a = await unwatchedRun(o, seed);
    unwatched.push(a);
    say(`  pair ${i + 1}/${o.pairs}  A unwatched: workload ${fmt(a.workloadMs)} ms`);
    const b = await retryOnDeath('watched run', () => watchedRun(o, seed));
    watched.push(b);
    say(`  pair ${i + 1}/${o.pairs}  B watched:   workload ${fmt(b.workloadMs)} ms, caught up at ${fmt(b.caughtUpMs)} ms ` +
      `(+${fmt(b.catchUpMs)} ms after the workload), ${fmt(b.records)} records (${fmt(b.recordsPerSec)}/s), ` +
      `daemon CPU ${fmt(b.daemonCpuS, 2)} s, peak RSS ${fmt(b.peakRssMb, 1)} MB, digest ${b.digestOk ? 'OK' : 'MISMATCH'}` +
      `${b.lastError === null ? '' : `, last error: ${b.lastError}`}`);
    if (b.mismatch !== null) {
      say(`    journal and disk differ in ${fmt(b.mismatch.differences)} objects, e.g.:`);
      for (const e of b.mismatch.examples) say(`      ${e}`);
    }
    if (b.logProblems.length > 0) {
      say(`    daemon logged ${b.logProblems.length} warning(s)/error(s), e.g.:`);
      for (const l of b.logProblems.slice(0, 3)) say(`      ${l.slice(0, 200)}`);
    }
  }
  const m = {
    unwatchedMs: median(unwatched.map((r) => r.workloadMs)),
    watchedMs: median(watched.map((r) => r.workloadMs)),
    speedRatio: Number.NaN,
    pairRatio: median(unwatched.map((a, i) => a.workloadMs / watched[i]!.workloadMs)),
    daemonCpuS: median(watched.map((r) => r.daemonCpuS)),
    records: median(watched.map((r) => r.records)),
    recordsPerSec: median(watched.map((r) => r.recordsPerSec)),
    catchUpMs: median(watched.map((r) => r.catchUpMs)),
    caughtUpMs: median(watched.map((r) => r.caughtUpMs)),
    peakRssMb: median(watched.map((r) => r.peakRssMb)),
  };
  m.speedRatio = m.unwatchedMs / m.watchedMs;
  const phase = (runs: UnwatchedRun[], k: keyof UnwatchedRun['phases']): number => median(runs.map((r) => r.phases[k]));
  say('');
  say(table(['median of runs (ms)', 'total', 'create', 'modify', 'rename', 'delete'], [
    ['A unwatched', m.unwatchedMs, phase(unwatched, 'createMs'), phase(unwatched, 'modifyMs'), phase(unwatched, 'renameMs'), phase(unwatched, 'deleteMs')],
    ['B watched', m.watchedMs, phase(watched, 'createMs'), phase(watched, 'modifyMs'), phase(watched, 'renameMs'), phase(watched, 'deleteMs')],
  ]));
  say(`  speed watched/unwatched (= t_unwatched / t_watched): ${fmt(m.speedRatio, 2)}x  (target >= 0.90x); ` +
    `median of per-pair ratios ${fmt(m.pairRatio, 2)}x`);
  const allDigestsOk = watched.every((r) => r.digestOk);
  say(`  digest check after each watched run: ${watched.map((r) => (r.digestOk ? 'OK' : 'MISMATCH')).join(' ')}`);
  say('');
  return { options: o, unwatched, watched, median: m, allDigestsOk };
}
