// The intersync benchmark suite.
//
//   npm run bench                      full sizes (20,000-file workload, 100,000-file scan tree)
//   npm run bench -- --quick           small sizes, for a smoke test
//   npm run -s bench -- --json         human output to stderr, one JSON object on stdout at the end
//                                      (-s: otherwise npm prints its own banner on stdout first)
//   npm run bench -- --only capture    or --only scan, --only replication, --only reint, --only large, --only burst, --only burst-many, --only lag (the replication suite's (d) alone), --only flush, --only writers; --pairs N, --rounds N override the repeat counts, --files N the burst's files (100 a directory), --clients N burst-many's clients (10)
//   npm run bench -- --only mount [--rounds N] [--files N]    the filter mount against bindfs and the plain dir (not in the full suite; needs bindfs)
//   npm run bench -- --only writers --clients 10 --rate 50 --seconds 20    one many-writers load instead of the two (10 x 50/s, 50 x 5/s);
//                                      --converge-s N gives up waiting for convergence after N s (default 900)
//
// Builds dist/ first (npx tsc), then runs the daemon as `node dist/cli/main.js`. The replication suite needs rsync.
import { spawnSync } from 'node:child_process';
import { cpus, loadavg, totalmem } from 'node:os';
import { bigStartBench, type BigStartResult } from './big-start.js';
import { burstBench, type BurstResult } from './burst-bench.js';
import { burstManyBench, type ManyResult } from './burst-many.js';
import { captureBench, type CaptureResult } from './capture-bench.js';
import { flushBench, type FlushResult } from './flush-bench.js';
import { ROOT, clockTicks, createBaselineMs, fmt, humanToStderr, installCleanup, removeAllTmp, retryOnDeath, say, syncDisks, table } from './lib.js';
import { largeBench, type LargeResult } from './large-bench.js';
import { mountBench, mountRows, type MountResult } from './mount-bench.js';
import { reintBench, type ReintResult } from './reint-bench.js';
import { lagBench, replicationBench, type LagResult, type ReplicationResult } from './replication-bench.js';
import { scanBench, type ScanResult } from './scan-bench.js';
import { writersBench, type WritersOptions, type WritersResult } from './writers-bench.js';

interface Args {
  quick: boolean;
  json: boolean;
  only: 'capture' | 'scan' | 'replication' | 'reint' | 'large' | 'burst' | 'burst-many' | 'lag' | 'flush' | 'writers' | 'big-start' | 'mount' | undefined;
  pairs: number | undefined;
  rounds: number | undefined;
  files: number | undefined;
  clients: number | undefined;
  rate: number | undefined;
  seconds: number | undefined;
  convergeS: number | undefined;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { quick: false, json: false, only: undefined, pairs: undefined, rounds: undefined, files: undefined, clients: undefined, rate: undefined, seconds: undefined, convergeS: undefined };
  const num = (i: number, name: string): number => {
    const v = Number(argv[i]);
    if (!Number.isSafeInteger(v) || v < 1) throw new Error(`${name} takes a positive whole number`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i];
    if (x === '--quick') a.quick = true;
    else if (x === '--json') a.json = true;
    else if (x === '--only') {
      const v = argv[++i];
      if (v !== 'capture' && v !== 'scan' && v !== 'replication' && v !== 'reint' && v !== 'large' && v !== 'burst' && v !== 'burst-many' && v !== 'lag' && v !== 'flush' && v !== 'writers' && v !== 'big-start' && v !== 'mount') {
        throw new Error('--only takes capture, scan, replication, reint, large, burst, burst-many, lag, flush, writers, big-start or mount');
      }
      a.only = v;
    } else if (x === '--pairs') a.pairs = num(++i, '--pairs');
    else if (x === '--rounds') a.rounds = num(++i, '--rounds');
    else if (x === '--files') a.files = num(++i, '--files');
    else if (x === '--clients') a.clients = num(++i, '--clients');
    else if (x === '--rate') a.rate = num(++i, '--rate');
    else if (x === '--seconds') a.seconds = num(++i, '--seconds');
    else if (x === '--converge-s') a.convergeS = num(++i, '--converge-s');
    else throw new Error(`unknown argument ${x}; use --quick, --json, --only capture|scan|replication|reint|large|burst|burst-many|lag|flush|writers|big-start|mount, --pairs N, --rounds N, --files N, --clients N, --rate N, --seconds N, --converge-s N`);
  }
  return a;
}

const loadText = (): string => loadavg().map((x) => fmt(x, 2)).join(' ');

function build(): void {
  const t0 = performance.now();
  const r = spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) {
    process.stderr.write(r.stdout + r.stderr);
    throw new Error(`npx tsc -p tsconfig.json failed (${r.status ?? r.signal}); dist/ is not fresh`);
  }
  say(`built dist/ with tsc in ${fmt(performance.now() - t0)} ms`);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.json) humanToStderr();
  installCleanup();
  say(`intersync bench${args.quick ? ' (--quick)' : ''}: node ${process.version}, ${cpus().length} cores, ` +
    `${fmt(totalmem() / 2 ** 30, 1)} GiB, CLK_TCK ${clockTicks()}, load average ${loadText()}`);
  if (process.env.INTERSYNC_BENCH_NO_BUILD === '1') say('dist/ not built (INTERSYNC_BENCH_NO_BUILD=1)');
  else build();
  syncDisks();
  const fsCheckMs = createBaselineMs(1000);
  say(`file-system check: 1,000 file creates in a fresh /tmp dir took ${fmt(fsCheckMs)} ms` +
    (fsCheckMs > 300
      ? ' -- SLOW: other load on the machine, or ext4 without a journal still skipping inodes freed in the last minutes; figures will be inflated'
      : ''));
  say('');

  let capture: CaptureResult | undefined;
  let scan: ScanResult | undefined;
  let replication: ReplicationResult | undefined;
  let reint: ReintResult | undefined;
  const runs = (suite: NonNullable<Args['only']>): boolean => args.only === undefined || args.only === suite;
  if (runs('capture')) {
    capture = await captureBench({
      files: args.quick ? 2_000 : 20_000,
      dirs: args.quick ? 20 : 100,
      pairs: args.pairs ?? (args.quick ? 3 : 5),
    });
  }
  if (runs('scan')) {
    scan = await scanBench({
      dirs: args.quick ? 100 : 1_000,
      filesPerDir: 100,
      rounds: args.rounds ?? 3,
      changes: 10,
    });
  }
  if (runs('replication')) {
    replication = await replicationBench({
      initialFiles: args.quick ? 2_000 : 20_000,
      initialDirs: args.quick ? 20 : 100,
      incSizes: args.quick ? [1_000, 10_000] : [10_000, 100_000],
      modify: 10,
      create: 5,
      delete: 5,
      bigBytes: args.quick ? 64 << 20 : 1 << 30,
      patchBytes: 1 << 20,
      lagWrites: args.quick ? 50 : 200,
      rounds: args.rounds ?? 3,
      incRounds: args.rounds ?? 5,
    });
  }
  if (runs('reint')) reint = await reintBench({ quick: args.quick, ...(args.rounds === undefined ? {} : { rounds: args.rounds }) });
  let large: LargeResult | undefined;
  if (runs('large')) large = await largeBench({ bytes: args.quick ? 64 << 20 : 1 << 30, patchBytes: 1 << 20, rounds: args.rounds ?? 3 });
  let lag: LagResult | undefined;
  if (args.only === 'lag') lag = await retryOnDeath('(d) lag', () => lagBench({ lagWrites: args.quick ? 50 : 200 }));
  let bigStart: BigStartResult | undefined;
  // Not in the full suite: a big tree takes minutes (1M files: tens of minutes on the base build).
  if (args.only === 'big-start') bigStart = await bigStartBench({ files: args.files ?? (args.quick ? 20_000 : 1_000_000), rounds: args.rounds ?? 1 });
  let mount: MountResult | undefined;
  // Not in the full suite: it needs bindfs and FUSE (/dev/fuse, libfuse2).
  if (args.only === 'mount') {
    mount = await mountBench({ files: args.files ?? 2_000, filesPerDir: 200, bigBytes: args.quick ? 64 << 20 : 256 << 20, rounds: args.rounds ?? 3, changes: args.quick ? 10 : 20 });
  }
  let flush: FlushResult | undefined;
  if (runs('flush')) flush = await flushBench({ files: 500, writerBytes: 200 << 20, rounds: args.rounds ?? 3 });
  let burst: BurstResult | undefined;
  if (runs('burst')) {
    const files = args.files ?? (args.quick ? 1_000 : 5_000);
    burst = await burstBench({ files, dirs: Math.max(1, Math.round(files / 100)), bytes: 350, rounds: args.rounds ?? 3 });
  }
  let many: ManyResult | undefined;
  if (args.only === 'burst-many') {
    const files = args.files ?? (args.quick ? 1_000 : 5_000);
    many = await burstManyBench({ files, dirs: Math.max(1, Math.round(files / 100)), bytes: 350, rounds: args.rounds ?? 3, clients: args.clients ?? 10 });
  }
  const writers: WritersResult[] = [];
  if (runs('writers')) {
    // The two loads (10 clients x 50 files/s, 50 x 5/s), or the one given with --clients/--rate/--seconds.
    const seconds = args.seconds ?? (args.quick ? 5 : 20);
    const loads: Array<Pick<WritersOptions, 'clients' | 'rate'>> = args.clients !== undefined || args.rate !== undefined
      ? [{ clients: args.clients ?? 10, rate: args.rate ?? 50 }]
      : args.quick ? [{ clients: 4, rate: 20 }] : [{ clients: 10, rate: 50 }, { clients: 50, rate: 5 }];
    for (const l of loads) writers.push(await writersBench({ ...l, seconds, bytes: 300, convergeTimeoutMs: (args.convergeS ?? 900) * 1000 }));
  }


  say('== Summary (medians)');
  const rows: Array<Array<string | number>> = [];
  const verdict = (ok: boolean): string => (ok ? 'ok' : 'MISSED');
  if (capture !== undefined) {
    const m = capture.median;
    const o = capture.options;
    rows.push(
      [`capture: workload unwatched (${fmt(o.files)} files)`, `${fmt(m.unwatchedMs)} ms`, ''],
      ['capture: workload watched', `${fmt(m.watchedMs)} ms`, ''],
      ['capture: speed watched vs unwatched', `${fmt(m.speedRatio, 2)}x`, `>= 0.90x ${verdict(m.speedRatio >= 0.9)}`],
      ['capture: same, median of per-pair ratios', `${fmt(m.pairRatio, 2)}x`, ''],
      ['capture: records journaled', fmt(m.records), ''],
      ['capture: workload start -> caught up', `${fmt(m.caughtUpMs)} ms`, ''],
      ['capture: catch-up after workload end', `${fmt(m.catchUpMs)} ms`, ''],
      ['capture: records/s (to caught up)', fmt(m.recordsPerSec), ''],
      ['capture: daemon CPU (to caught up)', `${fmt(m.daemonCpuS, 2)} s`, ''],
      ['capture: daemon peak RSS', `${fmt(m.peakRssMb, 1)} MB`, ''],
      ['capture: digest == digest --scan', `${capture.allDigestsOk ? 'OK' : 'MISMATCH'} (${capture.watched.filter((r) => r.digestOk).length}/${capture.watched.length} OK)`, ''],
    );
  }
  if (scan !== undefined) {
    const m = scan.median;
    rows.push(
      [`scan: initial journaling (${fmt(scan.tree.entries)} entries)`, `${fmt(scan.initial.readyMs)} ms`, `${fmt(scan.initial.recordsPerSec)} records/s`],
      ['scan: unchanged, scan time', `${fmt(m.unchangedScanMs)} ms`, `< 2,000 ms ${verdict(m.unchangedScanMs < 2000)}`],
      ['scan: unchanged, start-to-ready', `${fmt(m.unchangedReadyMs)} ms`, ''],
      [`scan: ${scan.options.changes} changed, scan time`, `${fmt(m.changedScanMs)} ms`, ''],
      [`scan: ${scan.options.changes} changed, start-to-ready`, `${fmt(m.changedReadyMs)} ms`, ''],
      ['scan: exactly the changes journaled', `${scan.allOk ? 'OK' : 'WRONG'} (${scan.rounds.filter((r) => r.ok).length}/${scan.rounds.length} OK)`, ''],
    );
  }
  if (replication !== undefined) {
    const r = replication;
    const a = r.initial.median;
    rows.push([`replication: initial sync of ${fmt(r.initial.files)} files`,
      `${fmt(a.intersyncFilesPerSec)} files/s (rsync ${fmt(a.rsyncFilesPerSec)})`, `${fmt(a.ratio, 2)}x rsync; >= 1.0x ${verdict(a.ratio >= 1)}`]);
    for (const x of r.incremental) {
      rows.push([`replication: ${x.changes} changes in ${fmt(x.files)} files`, `${fmt(x.median.intersyncMs, 1)} ms (rsync ${fmt(x.median.rsyncMs, 1)} ms)`,
        `< 100 ms ${verdict(x.median.intersyncMs < 100)}`]);
    }
    const b = r.big.median;
    rows.push(
      [`replication: initial sync of a ${fmt(r.big.bytes / 2 ** 20)} MiB file`, `${fmt(b.intersyncInitialMBps)} MB/s (rsync ${fmt(b.rsyncInitialMBps)})`, ''],
      ['replication: 1 MiB changed in it, propagation', `${fmt(b.intersyncChangeMs)} ms (rsync ${fmt(b.rsyncChangeMs)} ms)`, ''],
      ['replication: 1 MiB changed in it, bytes on the wire', `${fmt(b.intersyncChangeBytes)} (rsync ${fmt(b.rsyncChangeBytes)})`,
        `< 2 MiB ${verdict(b.intersyncChangeBytes < 2 * 2 ** 20)}`],
      ['replication: lag close -> content, p50', `${fmt(r.lag.p50, 1)} ms`, `< 20 ms ${verdict(r.lag.p50 < 20)}`],
      ['replication: lag close -> content, p99', `${fmt(r.lag.p99, 1)} ms`, `< 100 ms ${verdict(r.lag.p99 < 100)}`],
      ['replication: digest checks', `${r.digestsOk === r.digestsTotal ? 'OK' : 'MISMATCH'} (${r.digestsOk}/${r.digestsTotal} OK)`, ''],
    );
  }
  if (reint !== undefined) {
    rows.push([`reintegration: ${fmt(reint.lmlRecords)} records made offline`, `${fmt(reint.convergeMs)} ms to converge, ${fmt(reint.recordsPerSecond)} records/s`, reint.ok ? 'OK' : 'MISMATCH']);
    rows.push(['reintegration: temp-file churn, removed by the optimiser', `${fmt(reint.churn.optimisedAway)} of ${fmt(reint.churn.lmlRecords)} records`, '']);
  }
  if (large !== undefined) {
    for (const dir of ['down', 'up'] as const) {
      const m = large.median[dir];
      const what = dir === 'down' ? 'server -> client' : 'client -> server';
      rows.push([`large: ${fmt(large.options.bytes / 2 ** 20)} MiB file, ${what}`, `${fmt(m.initialMs)} ms (rsync -a + sync ${fmt(m.rsyncInitialMs)} ms)`,
        `${fmt(m.initialRatio, 2)}x rsync; >= 1.0x ${verdict(m.initialRatio >= 1)}`]);
      rows.push([`large: 1 MiB changed in it, ${what}`, `${fmt(m.changeMs)} ms (rsync --no-whole-file + sync ${fmt(m.rsyncChangeMs)} ms)`,
        `${fmt(m.rsyncChangeMs / m.changeMs, 2)}x rsync; < 1,000 ms ${verdict(m.changeMs < 1000)}`]);
    }
    rows.push(['large: digest checks', `${large.allOk ? 'OK' : 'MISMATCH'} (${large.rounds.filter((r) => r.ok).length}/${large.rounds.length} OK)`, '']);
  }
  if (flush !== undefined) {
    const m = flush.median;
    rows.push([`flush of ${fmt(flush.options.files)} new files, sync -f / fsync each`, `${fmt(m.syncfsMs)} ms / ${fmt(m.fsyncMs)} ms`, '']);
    rows.push([`the same while ${fmt(flush.options.writerBytes / 2 ** 20)} MB are written`, `${fmt(m.syncfsBusyMs)} ms / ${fmt(m.fsyncBusyMs)} ms`, '']);
  }
  if (lag !== undefined) {
    rows.push(['replication: lag close -> content, p50', `${fmt(lag.p50, 1)} ms`, `< 20 ms ${verdict(lag.p50 < 20)}`]);
    rows.push(['replication: lag close -> content, p99', `${fmt(lag.p99, 1)} ms`, `< 100 ms ${verdict(lag.p99 < 100)}`]);
  }
  if (burst !== undefined) {
    const m = burst.median;
    const n = fmt(burst.options.files);
    rows.push([`burst: ${n} files, lsyncd (delay 0) / rsync -a one-shot`, `${fmt(m.lsyncdMs)} ms / ${fmt(m.rsyncMs)} ms`, '']);
    rows.push([`burst: ${n} files, server -> client`, `${fmt(m.downMs)} ms (acknowledged ${fmt(m.downDurableMs)} ms)`,
      `${fmt(m.downVsLsyncd, 2)}x lsyncd, ${fmt(m.downVsRsync, 2)}x rsync; <= 1.0x lsyncd ${verdict(m.downVsLsyncd <= 1)}`]);
    rows.push([`burst: ${n} files, client -> server`, `${fmt(m.upMs)} ms (answered ${fmt(m.upDurableMs)} ms)`,
      `${fmt(m.upVsLsyncd, 2)}x lsyncd, ${fmt(m.upVsRsync, 2)}x rsync; <= 1.0x lsyncd ${verdict(m.upVsLsyncd <= 1)}`]);
    rows.push(['burst: digest checks', `${burst.allOk ? 'OK' : 'MISMATCH'} (${burst.rounds.filter((r) => r.down.ok).length}/${burst.rounds.length} OK)`, '']);
  }
  if (many !== undefined) {
    const m = many.median;
    rows.push([`burst to ${many.options.clients} clients: ${fmt(many.options.files)} files, one client / slowest of ${many.options.clients}`,
      `${fmt(m.oneMs)} ms / ${fmt(m.slowestMs)} ms`, `${fmt(m.slowestVsOne, 2)}x; every client <= 2x ${verdict(m.slowestVsOne <= 2)}`]);
    rows.push(['burst to many clients: digest checks', `${many.allOk ? 'OK' : 'MISMATCH'} (${many.rounds.filter((r) => r.ok).length}/${many.rounds.length} OK)`, '']);
  }
  for (const w of writers) {
    const o = w.options;
    const what = `writers: ${o.clients} clients x ${fmt(o.rate)} files/s for ${fmt(o.seconds)} s`;
    rows.push([`${what}, lag p50 / p99`, `${fmt(w.p50)} ms / ${fmt(w.p99)} ms`, `< 1,000 / < 5,000 ms ${verdict(w.p50 < 1000 && w.p99 < 5000)}`]);
    rows.push([`${what}, converged after the writers stopped`, Number.isNaN(w.convergeMs) ? 'NOT' : `${fmt(w.convergeMs)} ms`, `< 10,000 ms ${verdict(w.convergeMs < 10_000)}`]);
    rows.push([`${what}, TOKEN_BUSY / recalls`, `${fmt(w.tokenBusy)} / ${fmt(w.recalls)}`, '']);
    rows.push([`${what}, CPU server / clients`, `${fmt(w.serverCpuS, 1)} s / ${fmt(w.clientsCpuS, 1)} s`, `${fmt((w.clientsCpuS * 1000) / (w.files * o.clients), 2)} ms per file per client`]);
    rows.push([`${what}, digest checks`, `${w.digestsOk === w.digestsTotal ? 'OK' : 'MISMATCH'} (${w.digestsOk}/${w.digestsTotal} OK)`, '']);
  }
  if (mount !== undefined) {
    const m = mount.median;
    for (const r of mountRows(mount)) rows.push([`mount: ${r[0]!}`, `plain ${r[1]!} / bindfs ${r[2]!} / ours ${r[3]!}`, `${r[4]!} bindfs, ${r[5]!} plain`]);
    const pr = m.perRound;
    rows.push(['mount: small files, ours / bindfs', `${fmt(m.smallVsBindfs, 2)}x (per round ${fmt(pr.smallVsBindfs, 2)}x)`, `>= 0.8x ${verdict(m.smallVsBindfs >= 0.8)}`]);
    rows.push(['mount: large sequential write, ours / plain', `${fmt(m.writeVsPlain, 2)}x (per round ${fmt(pr.writeVsPlain, 2)}x)`, `>= 0.5x ${verdict(m.writeVsPlain >= 0.5)}`]);
    rows.push(['mount: large sequential read, ours / plain', `${fmt(m.readVsPlain, 2)}x (per round ${fmt(pr.readVsPlain, 2)}x)`, `>= 0.5x ${verdict(m.readVsPlain >= 0.5)}`]);
    rows.push(['mount: records per small file through the mount', fmt(m.smallRecordsPerFile, 2), `daemon CPU ${fmt(m.smallDaemonCpuMsPerFile, 2)} ms a file`]);
    rows.push(['mount: close -> record in the journal, mount / watcher', `${fmt(m.journalMountMs, 2)} ms / ${fmt(m.journalWatchMs, 2)} ms`, 'medians of every change']);
    rows.push(['mount: digest checks', `${mount.allOk ? 'OK' : 'MISMATCH'} (${mount.digestsOk}/${mount.options.rounds} OK)`, '']);
  }
  rows.push(['file-system check: 1,000 creates in /tmp', `${fmt(fsCheckMs)} ms`, fsCheckMs > 300 ? 'SLOW, see above' : '']);
  rows.push(['load average at the end (1/5/15 min)', loadText(), `${cpus().length} cores`]);
  say(table(['figure', 'value', 'target / note'], rows));
  const t0 = performance.now();
  removeAllTmp();
  say(`(temp dirs removed in ${fmt(performance.now() - t0)} ms)`);

  if (args.json) {
    process.stdout.write(`${JSON.stringify({
      quick: args.quick, node: process.version, cores: cpus().length, fsCheckMs, loadavgEnd: loadavg(), capture: capture ?? null, scan: scan ?? null,
      replication: replication ?? null, reint: reint ?? null, large: large ?? null, burst: burst ?? null, burstMany: many ?? null, lag: lag ?? null, flush: flush ?? null, writers, bigStart: bigStart ?? null, mount: mount ?? null,
    })}\n`);
  }
  const failed = (capture !== undefined && !capture.allDigestsOk) || (scan !== undefined && !scan.allOk) ||
    (replication !== undefined && !replication.allOk) || (reint !== undefined && !reint.ok) || (large !== undefined && !large.allOk) ||
    (burst !== undefined && !burst.allOk) || (many !== undefined && !many.allOk) || (lag !== undefined && lag.timeouts > 0) || writers.some((w) => !w.allOk) || (bigStart !== undefined && !bigStart.allOk) || (mount !== undefined && !mount.allOk);
  if (failed) process.exitCode = 1;
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exitCode = 1;
});
