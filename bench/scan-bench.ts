// 2. Start-up scan: a large journaled tree, restarted with 0 and with N files
// changed while the daemon was stopped.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  BENCH, CLI, Daemon, JournalMonitor, fmt, journalRecords, makeTmp, median, readLog, removeTmp, retryOnDeath, runNode, say, syncDisks, table,
} from './lib.js';

export interface ScanOptions {
  readonly dirs: number;
  readonly filesPerDir: number;
  readonly rounds: number; // rounds of each kind (unchanged, changed)
  readonly changes: number;
}

export interface ScanRound {
  readonly changed: number;
  readonly scanMs: number;
  readonly entries: number;
  readonly dirty: number;
  readonly readyMs: number; // spawn -> "serving fileset"
  readonly openMs: number; // spawn -> 'starting' log line (node start, modules, database open and check)
  readonly recordsGrew: number;
  readonly ok: boolean;
  readonly peakRssMb: number;
}

export interface ScanResult {
  readonly options: ScanOptions;
  readonly tree: { readonly entries: number; readonly buildMs: number };
  readonly initial: {
    readonly records: number;
    readonly readyMs: number;
    readonly recordsPerSec: number;
    readonly cpuS: number;
    readonly peakRssMb: number;
    readonly attempts: number;
  };
  readonly nodeStartMs: number;
  readonly rounds: ScanRound[];
  readonly median: {
    readonly unchangedScanMs: number;
    readonly unchangedReadyMs: number;
    readonly changedScanMs: number;
    readonly changedReadyMs: number;
  };
  readonly allOk: boolean;
}

function tidOf(dbFile: string): number | undefined {
  if (!existsSync(dbFile)) return undefined;
  try {
    const db = new Database(dbFile, { readonly: true, fileMustExist: true });
    try {
      return Number(db.prepare('SELECT coalesce(max(tid), 0) FROM kml').pluck().get());
    } finally {
      db.close();
    }
  } catch {
    return undefined;
  }
}

/** Epoch ms of the last log line with message `msg`. */
function lastLogTime(logDir: string, msg: string): number {
  const lines = readLog(logDir).filter((l) => l.msg === msg);
  return lines.length === 0 ? Number.NaN : Number(lines[lines.length - 1]!.time);
}

export async function scanBench(o: ScanOptions): Promise<ScanResult> {
  const nFiles = o.dirs * o.filesPerDir;
  say(`== 2. Start-up scan: ${fmt(o.dirs)} dirs x ${fmt(o.filesPerDir)} files = ${fmt(nFiles)} files; ` +
    `${o.rounds} restarts unchanged and ${o.rounds} with ${o.changes} files changed while stopped`);
  const root = makeTmp('scan');
  const dir = join(root, 'data');
  const logDir = join(root, 'log');
  let daemon: Daemon | undefined;
  try {
    // Node start-up and module loading alone, to read the ready times against.
    const starts: number[] = [];
    for (let i = 0; i < 3; i++) starts.push((await runNode([CLI, '--help'], { what: 'intersync --help' })).ms);
    const nodeStartMs = median(starts);

    const built = await runNode([join(BENCH, 'mktree.mjs'), dir, '--dirs', String(o.dirs), '--files', String(o.filesPerDir)], {
      timeoutMs: 600_000, what: 'mktree',
    });
    if (built.code !== 0) throw new Error(`mktree exited ${built.code}: ${built.stderr.trim()}`);
    const tree = { entries: nFiles + o.dirs, buildMs: (JSON.parse(built.stdout) as { ms: number }).ms };
    say(`  tree built in ${fmt(tree.buildMs)} ms; first start journals all ${fmt(tree.entries)} entries (this takes a while)...`);
    syncDisks();

    // First start: everything is new; the daemon journals it all before it reports ready.
    const dbFile = join(dir, '.intermezzo', 'default', 'fileset.db');
    const ticker = setInterval(() => {
      const t = tidOf(dbFile);
      if (t !== undefined) say(`    ... ${fmt(t)} records journaled`);
    }, 15_000);
    let initial: ScanResult['initial'];
    let attempts = 0;
    try {
      const r = await retryOnDeath('initial journaling', async () => {
        // A retry resumes from what the killed daemon journaled: its figures cover only the rest.
        attempts++;
        const base = tidOf(dbFile) ?? 0;
        const d = await Daemon.start(dir, logDir, { timeoutMs: 3_600_000 });
        daemon = d;
        const mon = new JournalMonitor(d);
        try {
          const done = await mon.caughtUp({ quietMs: 1000, timeoutMs: 3_600_000, baseTid: base });
          const cpuS = d.cpuSeconds();
          const ms = done.at - d.spawnedAt;
          const fig = {
            records: done.tid - base, readyMs: d.readyMs, recordsPerSec: (done.tid - base) / (ms / 1000), cpuS,
            peakRssMb: d.peakRssKb() / 1024, attempts,
          };
          return { d, fig };
        } finally {
          mon.close();
        }
      });
      initial = r.fig;
      daemon = r.d;
    } finally {
      clearInterval(ticker);
    }
    await daemon.stopChecked();
    daemon = undefined;
    say(`  initial journaling: ${fmt(initial.records)} records, ready after ${fmt(initial.readyMs)} ms ` +
      `(${fmt(initial.recordsPerSec)} records/s, daemon CPU ${fmt(initial.cpuS, 1)} s, peak RSS ${fmt(initial.peakRssMb, 1)} MB)`);

    const rounds: ScanRound[] = [];
    const plan: number[] = [];
    for (let i = 0; i < o.rounds; i++) plan.push(0, o.changes);
    for (const [r, k] of plan.entries()) {
      const before = journalRecords(dir);
      for (let j = 0; j < k; j++) {
        // Distinct files within a round, different ones each round; new size and content.
        const d = (r * 97 + j * 101 + 13) % o.dirs;
        const f = (r * 7 + j * 13 + 5) % o.filesPerDir;
        const p = join(dir, `d${String(d).padStart(4, '0')}`, `f${String(f).padStart(3, '0')}.txt`);
        writeFileSync(p, `changed in round ${r}, change ${j}\n${'x'.repeat(10 + r * 3 + j)}\n`);
      }
      syncDisks();
      const attempt = await retryOnDeath(`restart ${r + 1}`, async () => {
        const base = tidOf(dbFile) ?? before;
        const d = await Daemon.start(dir, logDir, { timeoutMs: 600_000 });
        daemon = d;
        const scan = d.readStatus()?.capture.lastScan;
        if (scan === undefined || scan === null) throw new Error('status.json has no capture.lastScan after start');
        const mon = new JournalMonitor(d);
        try {
          await mon.caughtUp({ quietMs: 500, baseTid: base, timeoutMs: 600_000 });
        } finally {
          mon.close();
        }
        return { d, scan, peakRssMb: d.peakRssKb() / 1024 };
      });
      const { scan, peakRssMb } = attempt;
      await attempt.d.stopChecked();
      const spawnedAt = attempt.d.spawnedAt;
      const readyMs = attempt.d.readyMs;
      daemon = undefined;
      const after = journalRecords(dir);
      const openMs = lastLogTime(logDir, 'starting') - spawnedAt;
      const round: ScanRound = {
        changed: k, scanMs: scan.durMs, entries: scan.entries, dirty: scan.dirty, readyMs, openMs,
        recordsGrew: after - before, ok: after - before === k && scan.entries === tree.entries, peakRssMb,
      };
      rounds.push(round);
      say(`  restart ${r + 1}/${plan.length} (${k} changed): scan ${fmt(round.scanMs)} ms over ${fmt(round.entries)} entries, ` +
        `${fmt(round.dirty)} dirty, start-to-ready ${fmt(round.readyMs)} ms (to 'starting' log ${fmt(round.openMs)} ms), ` +
        `records +${round.recordsGrew} ${round.ok ? 'OK' : `WRONG (expected +${k})`}`);
    }
    const pick = (k: number, f: (r: ScanRound) => number): number => median(rounds.filter((r) => r.changed === k).map(f));
    const m = {
      unchangedScanMs: pick(0, (r) => r.scanMs),
      unchangedReadyMs: pick(0, (r) => r.readyMs),
      changedScanMs: pick(o.changes, (r) => r.scanMs),
      changedReadyMs: pick(o.changes, (r) => r.readyMs),
    };
    say('');
    say(table(['median of restarts', 'scan ms', 'start-to-ready ms', "to 'starting' ms", 'dirty', 'records grew'], [
      ['0 changed', m.unchangedScanMs, m.unchangedReadyMs, pick(0, (r) => r.openMs), pick(0, (r) => r.dirty), pick(0, (r) => r.recordsGrew)],
      [`${o.changes} changed`, m.changedScanMs, m.changedReadyMs, pick(o.changes, (r) => r.openMs), pick(o.changes, (r) => r.dirty),
        pick(o.changes, (r) => r.recordsGrew)],
    ]));
    say(`  (node start-up + module load alone, 'intersync --help': ${fmt(nodeStartMs)} ms)`);
    say(`  unchanged scan: ${fmt(m.unchangedScanMs)} ms (target < 2,000 ms)`);
    say('');
    return { options: o, tree, initial, nodeStartMs, rounds, median: m, allOk: rounds.every((r) => r.ok) };
  } finally {
    if (daemon !== undefined) await daemon.stop();
    removeTmp(root);
  }
}
