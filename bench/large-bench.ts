// 5. Large files, side by side with rsync, in both directions of one connected pair:
//   down: a file made on the server reaches the client; up: a file made on the client reaches the server;
//   then MiBs rewritten in its middle, on the node that made it.
// Times are durable on the peer both ways: rsync's includes a `sync -f` of its target after it; ours runs
// until the peer has flushed what it applied (down: the server holds the client's acknowledgement of the
// record; up: the client's LML is empty, which follows the server's answer, sent after its flush).
// A file enters the tree by a rename of a file written and flushed beside the tree, so neither side
// pays for writing the source. Rounds interleave: rsync, intersync, rsync, intersync.
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { fmt, logProblems, makeTmp, median, removeTmp, say, sleep, syncDisks, table } from './lib.js';
import {
  DigestReader, NodeProc, keyStream, makeBigFile, okText, patchFile, pollUntil, rsyncStats, rsyncVersion, runCmd, startServer, syncFsMs, verify,
} from './replication-bench.js';

export interface LargeOptions {
  readonly bytes: number;
  readonly patchBytes: number;
  readonly rounds: number;
}

export interface LargeRound {
  readonly dir: 'down' | 'up';
  readonly rsyncInitialMs: number; // rsync -a, then sync -f of its target
  readonly initialMs: number;
  readonly rsyncChangeMs: number; // rsync -a --no-whole-file, then sync -f
  readonly rsyncChangeBytes: number;
  readonly changeMs: number;
  readonly changeBytes: number; // bytes on the server's connections
  readonly ok: boolean;
}

export interface LargeResult {
  readonly options: LargeOptions;
  readonly rounds: readonly LargeRound[];
  readonly median: Record<'down' | 'up', {
    readonly initialMs: number; readonly rsyncInitialMs: number; readonly initialRatio: number;
    readonly changeMs: number; readonly rsyncChangeMs: number; readonly changeBytes: number; readonly rsyncChangeBytes: number;
  }>;
  readonly allOk: boolean;
}

const MiB = 1 << 20;
const mbps = (bytes: number, ms: number): number => bytes / 1e6 / (ms / 1000);

/** A node's state, read straight from its database: its digest, its LML length, and whether every peer acknowledged its last TID. */
class NodeDb {
  readonly #digest: DigestReader;
  readonly #file: string;
  #db: Database.Database | undefined;

  constructor(dir: string) {
    this.#digest = new DigestReader(dir);
    this.#file = this.#digest.file;
  }

  digest(): string | undefined {
    return this.#digest.get();
  }

  #q<T>(sql: string): T | undefined {
    try {
      this.#db ??= new Database(this.#file, { readonly: true, fileMustExist: true });
      return this.#db.prepare(sql).pluck().get() as T | undefined;
    } catch {
      return undefined;
    }
  }

  lml(): number {
    return this.#q<number>('SELECT count(*) FROM lml') ?? -1;
  }

  /** Every registered peer's last_rcvd is the server's last TID. */
  allAcked(): boolean {
    const last = this.#q<string>("SELECT value FROM meta WHERE key = 'last_tid'");
    const low = this.#q<number | bigint>('SELECT min(tid) FROM last_rcvd');
    return last !== undefined && low !== undefined && low !== null && BigInt(low) >= BigInt(last);
  }

  close(): void {
    this.#digest.close();
    this.#db?.close();
  }
}

/** Write `bytes` of seed `seed` beside the tree and flush it, so that a rename puts it in. */
function prepared(dir: string, bytes: number, seed: number): string {
  const f = join(dir, `src-${seed}.bin`);
  makeBigFile(f, bytes, seed);
  const fd = openSync(f, 'r');
  fsyncSync(fd);
  closeSync(fd);
  return f;
}

export async function largeBench(o: LargeOptions): Promise<LargeResult> {
  say(`== 5. Large files: ${fmt(o.bytes / MiB)} MiB, then ${fmt(o.patchBytes / MiB)} MiB changed in its middle; down (server -> client) and up ` +
    `(client -> server), ${o.rounds} rounds, rsync ${rsyncVersion()} interleaved; durable on the peer both ways`);
  const root = makeTmp('large');
  const srvDir = join(root, 'server');
  const cliDir = join(root, 'client');
  const side = join(root, 'side');
  const rdst = join(root, 'rsync');
  for (const d of [srvDir, cliDir, side, rdst]) mkdirSync(d);
  const server = await startServer(srvDir, join(root, 'log-server'));
  const client = NodeProc.client(cliDir, join(root, 'log-client'), server.url, server.secretFile);
  const sdb = new NodeDb(srvDir);
  const cdb = new NodeDb(cliDir);
  const rounds: LargeRound[] = [];
  try {
    await client.ready(600_000);
    const procs = [server, client];
    const wireBytes = (): number => {
      const b = (server.daemon.readStatus() as unknown as { server?: { bytes?: { in: number; out: number } } }).server?.bytes;
      return b === undefined ? Number.NaN : b.in + b.out;
    };
    /** Until the node that made the change has journaled it (its digest left `d0`) and the peer holds it, durably. */
    const durable = (dir: 'down' | 'up', d0: string | undefined): (() => boolean) => dir === 'down'
      ? () => sdb.digest() !== d0 && cdb.digest() === sdb.digest() && sdb.allAcked()
      : () => cdb.digest() !== d0 && cdb.lml() === 0 && cdb.digest() === sdb.digest();
    const origin = (dir: 'down' | 'up'): NodeDb => (dir === 'down' ? sdb : cdb);
    for (let i = 0; i < o.rounds * 2; i++) {
      const dir = i % 2 === 0 ? 'down' : 'up';
      const from = dir === 'down' ? srvDir : cliDir;
      const name = `big-${dir}-${i}.bin`;
      const src = prepared(side, o.bytes, 100 + i);
      syncDisks();
      // rsync: the prepared file into its own directory, then write-back.
      let r = await runCmd('rsync', ['-a', src, join(rdst, name)]);
      const rsyncInitialMs = r.ms + syncFsMs(rdst);
      await sleep(500);
      let d0 = origin(dir).digest();
      let t0 = performance.now();
      renameSync(src, join(from, name));
      let at = await pollUntil(durable(dir, d0), 600_000, procs);
      const initialMs = at - t0;
      await sleep(1000);
      syncDisks();
      // The change: the same bytes written in the middle of both copies' sources.
      const offset = Math.floor(o.bytes / 2) + 4099; // unaligned: a change rarely starts on a block boundary
      const data = keyStream(9000 + i, 0, o.patchBytes);
      const b0 = wireBytes();
      d0 = origin(dir).digest();
      t0 = performance.now();
      patchFile(join(from, name), offset, data);
      at = await pollUntil(durable(dir, d0), 600_000, procs);
      const changeMs = at - t0;
      await sleep(300);
      const changeBytes = wireBytes() - b0;
      syncDisks();
      r = await runCmd('rsync', ['-a', '--no-whole-file', '--stats', join(from, name), join(rdst, name)]);
      const rsyncChangeMs = r.ms + syncFsMs(rdst);
      const st = rsyncStats(r.stdout);
      const v = verify(cliDir, srvDir);
      rounds.push({ dir, rsyncInitialMs, initialMs, rsyncChangeMs, rsyncChangeBytes: st.sent + st.received, changeMs, changeBytes, ok: v.ok });
      say(`    ${dir} ${Math.floor(i / 2) + 1}/${o.rounds}  initial: rsync ${fmt(rsyncInitialMs)} ms (${fmt(mbps(o.bytes, rsyncInitialMs))} MB/s), ` +
        `intersync ${fmt(initialMs)} ms (${fmt(mbps(o.bytes, initialMs))} MB/s)  change: rsync ${fmt(rsyncChangeMs)} ms (${fmt(st.sent + st.received)} bytes), ` +
        `intersync ${fmt(changeMs)} ms (${fmt(changeBytes)} bytes)  digest ${okText(v)}`);
      // Leave room for the next round: both copies go.
      d0 = origin(dir).digest();
      rmSync(join(from, name));
      rmSync(join(rdst, name));
      await pollUntil(durable(dir, d0), 600_000, procs);
    }
  } finally {
    sdb.close();
    cdb.close();
    const problems = logProblems(client.logDir);
    if (problems.length > 0) say(`    client logged ${problems.length} warning(s)/error(s), e.g. ${problems[0]!.slice(0, 200)}`);
    await client.stop();
    await server.daemon.stopChecked();
    removeTmp(root); // GiBs: not kept for the end
  }
  const med = (dir: 'down' | 'up'): LargeResult['median']['down'] => {
    const rs = rounds.filter((r) => r.dir === dir);
    const m = (f: (r: LargeRound) => number): number => median(rs.map(f));
    return {
      initialMs: m((r) => r.initialMs), rsyncInitialMs: m((r) => r.rsyncInitialMs), initialRatio: m((r) => r.rsyncInitialMs / r.initialMs),
      changeMs: m((r) => r.changeMs), rsyncChangeMs: m((r) => r.rsyncChangeMs), changeBytes: m((r) => r.changeBytes), rsyncChangeBytes: m((r) => r.rsyncChangeBytes),
    };
  };
  const res: LargeResult = { options: o, rounds, median: { down: med('down'), up: med('up') }, allOk: rounds.every((r) => r.ok) };
  const rows: Array<Array<string | number>> = [];
  for (const dir of ['down', 'up'] as const) {
    const m = res.median[dir];
    rows.push([`${dir}: initial ${fmt(o.bytes / MiB)} MiB`, `${fmt(m.initialMs)} ms`, `${fmt(m.rsyncInitialMs)} ms`, `${fmt(m.initialRatio, 2)}x rsync`]);
    rows.push([`${dir}: ${fmt(o.patchBytes / MiB)} MiB changed`, `${fmt(m.changeMs)} ms, ${fmt(m.changeBytes)} B`, `${fmt(m.rsyncChangeMs)} ms, ${fmt(m.rsyncChangeBytes)} B`,
      `${fmt(m.rsyncChangeMs / m.changeMs, 2)}x rsync`]);
  }
  say(table(['medians', 'intersync', 'rsync (+ sync -f)', 'speed'], rows));
  return res;
}
