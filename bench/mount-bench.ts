// The filter mount against its peers (issue 16, "How it must be shown"):
//
//   npm run bench -- --only mount [--rounds N] [--files N] [--quick]
//
// Three targets, interleaved A/B/C in every round (the order rotates from one round to the next), each on a
// fresh temp dir: `plain` (the directory itself), `bindfs` (`bindfs SRC MNT`, the FUSE pass-through peer) and
// `ours` (`intersync mount DIR MNT --listen none`, every change journaled before it returns). Per target:
//   - small files: N files (2,000; 200 a directory) created, written (4 KiB) and closed, timed from the first
//     open to the last close (the directories are made before the clock starts): files/s;
//   - large sequential: a 256 MiB file written in 1 MiB writes and fsync'd (the fsync is inside the time), then
//     read back in 1 MiB reads right after, with nothing dropped (no drop_caches: plain and bindfs may be
//     served from the page cache, so the read figure is an upper bound for them): MB/s.
// Then the time to journal one change: a 4 KiB rewrite of an existing file, timed from just before its close
// until a new record is in the journal (fileset.db read-only, polled every ~1 ms), through our mount against a
// server daemon `intersync DIR --listen 127.0.0.1:0` watching a plain directory (default settle-ms). 20 changes
// a round, one at a time, each after the journal was quiet for 200 ms.
// Every mount is unmounted in a `finally` (fusermount -u, then -uz / umount -l), daemons are stopped by PID,
// temp dirs are removed at the end. Needs /dev/fuse, libfuse2 and bindfs.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { CLI, DAEMON_NODE_ARGS, Daemon, benchStateDir, checkDigest, cpuSeconds, fmt, makeTmp, median, nowMs, say, sleep, syncDisks, table } from './lib.js';

export interface MountOptions {
  readonly files: number;
  readonly filesPerDir: number;
  readonly bigBytes: number;
  readonly rounds: number;
  readonly changes: number;
}

export type Target = 'plain' | 'bindfs' | 'ours';
const TARGETS: readonly Target[] = ['plain', 'bindfs', 'ours'];

export interface TargetRun {
  readonly round: number;
  readonly target: Target;
  readonly smallFilesPerSec: number;
  readonly writeMBps: number;
  readonly readMBps: number;
  /** ours: records journaled from the first small file's open to the last one's close (the others: NaN). */
  readonly smallRecords: number;
  /** ours: the daemon's CPU (utime + stime) over the small files, ms per file (the others: NaN). */
  readonly smallDaemonCpuMsPerFile: number;
}

export interface JournalRun {
  readonly round: number;
  /** ms from just before close until the record is in the journal, one per change. */
  readonly mountMs: number[];
  readonly watchMs: number[];
  /** Changes whose record was already in the journal when close returned (through the mount). */
  readonly mountBeforeCloseReturned: number;
}

export interface MountResult {
  readonly options: MountOptions;
  readonly runs: TargetRun[];
  readonly journal: JournalRun[];
  readonly median: {
    readonly small: Record<Target, number>;
    readonly write: Record<Target, number>;
    readonly read: Record<Target, number>;
    readonly smallVsBindfs: number;
    readonly writeVsPlain: number;
    readonly readVsPlain: number;
    readonly journalMountMs: number;
    readonly journalWatchMs: number;
    /** The same ratios taken within each round, then their median (less sensitive to load that shifts between rounds). */
    readonly perRound: { readonly smallVsBindfs: number; readonly writeVsPlain: number; readonly readVsPlain: number };
    readonly smallRecordsPerFile: number;
    readonly smallDaemonCpuMsPerFile: number;
  };
  /** `digest` = `digest --scan` of our mount's DIR after every round (the daemon stopped). */
  readonly digestsOk: number;
  readonly allOk: boolean;
}

// ---------------------------------------------------------------- mounts

function isMounted(mnt: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === mnt);
}

/** Unmount `mnt` if it is mounted: fusermount -u, else detach it (fusermount -uz, umount -l). Never throws. */
function unmount(mnt: string): void {
  if (!isMounted(mnt)) return;
  if (spawnSync('fusermount', ['-u', mnt]).status === 0 && !isMounted(mnt)) return;
  if (spawnSync('fusermount', ['-uz', mnt]).status === 0) return;
  spawnSync('umount', ['-l', mnt]);
}

const mountsMade = new Set<string>();
const childrenMade = new Set<ChildProcess>();
process.on('exit', () => {
  // Last resort (Ctrl-C, a crash between try and finally): kill what this suite started, detach its mounts.
  for (const c of childrenMade) {
    try {
      if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) process.kill(c.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  for (const m of mountsMade) unmount(m);
});

interface Mount {
  readonly mnt: string;
  /** The process serving the mount, when it is ours (for its CPU time). */
  readonly pid?: number;
  close(): Promise<void>;
}

function mountBindfs(src: string, mnt: string): Mount {
  mountsMade.add(mnt);
  const r = spawnSync('bindfs', [src, mnt], { encoding: 'utf8' });
  if (r.status !== 0 || !isMounted(mnt)) {
    unmount(mnt);
    throw new Error(`bindfs ${src} ${mnt} failed (${r.status ?? r.signal}): ${(r.stderr ?? r.error?.message ?? '').trim()}; is bindfs installed (apt-get install bindfs)?`);
  }
  return {
    mnt,
    close: () => {
      unmount(mnt);
      mountsMade.delete(mnt);
      return Promise.resolve();
    },
  };
}

/** `intersync mount DIR MNT --listen none` in its own process; resolves once it is mounted and serving. */
async function mountOurs(dir: string, mnt: string, logDir: string): Promise<Mount> {
  mountsMade.add(mnt);
  const child = spawn(process.execPath, [...DAEMON_NODE_ARGS, CLI, 'mount', '--log-dir', logDir, '--listen', 'none', dir, mnt], { stdio: ['ignore', 'pipe', 'pipe'] });
  childrenMade.add(child);
  let out = '';
  child.stdout!.on('data', (b: Buffer) => {
    if (out.length < 1 << 16) out += b.toString();
  });
  child.stderr!.on('data', (b: Buffer) => {
    if (out.length < 1 << 16) out += b.toString();
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const close = async (): Promise<void> => {
    try {
      if (child.exitCode === null && child.signalCode === null) {
        process.kill(child.pid!, 'SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
        await exited;
        clearTimeout(killer);
      }
    } finally {
      unmount(mnt);
      mountsMade.delete(mnt);
      childrenMade.delete(child);
    }
  };
  try {
    const until = nowMs() + 120_000;
    while (!(out.includes('stop with Ctrl-C') && isMounted(mnt))) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`intersync mount exited (${child.exitCode ?? child.signalCode}): ${out.trim()}`);
      if (nowMs() > until) throw new Error(`intersync mount not serving after 120 s: ${out.trim()}`);
      await sleep(20);
    }
  } catch (e) {
    await close();
    throw e;
  }
  return { mnt, pid: child.pid!, close };
}

// ---------------------------------------------------------------- workloads (synchronous: the file systems are other processes)

function smallFiles(root: string, o: MountOptions): number {
  const dirs = Math.max(1, Math.ceil(o.files / o.filesPerDir));
  for (let d = 0; d < dirs; d++) mkdirSync(join(root, 'small', `d${d}`), { recursive: true });
  const buf = randomBytes(4096);
  const t0 = nowMs();
  for (let i = 0; i < o.files; i++) {
    const fd = openSync(join(root, 'small', `d${i % dirs}`, `f${i}`), 'wx');
    writeSync(fd, buf);
    closeSync(fd);
  }
  return o.files / ((nowMs() - t0) / 1000);
}

function largeWriteRead(root: string, bytes: number): { writeMBps: number; readMBps: number } {
  const file = join(root, 'big.bin');
  const buf = randomBytes(1 << 20);
  let t0 = nowMs();
  const fd = openSync(file, 'wx');
  for (let done = 0; done < bytes; done += buf.length) writeSync(fd, buf, 0, Math.min(buf.length, bytes - done));
  fsyncSync(fd);
  closeSync(fd);
  const writeMBps = bytes / 1e6 / ((nowMs() - t0) / 1000);
  t0 = nowMs();
  const rfd = openSync(file, 'r');
  let got = 0;
  for (;;) {
    const n = readSync(rfd, buf, 0, buf.length, null);
    if (n === 0) break;
    got += n;
  }
  closeSync(rfd);
  if (got !== bytes) throw new Error(`read back ${got} of ${bytes} bytes from ${file}`);
  return { writeMBps, readMBps: bytes / 1e6 / ((nowMs() - t0) / 1000) };
}

// ---------------------------------------------------------------- the time to journal one change

/** The journal's last TID, read-only from DIR's fileset.db. */
function tidReader(dir: string): { tid: () => number; close: () => void } {
  const file = join(dir, '.intermezzo', 'default', 'fileset.db');
  if (!existsSync(file)) throw new Error(`no journal at ${file}`);
  const db = new Database(file, { readonly: true, fileMustExist: true });
  db.pragma('busy_timeout = 2000');
  const stmt = db.prepare('SELECT coalesce(max(tid), 0) FROM kml').pluck();
  return { tid: () => Number(stmt.get()), close: () => db.close() };
}

async function quiet(tid: () => number, ms = 200): Promise<number> {
  let last = tid();
  let since = nowMs();
  for (;;) {
    await sleep(20);
    const t = tid();
    if (t !== last) {
      last = t;
      since = nowMs();
    } else if (nowMs() - since >= ms) return t;
  }
}

/**
 * `changes` rewrites (4 KiB) of files under `writeRoot` (the mount, or the watched DIR itself), each timed from
 * just before its close until `dir`'s journal has a record past the TID it had before; the files are made first.
 */
async function journalTimes(writeRoot: string, dir: string, changes: number): Promise<{ ms: number[]; beforeReturn: number }> {
  mkdirSync(join(writeRoot, 'lat'), { recursive: true });
  for (let i = 0; i < changes; i++) {
    const fd = openSync(join(writeRoot, 'lat', `c${i}`), 'w');
    writeSync(fd, Buffer.alloc(4096, 1));
    closeSync(fd);
  }
  const r = tidReader(dir);
  try {
    const ms: number[] = [];
    let beforeReturn = 0;
    for (let i = 0; i < changes; i++) {
      const base = await quiet(r.tid);
      const fd = openSync(join(writeRoot, 'lat', `c${i}`), 'r+');
      writeSync(fd, randomBytes(4096), 0, 4096, 0);
      const t0 = nowMs();
      closeSync(fd);
      if (r.tid() > base) beforeReturn++;
      const until = t0 + 30_000;
      while (r.tid() <= base) {
        if (nowMs() > until) throw new Error(`no record in ${dir}'s journal 30 s after a change's close`);
        await sleep(1);
      }
      ms.push(nowMs() - t0);
    }
    return { ms, beforeReturn };
  } finally {
    r.close();
  }
}

// ---------------------------------------------------------------- the suite

export async function mountBench(o: MountOptions): Promise<MountResult> {
  benchStateDir();
  if (spawnSync('bindfs', ['--version']).status !== 0) throw new Error('bindfs is not installed: apt-get install -y bindfs (the mount suite\'s peer)');
  say(`mount: ${fmt(o.files)} small files (4 KiB, ${fmt(o.filesPerDir)} a directory) and a ${fmt(o.bigBytes / 2 ** 20)} MiB file, ` +
    `plain / bindfs / intersync mount interleaved, ${o.rounds} round(s); then ${o.changes} changes journaled through the mount and by the watcher`);
  const runs: TargetRun[] = [];
  const journal: JournalRun[] = [];
  let digestsOk = 0;
  for (let round = 0; round < o.rounds; round++) {
    const order = TARGETS.map((_, i) => TARGETS[(i + round) % TARGETS.length]!);
    for (const target of order) {
      const tmp = makeTmp(`mount-${target}`);
      const dir = join(tmp, 'dir');
      const mnt = join(tmp, 'mnt');
      mkdirSync(dir);
      mkdirSync(mnt);
      syncDisks();
      let m: Mount | undefined;
      try {
        if (target === 'bindfs') m = mountBindfs(dir, mnt);
        else if (target === 'ours') m = await mountOurs(dir, mnt, join(tmp, 'log'));
        const root = m === undefined ? dir : mnt;
        const tids = target === 'ours' ? tidReader(dir) : undefined;
        const tid0 = tids?.tid() ?? Number.NaN;
        const cpu0 = m?.pid === undefined ? Number.NaN : cpuSeconds(m.pid);
        const smallFilesPerSec = smallFiles(root, o);
        const smallRecords = (tids?.tid() ?? Number.NaN) - tid0;
        const smallDaemonCpuMsPerFile = m?.pid === undefined ? Number.NaN : ((cpuSeconds(m.pid) - cpu0) * 1000) / o.files;
        tids?.close();
        const { writeMBps, readMBps } = largeWriteRead(root, o.bigBytes);
        runs.push({ round, target, smallFilesPerSec, writeMBps, readMBps, smallRecords, smallDaemonCpuMsPerFile });
        say(`  round ${round + 1} ${target.padEnd(6)}  small ${fmt(smallFilesPerSec)} files/s` +
          `${Number.isNaN(smallRecords) ? '' : ` (${fmt(smallRecords)} records, daemon CPU ${fmt(smallDaemonCpuMsPerFile, 2)} ms a file)`}, write ${fmt(writeMBps)} MB/s, read ${fmt(readMBps)} MB/s`);
        if (target === 'ours') {
          const j = await journalTimes(mnt, dir, o.changes);
          await m!.close();
          m = undefined;
          const d = checkDigest(dir);
          if (d.ok) digestsOk++;
          else say(`    digest MISMATCH in ${dir}: journal ${d.journal}, disk ${d.disk}`);
          const wdir = join(tmp, 'watched');
          mkdirSync(wdir);
          const daemon = await Daemon.start(wdir, join(tmp, 'wlog'), { extraArgs: ['--listen', '127.0.0.1:0'] });
          try {
            const w = await journalTimes(wdir, wdir, o.changes);
            journal.push({ round, mountMs: j.ms, watchMs: w.ms, mountBeforeCloseReturned: j.beforeReturn });
            say(`    journal one change: mount ${fmt(median(j.ms), 2)} ms (${j.beforeReturn}/${o.changes} already there when close returned), ` +
              `watcher ${fmt(median(w.ms), 2)} ms (medians of ${o.changes})`);
          } finally {
            await daemon.stopChecked();
          }
        }
      } finally {
        if (m !== undefined) await m.close();
      }
    }
  }
  const med = (t: Target, f: (r: TargetRun) => number): number => median(runs.filter((r) => r.target === t).map(f));
  const per = (f: (r: TargetRun) => number): Record<Target, number> => ({ plain: med('plain', f), bindfs: med('bindfs', f), ours: med('ours', f) });
  const small = per((r) => r.smallFilesPerSec);
  const write = per((r) => r.writeMBps);
  const read = per((r) => r.readMBps);
  const inRound = (f: (r: TargetRun) => number, a: Target, b: Target): number => median(Array.from({ length: o.rounds }, (_, round) => {
    const x = runs.find((r) => r.round === round && r.target === a);
    const y = runs.find((r) => r.round === round && r.target === b);
    return x === undefined || y === undefined ? Number.NaN : f(x) / f(y);
  }).filter((v) => !Number.isNaN(v)));
  const result: MountResult = {
    options: o, runs, journal,
    median: {
      small, write, read,
      smallVsBindfs: small.ours / small.bindfs,
      writeVsPlain: write.ours / write.plain,
      readVsPlain: read.ours / read.plain,
      journalMountMs: median(journal.flatMap((j) => j.mountMs)),
      journalWatchMs: median(journal.flatMap((j) => j.watchMs)),
      perRound: {
        smallVsBindfs: inRound((r) => r.smallFilesPerSec, 'ours', 'bindfs'),
        writeVsPlain: inRound((r) => r.writeMBps, 'ours', 'plain'),
        readVsPlain: inRound((r) => r.readMBps, 'ours', 'plain'),
      },
      smallRecordsPerFile: med('ours', (r) => r.smallRecords) / o.files,
      smallDaemonCpuMsPerFile: med('ours', (r) => r.smallDaemonCpuMsPerFile),
    },
    digestsOk,
    allOk: digestsOk === o.rounds,
  };
  say(table(['figure', 'plain', 'bindfs', 'ours', 'ours/bindfs', 'ours/plain'], mountRows(result)));
  const p = result.median.perRound;
  say(`  per-round ratios (medians): small ours/bindfs ${fmt(p.smallVsBindfs, 2)}x, write ours/plain ${fmt(p.writeVsPlain, 2)}x, read ours/plain ${fmt(p.readVsPlain, 2)}x; ` +
    `${fmt(result.median.smallRecordsPerFile, 2)} records per small file through the mount (daemon CPU ${fmt(result.median.smallDaemonCpuMsPerFile, 2)} ms a file); close -> journal: mount ` +
    `${fmt(result.median.journalMountMs, 2)} ms, watcher ${fmt(result.median.journalWatchMs, 2)} ms`);
  return result;
}

/** The suite's table rows (also the summary's). */
export function mountRows(r: MountResult): string[][] {
  const m = r.median;
  const row = (what: string, x: Record<Target, number>, digits: number): string[] =>
    [what, fmt(x.plain, digits), fmt(x.bindfs, digits), fmt(x.ours, digits), `${fmt(x.ours / x.bindfs, 2)}x`, `${fmt(x.ours / x.plain, 2)}x`];
  return [
    row(`small files (4 KiB, ${fmt(r.options.files)}), files/s`, m.small, 0),
    row(`write ${fmt(r.options.bigBytes / 2 ** 20)} MiB (1 MiB writes + fsync), MB/s`, m.write, 0),
    row('read it back (page cache not dropped), MB/s', m.read, 0),
  ];
}
