// 7. The burst of 6 with many clients: 5,000 new small files written on a server with N clients (10 by default),
// until every client has them all, against the same burst on a server with one client, in the same run. Rounds
// interleave: one client, then N; medians of the rounds. Every time is taken from the moment the writer finished,
// to the moment a client journaled the last file (as 6's "applied"). The issue's target: every client within 2x
// the one-client time.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fmt, logProblems, makeTmp, median, say, sleep, syncDisks, table } from './lib.js';
import { NodeDb, writeBurst } from './burst-bench.js';
import { NodeProc, okText, pollUntil, startServer, verify, type Server } from './replication-bench.js';

export interface ManyOptions {
  readonly files: number;
  readonly dirs: number;
  readonly bytes: number;
  readonly rounds: number;
  readonly clients: number;
}

export interface ManyRound {
  readonly oneMs: number;
  /** Each client's time, in the order they were started. */
  readonly manyMs: readonly number[];
  readonly ok: boolean;
}

export interface ManyResult {
  readonly options: ManyOptions;
  readonly rounds: readonly ManyRound[];
  readonly median: { readonly oneMs: number; readonly slowestMs: number; readonly medianClientMs: number; readonly slowestVsOne: number };
  readonly allOk: boolean;
}

/** A server and its clients, each client's database polled read-only. */
interface Farm {
  readonly server: Server;
  readonly clients: readonly NodeProc[];
  readonly dbs: readonly NodeDb[];
}

async function startFarm(root: string, clients: number): Promise<Farm> {
  const srvDir = join(root, 'server');
  mkdirSync(srvDir, { recursive: true });
  const server = await startServer(srvDir, join(root, 'log-server'));
  const procs: NodeProc[] = [];
  for (let i = 0; i < clients; i++) {
    const dir = join(root, `client-${i}`);
    mkdirSync(dir);
    procs.push(NodeProc.client(dir, join(root, `log-client-${i}`), server.url, server.secretFile));
  }
  for (const c of procs) await c.ready(600_000);
  return { server, clients: procs, dbs: procs.map((c) => new NodeDb(c.dir)) };
}

async function stopFarm(f: Farm): Promise<void> {
  for (const db of f.dbs) db.close();
  for (const [i, c] of f.clients.entries()) {
    const problems = logProblems(c.logDir);
    if (problems.length > 0) say(`    client ${i} logged ${problems.length} warning(s)/error(s), e.g. ${problems[0]!.slice(0, 200)}`);
    await c.stop();
  }
  await f.server.daemon.stopChecked();
}

/** Write the burst on the farm's server; each client's time from the writer's end until it journaled every file. */
async function burstOn(f: Farm, name: string, o: ManyOptions): Promise<number[]> {
  syncDisks();
  await sleep(300);
  writeBurst(f.server.dir, name, o);
  const t0 = performance.now();
  const at = f.dbs.map(() => Number.NaN);
  await pollUntil(() => {
    f.dbs.forEach((db, i) => {
      if (Number.isNaN(at[i]!) && db.files(name) >= o.files) at[i] = performance.now() - t0;
    });
    return at.every((x) => !Number.isNaN(x));
  }, 600_000, [f.server.daemon, ...f.clients], 5);
  return at;
}

export async function burstManyBench(o: ManyOptions): Promise<ManyResult> {
  say(`== 7. Burst to ${o.clients} clients: ${fmt(o.files)} new files of ${o.bytes} bytes in ${o.dirs} new directories written on a server with ` +
    `${o.clients} clients, against the same on a server with one client; ${o.rounds} interleaved rounds, times from the writer's end until a client journaled the last file`);
  const root = makeTmp('burst-many');
  let one: Farm | undefined;
  let many: Farm | undefined;
  const rounds: ManyRound[] = [];
  try {
    one = await startFarm(join(root, 'one'), 1);
    many = await startFarm(join(root, 'many'), o.clients);
    for (let i = 0; i < o.rounds; i++) {
      const name = `burst-${i}`;
      const oneMs = (await burstOn(one, name, o))[0]!;
      const manyMs = await burstOn(many, name, o);
      const f = many;
      const ok = [...one.clients.map((c) => verify(c.dir, one!.server.dir)), ...f.clients.map((c) => verify(c.dir, f.server.dir))];
      const round: ManyRound = { oneMs, manyMs, ok: ok.every((v) => v.ok) };
      rounds.push(round);
      say(`    round ${i + 1}/${o.rounds}  one client ${fmt(oneMs)} ms; ${o.clients} clients: fastest ${fmt(Math.min(...manyMs))}, median ${fmt(median(manyMs))}, ` +
        `slowest ${fmt(Math.max(...manyMs))} ms; digests ${ok.every((v) => v.ok) ? 'OK' : okText(ok.find((v) => !v.ok)!)}`);
    }
  } finally {
    if (one !== undefined) await stopFarm(one);
    if (many !== undefined) await stopFarm(many);
  }
  const m = (f: (r: ManyRound) => number): number => median(rounds.map(f));
  const res: ManyResult = {
    options: o, rounds,
    median: {
      oneMs: m((r) => r.oneMs), slowestMs: m((r) => Math.max(...r.manyMs)), medianClientMs: m((r) => median(r.manyMs)),
      slowestVsOne: m((r) => Math.max(...r.manyMs) / r.oneMs),
    },
    allOk: rounds.every((r) => r.ok),
  };
  const x = res.median;
  say(table(['medians', 'time from the writer\'s end', 'vs one client'], [
    ['one client', `${fmt(x.oneMs)} ms`, '1.00x'],
    [`${o.clients} clients, the median client`, `${fmt(x.medianClientMs)} ms`, `${fmt(x.medianClientMs / x.oneMs, 2)}x`],
    [`${o.clients} clients, the slowest client`, `${fmt(x.slowestMs)} ms`, `${fmt(x.slowestVsOne, 2)}x (median of the rounds' ratios)`],
  ]));
  return res;
}
