// 6. A burst: 5,000 new small files (about 350 bytes) in 50 new directories, written at once as a site deploy
// would, on a connected pair: down (written on the server, until all are on the client) and up (written on the
// client, until all are on the server), side by side with lsyncd (delay 0, rsync underneath, mirroring into a
// local directory) and a one-shot `rsync -a`, in the same run. Rounds interleave: lsyncd, rsync, intersync down,
// intersync up; medians of the rounds. Every time is taken from the moment the writer finished.
//   applied: the last file is journaled on the peer (intersync), or on the target's disk (lsyncd, rsync);
//   durable: intersync only, the peer acknowledged it (down: the server holds the client's ack; up: the client's
//   LML is empty, which follows the server's answer, sent after its flush).
// Also printed per round, for the profile: when the origin journaled the last file.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { fmt, logProblems, makeTmp, median, say, sleep, syncDisks, table } from './lib.js';
import { NodeProc, okText, pollUntil, rsyncVersion, runCmd, startServer, verify } from './replication-bench.js';

export interface BurstOptions {
  readonly files: number;
  readonly dirs: number;
  readonly bytes: number;
  readonly rounds: number;
}

export interface BurstRound {
  readonly writeMs: number; // the writer itself (median of its four runs)
  readonly lsyncdMs: number;
  readonly rsyncMs: number;
  readonly down: { readonly journaledMs: number; readonly appliedMs: number; readonly durableMs: number; readonly ok: boolean };
  readonly up: { readonly journaledMs: number; readonly appliedMs: number; readonly durableMs: number; readonly ok: boolean };
}

export interface BurstResult {
  readonly options: BurstOptions;
  readonly rounds: readonly BurstRound[];
  readonly median: {
    readonly lsyncdMs: number; readonly rsyncMs: number;
    readonly downMs: number; readonly downDurableMs: number; readonly upMs: number; readonly upDurableMs: number;
    readonly downVsLsyncd: number; readonly upVsLsyncd: number; readonly downVsRsync: number; readonly upVsRsync: number;
  };
  readonly allOk: boolean;
}

/** Write the burst under `root/name`: `dirs` new directories, `files` files of about `bytes` each, a directory at a time. */
export function writeBurst(root: string, name: string, o: Pick<BurstOptions, 'files' | 'dirs' | 'bytes'>): number {
  const t0 = performance.now();
  const top = join(root, name);
  mkdirSync(top);
  const per = Math.ceil(o.files / o.dirs);
  const pad = 'x'.repeat(o.bytes);
  for (let d = 0, n = 0; d < o.dirs; d++) {
    const dir = join(top, `d${String(d).padStart(3, '0')}`);
    mkdirSync(dir);
    for (let i = 0; i < per && n < o.files; i++, n++) {
      const head = `${name} file ${n}\n`;
      writeFileSync(join(dir, `f${String(n).padStart(5, '0')}.html`), head + pad.slice(head.length));
    }
  }
  return performance.now() - t0;
}

/** Files under `root/name` on disk (the burst's directories, one level down). */
function filesOnDisk(root: string, name: string): number {
  const top = join(root, name);
  let n = 0;
  let dirs: string[];
  try {
    dirs = readdirSync(top);
  } catch {
    return 0;
  }
  for (const d of dirs) {
    try {
      n += readdirSync(join(top, d)).length;
    } catch {
      // not there yet
    }
  }
  return n;
}

/** Read-only queries of a running node's database, polled every few milliseconds. */
export class NodeDb {
  readonly #file: string;
  #db: Database.Database | undefined;
  readonly #stmts = new Map<string, Database.Statement>();

  constructor(dir: string) {
    this.#file = join(dir, '.intermezzo', 'default', 'fileset.db');
  }

  #get<T>(sql: string, ...args: unknown[]): T | undefined {
    try {
      this.#db ??= new Database(this.#file, { readonly: true, fileMustExist: true });
      let s = this.#stmts.get(sql);
      if (s === undefined) {
        s = this.#db.prepare(sql).pluck();
        this.#stmts.set(sql, s);
      }
      return s.get(...args) as T | undefined;
    } catch {
      return undefined; // busy: next time
    }
  }

  /** Files journaled below `name/`. */
  files(name: string): number {
    return this.#get<number>("SELECT count(*) FROM objects WHERE type = 'file' AND path >= ? AND path < ?", `${name}/`, `${name}0`) ?? -1;
  }

  lml(): number {
    return this.#get<number>('SELECT count(*) FROM lml') ?? -1;
  }

  /** Every registered peer's last_rcvd is this server's last TID. */
  allAcked(): boolean {
    const last = this.#get<string>("SELECT value FROM meta WHERE key = 'last_tid'");
    const low = this.#get<number | bigint | null>('SELECT min(tid) FROM last_rcvd');
    return last !== undefined && low !== undefined && low !== null && BigInt(low) >= BigInt(last);
  }

  close(): void {
    this.#db?.close();
  }
}

/** lsyncd mirroring `src` into `dst` with rsync, delay 0. */
async function startLsyncd(root: string, src: string, dst: string): Promise<ChildProcess> {
  const conf = join(root, 'lsyncd.lua');
  const log = join(root, 'lsyncd.log');
  writeFileSync(conf, [
    `settings { nodaemon = true, logfile = ${JSON.stringify(log)}, statusFile = ${JSON.stringify(join(root, 'lsyncd.status'))}, insist = true }`,
    `sync { default.rsync, source = ${JSON.stringify(src)}, target = ${JSON.stringify(dst)}, delay = 0, rsync = { archive = true } }`,
    '',
  ].join('\n'));
  const child = spawn('lsyncd', [conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  // Ready once its start-up rsync ran and a probe file written afterwards arrived.
  const deadline = performance.now() + 30_000;
  while (!(existsSync(log) && readFileSync(log, 'utf8').includes('finished'))) {
    if (child.exitCode !== null || performance.now() > deadline) throw new Error(`lsyncd did not start: ${err.trim()}`);
    await sleep(50);
  }
  writeFileSync(join(src, 'probe'), 'probe');
  while (!existsSync(join(dst, 'probe'))) {
    if (child.exitCode !== null || performance.now() > deadline) throw new Error(`lsyncd does not mirror: ${err.trim()}`);
    await sleep(20);
  }
  return child;
}

/** lsyncd's version; throws with the way to install it when it is not there. */
export function lsyncdVersion(): string {
  const r = spawnSync('lsyncd', ['--version'], { encoding: 'utf8' });
  if (r.status !== 0 || r.error !== undefined) throw new Error('lsyncd is not installed: apt-get update && apt-get install -y lsyncd');
  return /Version:\s*(\S+)/.exec(r.stdout)?.[1] ?? '?';
}

export async function burstBench(o: BurstOptions): Promise<BurstResult> {
  const lv = lsyncdVersion();
  say(`== 6. Burst: ${fmt(o.files)} new files of ${o.bytes} bytes in ${o.dirs} new directories, written at once; down (server -> client) and ` +
    `up (client -> server) against lsyncd ${lv} (delay 0, rsync ${rsyncVersion()} underneath, into a local directory) and rsync -a one-shot; ` +
    `${o.rounds} interleaved rounds, times from the writer's end`);
  const root = makeTmp('burst');
  const srvDir = join(root, 'server');
  const cliDir = join(root, 'client');
  const lsrc = join(root, 'lsyncd-src');
  const ldst = join(root, 'lsyncd-dst');
  const rsrc = join(root, 'rsync-src');
  const rdst = join(root, 'rsync-dst');
  for (const d of [srvDir, cliDir, lsrc, ldst, rsrc, rdst]) mkdirSync(d);
  const server = await startServer(srvDir, join(root, 'log-server'));
  const client = NodeProc.client(cliDir, join(root, 'log-client'), server.url, server.secretFile);
  const sdb = new NodeDb(srvDir);
  const cdb = new NodeDb(cliDir);
  let lsyncd: ChildProcess | undefined;
  const rounds: BurstRound[] = [];
  try {
    await client.ready(600_000);
    lsyncd = await startLsyncd(root, lsrc, ldst);
    const procs = [server, client];
    const wait = (done: () => boolean): Promise<number> => pollUntil(done, 600_000, procs, 2);
    for (let i = 0; i < o.rounds; i++) {
      const name = `burst-${i}`;
      const writes: number[] = [];
      // lsyncd: the burst into its source, until every file is in its target.
      syncDisks();
      await sleep(300);
      writes.push(writeBurst(lsrc, name, o));
      let t0 = performance.now();
      let at = await wait(() => filesOnDisk(ldst, name) >= o.files);
      const lsyncdMs = at - t0;
      // rsync -a one-shot of the same burst written into its source.
      syncDisks();
      await sleep(300);
      writes.push(writeBurst(rsrc, name, o));
      t0 = performance.now();
      const r = await runCmd('rsync', ['-a', `${rsrc}/`, `${rdst}/`]);
      const rsyncMs = r.ms;
      // intersync down: written on the server.
      syncDisks();
      await sleep(300);
      writes.push(writeBurst(srvDir, `${name}-down`, o));
      t0 = performance.now();
      let journaled = await wait(() => sdb.files(`${name}-down`) >= o.files);
      at = await wait(() => cdb.files(`${name}-down`) >= o.files);
      let durable = await wait(() => sdb.allAcked());
      const down = { journaledMs: journaled - t0, appliedMs: at - t0, durableMs: durable - t0, ok: false };
      // intersync up: written on the client.
      syncDisks();
      await sleep(300);
      writes.push(writeBurst(cliDir, `${name}-up`, o));
      t0 = performance.now();
      journaled = await wait(() => cdb.files(`${name}-up`) >= o.files);
      at = await wait(() => sdb.files(`${name}-up`) >= o.files);
      durable = await wait(() => cdb.lml() === 0);
      const up = { journaledMs: journaled - t0, appliedMs: at - t0, durableMs: durable - t0, ok: false };
      await wait(() => sdb.allAcked());
      const v = verify(cliDir, srvDir);
      const round: BurstRound = { writeMs: median(writes), lsyncdMs, rsyncMs, down: { ...down, ok: v.ok }, up: { ...up, ok: v.ok } };
      rounds.push(round);
      say(`    round ${i + 1}/${o.rounds}  writer ${fmt(round.writeMs)} ms; lsyncd ${fmt(lsyncdMs)} ms, rsync ${fmt(rsyncMs)} ms; ` +
        `down: origin journaled ${fmt(down.journaledMs)}, applied ${fmt(down.appliedMs)}, acked ${fmt(down.durableMs)} ms; ` +
        `up: origin journaled ${fmt(up.journaledMs)}, applied ${fmt(up.appliedMs)}, answered ${fmt(up.durableMs)} ms; digest ${okText(v)}`);
    }
  } finally {
    sdb.close();
    cdb.close();
    if (lsyncd !== undefined && lsyncd.exitCode === null) {
      lsyncd.kill('SIGTERM');
      await new Promise((r) => lsyncd!.once('exit', r));
    }
    for (const [who, dir] of [['client', client.logDir], ['server', server.daemon.logDir]] as const) {
      const problems = logProblems(dir);
      if (problems.length > 0) say(`    ${who} logged ${problems.length} warning(s)/error(s), e.g. ${problems[0]!.slice(0, 200)}`);
    }
    await client.stop();
    await server.daemon.stopChecked();
  }
  const m = (f: (r: BurstRound) => number): number => median(rounds.map(f));
  const res: BurstResult = {
    options: o, rounds,
    median: {
      lsyncdMs: m((r) => r.lsyncdMs), rsyncMs: m((r) => r.rsyncMs),
      downMs: m((r) => r.down.appliedMs), downDurableMs: m((r) => r.down.durableMs), upMs: m((r) => r.up.appliedMs), upDurableMs: m((r) => r.up.durableMs),
      downVsLsyncd: m((r) => r.down.appliedMs / r.lsyncdMs), upVsLsyncd: m((r) => r.up.appliedMs / r.lsyncdMs),
      downVsRsync: m((r) => r.down.appliedMs / r.rsyncMs), upVsRsync: m((r) => r.up.appliedMs / r.rsyncMs),
    },
    allOk: rounds.every((r) => r.down.ok && r.up.ok),
  };
  const x = res.median;
  say(table(['medians', 'time from the writer\'s end', 'vs lsyncd', 'vs rsync'], [
    ['lsyncd (delay 0)', `${fmt(x.lsyncdMs)} ms`, '1.00x', `${fmt(x.lsyncdMs / x.rsyncMs, 2)}x`],
    ['rsync -a one-shot', `${fmt(x.rsyncMs)} ms`, `${fmt(x.rsyncMs / x.lsyncdMs, 2)}x`, '1.00x'],
    ['intersync down, all on the client', `${fmt(x.downMs)} ms`, `${fmt(x.downVsLsyncd, 2)}x`, `${fmt(x.downVsRsync, 2)}x`],
    ['intersync down, acknowledged', `${fmt(x.downDurableMs)} ms`, '', ''],
    ['intersync up, all on the server', `${fmt(x.upMs)} ms`, `${fmt(x.upVsLsyncd, 2)}x`, `${fmt(x.upVsRsync, 2)}x`],
    ['intersync up, answered (LML empty)', `${fmt(x.upDurableMs)} ms`, '', ''],
  ]));
  return res;
}
