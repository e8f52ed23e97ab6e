// 8. Many writers (issue 19, item 6): one server and N clients on 127.0.0.1, every client writing new small files
// into one shared folder (`orders/`, as the nodes of a web farm write orders) at a steady rate for a while.
//   lag: from the writer's close of a file on one client to the file's name appearing on each other client
//        (fs.watch on every client's `orders/`; a new file is created there by the apply path whole or renamed in);
//   converge: from the moment the writers stop until every client has every file and every node's journal
//        digest is the same;
//   token waits: TOKEN_BUSY lines in the clients' logs, and the server's count of token recalls.
// After the run, every node's `digest` equals its `digest --scan` and the server's `digest`.
// INTERSYNC_BENCH_ROOT=/a/built/tree runs that tree's daemons (the A/B comparison: before and after).
import { mkdirSync, readdirSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { cpuSeconds, fmt, makeTmp, readLog, say } from './lib.js';
import { DigestReader, NodeProc, okText, percentile, pollUntil, startServer, verify } from './replication-bench.js';

export interface WritersOptions {
  readonly clients: number;
  /** Files a second each client writes. */
  readonly rate: number;
  readonly seconds: number;
  readonly bytes: number;
  /** How long to wait for convergence after the writers stop before giving up. */
  readonly convergeTimeoutMs: number;
}

export interface WritersResult {
  readonly options: WritersOptions;
  readonly files: number;
  /** How far behind its schedule the writer fell at most (the bench's own process on a loaded machine). */
  readonly writerLateMs: number;
  readonly lags: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  /** Arrivals found by the listing after the run instead of a watch event (not in the lag figures). */
  readonly unwatched: number;
  /** ms from the writers' stop until every file is everywhere and every journal digest is the same; NaN: timed out. */
  readonly convergeMs: number;
  readonly tokenBusy: number;
  readonly recalls: number;
  /** CPU seconds (utime + stime) from the writers' start to convergence: the server's, and all clients' together. */
  readonly serverCpuS: number;
  readonly clientsCpuS: number;
  readonly digestsOk: number;
  readonly digestsTotal: number;
  readonly allOk: boolean;
}

const DIR = 'orders';
const NAME_RE = /^c(\d+)-(\d+)\.txt$/;

export async function writersBench(o: WritersOptions): Promise<WritersResult> {
  const per = Math.round(o.rate * o.seconds);
  say(`== Many writers: 1 server + ${o.clients} clients, each writing ${fmt(o.rate)} files/s of ${fmt(o.bytes)} bytes into ${DIR}/ for ${fmt(o.seconds)} s ` +
    `(${fmt(per * o.clients)} files); lag from a file's close on its writer to its name on every other client`);
  const root = makeTmp('writers');
  const srvDir = join(root, 'server');
  mkdirSync(join(srvDir, DIR), { recursive: true });
  const server = await startServer(srvDir, join(root, 'log-server'));
  const clients: NodeProc[] = [];
  const watchers: FSWatcher[] = [];
  try {
    for (let i = 0; i < o.clients; i++) {
      const d = join(root, `client-${i}`);
      mkdirSync(d);
      clients.push(NodeProc.client(d, join(root, `log-${i}`), server.url, server.secretFile));
    }
    await Promise.all(clients.map((c) => c.ready(600_000)));
    const procs = [server, ...clients];
    // When each file was closed by its writer, and when its name appeared on each other client.
    const wrote = new Map<string, number>();
    const arrived = clients.map(() => new Map<string, number>());
    const lags: number[] = [];
    for (let j = 0; j < o.clients; j++) {
      const seen = arrived[j]!;
      watchers.push(watch(join(clients[j]!.dir, DIR), (_ev, f) => {
        const at = performance.now();
        const name = typeof f === 'string' ? f : null;
        const m = name === null ? null : NAME_RE.exec(name);
        if (m === null || Number(m[1]) === j || seen.has(name!)) return;
        const w = wrote.get(name!);
        if (w === undefined) return; // a name the writer has not closed yet cannot be on another client
        seen.set(name!, at);
        lags.push(at - w);
      }));
    }
    const pids = [server.daemon, ...clients].map((p) => p.child.pid!);
    const cpuAt = (): number[] => pids.map((pid) => {
      try {
        return cpuSeconds(pid);
      } catch {
        return Number.NaN; // gone
      }
    });
    const cpu0 = cpuAt();
    const pad = 'x'.repeat(o.bytes);
    const t0 = performance.now();
    let late = 0;
    const done = new Array<number>(o.clients).fill(0);
    while (done.some((n) => n < per)) {
      const now = performance.now();
      const due = Math.min(per, Math.floor(((now - t0) / 1000) * o.rate) + 1);
      for (let n = done[0]!; n < due; n++) {
        for (let i = 0; i < o.clients; i++) {
          if (done[i]! > n) continue;
          const name = `c${i}-${n}.txt`;
          const head = `order ${n} from client ${i} at ${Date.now()}\n`;
          writeFileSync(join(clients[i]!.dir, DIR, name), head + pad.slice(head.length));
          wrote.set(name, performance.now());
          done[i] = n + 1;
        }
        late = Math.max(late, performance.now() - (t0 + (n / o.rate) * 1000));
      }
      await new Promise((r) => setTimeout(r, Math.max(1, Math.min(20, 500 / o.rate))));
    }
    const stop = performance.now();
    say(`    writers done in ${fmt((stop - t0) / 1000, 1)} s (at most ${fmt(late)} ms behind schedule); waiting for convergence`);
    const want = (o.clients - 1) * per;
    let listed = 0;
    const readers = [srvDir, ...clients.map((c) => c.dir)].map((d) => new DigestReader(d));
    let convergeAt = Number.NaN;
    try {
      // Every second, a listing catches what a watch event missed (counted after the run, not timed).
      const everyoneHasAll = (): boolean => {
        if (arrived.every((a) => a.size >= want)) return true;
        if (performance.now() - listed < 1000) return false;
        listed = performance.now();
        return clients.every((c, j) => arrived[j]!.size >= want ||
          readdirSync(join(c.dir, DIR)).filter((name) => NAME_RE.exec(name)?.[1] !== String(j) && NAME_RE.test(name)).length >= want);
      };
      const same = (): boolean => {
        const ds = readers.map((r) => r.get());
        return ds[0] !== undefined && ds.every((d) => d === ds[0]);
      };
      convergeAt = await pollUntil(() => everyoneHasAll() && same(), o.convergeTimeoutMs, procs, 20);
    } finally {
      for (const r of readers) r.close();
    }
    const convergeMs = convergeAt - stop;
    const cpu = cpuAt().map((c, i) => c - cpu0[i]!);
    await new Promise((r) => setTimeout(r, 200)); // watch events of the last arrivals
    // Converged: every file is on every client, so what no watch event timed was missed by the watch.
    const unwatched = Number.isNaN(convergeMs) ? 0 : arrived.reduce((n, a) => n + Math.max(0, want - a.size), 0);
    if (Number.isNaN(convergeMs)) {
      say(`    NOT converged ${fmt(o.convergeTimeoutMs / 1000)} s after the writers stopped: ` +
        `${arrived.map((a) => a.size).join(', ')} of ${fmt(want)} files on each client`);
    }
    const digests = [verify(srvDir, srvDir), ...clients.map((c) => verify(c.dir, srvDir))];
    const digestsOk = digests.filter((v) => v.ok).length;
    for (const [i, v] of digests.entries()) if (!v.ok) say(`    ${i === 0 ? 'server' : `client ${i - 1}`}: ${okText(v)}`);
    const tokenBusy = clients.reduce((n, c) => n + readLog(c.logDir).filter((l) => l.code === 'TOKEN_BUSY' || String(l.err ?? '').includes('TOKEN_BUSY')).length, 0);
    const st = server.daemon.readStatus() as unknown as { server?: { recalls?: number } } | undefined;
    const r: WritersResult = {
      options: o, files: per * o.clients, writerLateMs: late, lags: lags.length,
      p50: percentile(lags, 50), p90: percentile(lags, 90), p99: percentile(lags, 99), max: lags.length === 0 ? Number.NaN : lags.reduce((a, b) => Math.max(a, b), 0),
      unwatched, convergeMs, tokenBusy, recalls: st?.server?.recalls ?? Number.NaN, digestsOk, digestsTotal: digests.length,
      serverCpuS: cpu[0]!, clientsCpuS: cpu.slice(1).reduce((a, b) => a + b, 0),
      allOk: !Number.isNaN(convergeMs) && digestsOk === digests.length,
    };
    say(`    lag over ${fmt(r.lags)} arrivals: p50 ${fmt(r.p50)} ms, p90 ${fmt(r.p90)} ms, p99 ${fmt(r.p99)} ms, max ${fmt(r.max)} ms` +
      `${unwatched > 0 ? ` (${fmt(unwatched)} arrivals without a watch event, not timed)` : ''}`);
    say(`    converged ${Number.isNaN(convergeMs) ? 'NOT' : `${fmt(convergeMs)} ms`} after the writers stopped; ` +
      `TOKEN_BUSY in client logs: ${fmt(tokenBusy)}, token recalls: ${fmt(r.recalls)}; digests ${digestsOk}/${digests.length} OK`);
    // What the machine must give: each client journals and sends its own files and applies every other client's.
    say(`    CPU from the writers' start to convergence: server ${fmt(r.serverCpuS, 1)} s, clients ${fmt(r.clientsCpuS, 1)} s together ` +
      `(${fmt((r.clientsCpuS * 1000) / (r.files * o.clients), 2)} ms per file per client; wall ${fmt((convergeAt - t0) / 1000, 1)} s, ${cpus().length} cores)`);
    return r;
  } finally {
    for (const w of watchers) w.close();
    await Promise.all(clients.map((c) => c.stop()));
    await server.daemon.stopChecked();
  }
}
