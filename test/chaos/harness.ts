// The randomized convergence ("chaos") harness: one server and three clients, real daemons in their own
// processes on 127.0.0.1, each client behind its own cuttable TCP proxy. A seeded PRNG drives random file
// operations on every node over a small shared namespace (so that real conflicts happen) while links are
// cut and restored, clients go offline and online (intersync disconnect / reconnect) and daemons are
// SIGKILLed and restarted. At the end everything is healed and the invariants are checked:
//   1. every journal digest is equal, and equals every disk digest;
//   2. nothing acknowledged is lost: each written content that no later operation on the node holding it
//      replaced (the harness reads what a node holds right before it overwrites, deletes or renames over
//      it) is still somewhere in the server's final tree, at its name or in a conflict copy;
//   3. conflict copies stay few (no copies of copies exploding): counted and bounded by the operations.
// The seed comes from CHAOS_SEED when set and is printed at the start and in every assertion message.
// CHAOS_DEBUG=31 passes --debug 31 to every daemon; CHAOS_KEEP=1 keeps the directories and JSON logs.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { FilesetDb } from '#journal/fileset-db.js';
import { findFileset } from '#journal/layout.js';
import { hashFile, lstatOrNull } from '#presto/disk.js';
import { NODE_ARGS, ROOT, diskDigest, freePort, journalState, sleep, tmpDir, waitConverged } from '../helpers.js';
import { ChaosProxy } from './proxy.js';

// ---------------------------------------------------------------------------------------------------------
// Seeded PRNG (xmur3 to hash the seed text, sfc32 to draw): the same seed draws the same numbers.

export function makeRng(seed: string): () => number {
  let h = 1779033703 ^ seed.length;
  for (let i = 0; i < seed.length; i++) {
    h = Math.imul(h ^ seed.charCodeAt(i), 3432918353);
    h = (h << 13) | (h >>> 19);
  }
  const next = (): number => {
    h = Math.imul(h ^ (h >>> 16), 2246822507);
    h = Math.imul(h ^ (h >>> 13), 3266489909);
    return (h ^= h >>> 16) >>> 0;
  };
  let a = next();
  let b = next();
  let c = next();
  let d = next();
  return () => {
    a >>>= 0; b >>>= 0; c >>>= 0; d >>>= 0;
    let t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    t = (t + d) | 0;
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
}

/** The seed: CHAOS_SEED when set, else the given default. */
export function chaosSeed(fallback: string | number): string {
  const env = process.env.CHAOS_SEED;
  return env !== undefined && env.trim() !== '' ? env.trim() : String(fallback);
}

// ---------------------------------------------------------------------------------------------------------

export interface ChaosConfig {
  readonly seed: string;
  /** Random file operations, spread over the four nodes. */
  readonly ops: number;
  /** Link cuts scheduled (client proxies); overlapping ones on one link merge. */
  readonly cuts: number;
  /** Offline periods (intersync disconnect ... reconnect) scheduled on clients. */
  readonly offline: number;
  readonly clientKills: number;
  readonly serverKills: number;
  /** Longest scheduled period (cut, offline, dead), in operations. */
  readonly maxPeriodOps: number;
  /** Chance per operation of a longer pause (200-1500 ms) so that replication catches up between bursts. */
  readonly pauseRate: number;
  /** Chance that a write is a large file (block transfer, > 1 MiB). */
  readonly bigFileRate: number;
  /** Time allowed to converge once everything is healed. */
  readonly convergeMs: number;
  /** Server --lease-ms (a dead token holder blocks the others this long). */
  readonly leaseMs: number;
}

export interface ChaosResult {
  readonly seed: string;
  /** One line per problem, for an assertion message (the details were printed). */
  readonly summary: string;
  readonly opsByKind: Record<string, number>;
  readonly skipped: number;
  readonly cuts: number;
  readonly offlinePeriods: number;
  readonly clientKills: number;
  readonly serverKills: number;
  readonly conflictCopies: number;
  readonly nestedConflictCopies: number;
  readonly conflictLogLines: number;
  readonly contentsWritten: number;
  readonly contentsLive: number;
  readonly convergeMs: number;
  readonly totalMs: number;
  readonly problems: string[];
}

const DIRS = ['alpha', 'beta', 'gamma'];
const NAMES = ['a.txt', 'b.txt', 'c', 'd.md', 'e', 'f.json', 'g.txt', 'h'];
const MODES = [0o600, 0o640, 0o644, 0o664];

interface NodeState {
  readonly name: string;
  readonly role: 'server' | 'client';
  readonly dir: string;
  readonly logDir: string;
  proxy: ChaosProxy | null;
  proc: ChildProcess | null;
  starting: Promise<void> | null;
  offline: boolean;
  dead: boolean;
  stderr: string;
}

interface Period {
  readonly kind: 'cut' | 'offline' | 'kill';
  readonly node: number;
  readonly start: number;
  end: number;
}

interface OpLog {
  readonly k: number;
  readonly at: number;
  readonly node: string;
  readonly kind: string;
  readonly path: string;
  readonly newPath?: string;
  readonly wrote?: string;
  readonly moved?: string;
  readonly superseded: string[];
  readonly state: string;
  readonly note?: string;
}

interface Written {
  readonly id: string;
  readonly k: number;
  readonly node: string;
  readonly path: string;
  supersededBy: number | null;
}

/** Run the scenario; asserts nothing itself, returns what it found (problems empty when all holds). */
export async function runChaos(t: TestContext, cfg: ChaosConfig): Promise<ChaosResult> {
  const seed = cfg.seed;
  const tag = `[chaos seed=${seed}]`;
  const say = (m: string): void => console.log(`${tag} ${m}`);
  say(`start: ${cfg.ops} ops, ${cfg.cuts} cuts, ${cfg.offline} offline, ${cfg.clientKills} client kills, ${cfg.serverKills} server kills (CHAOS_SEED=${seed} to replay)`);
  const rng = makeRng(seed);
  const debug = process.env.CHAOS_DEBUG ?? '0';
  const keep = process.env.CHAOS_KEEP === '1';
  const t0 = Date.now();

  // ---- cleanup first, so that it runs however the test ends ----
  const temps = [tmpDir('intersync-chaos-srv-'), tmpDir('intersync-chaos-c1-'), tmpDir('intersync-chaos-c2-'), tmpDir('intersync-chaos-c3-')];
  const logs = tmpDir('intersync-chaos-logs-');
  const children = new Set<ChildProcess>();
  const proxies: ChaosProxy[] = [];
  let failed = true;
  let ending = false;
  t.after(async () => {
    ending = true;
    for (const c of children) {
      if (c.exitCode === null && c.signalCode === null) {
        const gone = new Promise<void>((res) => c.once('exit', () => res()));
        c.kill('SIGKILL');
        await Promise.race([gone, sleep(5000)]);
      }
    }
    for (const p of proxies) await p.close().catch(() => {});
    if (keep) {
      say(`kept: ${temps.map((d) => d.path).join(' ')} logs ${logs.path}${failed ? ' (failed)' : ''}`);
      return;
    }
    for (const d of temps) d.cleanup();
    logs.cleanup();
  });

  const nodes: NodeState[] = ['server', 'c1', 'c2', 'c3'].map((name, i) => ({
    name, role: i === 0 ? 'server' : 'client', dir: temps[i]!.path, logDir: join(logs.path, name),
    proxy: null, proc: null, starting: null, offline: false, dead: false, stderr: '',
  }));
  const server = nodes[0]!;
  const clients = nodes.slice(1);
  const port = await freePort();
  const secret = join(server.dir, '.intermezzo/default/secret');

  /** Start a daemon as its own process, registered for the kill in t.after before it says anything. */
  const startDaemon = (n: NodeState): Promise<void> => {
    const args = n.role === 'server'
      ? ['--listen', `127.0.0.1:${port}`, '--lease-ms', String(cfg.leaseMs)]
      : ['--server', `http://127.0.0.1:${n.proxy!.port}`, '--secret-file', secret];
    const child = spawn(process.execPath, [...NODE_ARGS, '--log-dir', n.logDir, '--debug', debug, ...args, n.dir], {
      cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    n.proc = child;
    let out = '';
    child.stderr!.on('data', (d: Buffer) => {
      n.stderr = (n.stderr + d.toString()).slice(-4000);
    });
    const p = new Promise<void>((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`${n.name}: daemon did not start in 120 s: ${out}${n.stderr}`)), 120_000);
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('stop with Ctrl-C')) {
          clearTimeout(timer);
          res();
        }
      });
      child.once('exit', (code, sig) => {
        clearTimeout(timer);
        rej(new Error(`${n.name}: daemon exited (${code ?? sig}) while starting: ${out}${n.stderr}`));
      });
    });
    const started = p.then(() => {
      child.removeAllListeners('exit');
      child.once('exit', (code, sig) => {
        if (n.proc === child && !n.dead && !ending) say(`${n.name}: daemon exited on its own (${code ?? sig}): ${n.stderr.slice(-800)}`);
      });
    });
    const tracked: Promise<void> = started.finally(() => {
      if (n.starting === tracked) n.starting = null;
    });
    n.starting = tracked;
    tracked.catch(() => {}); // the caller sees the failure; an unawaited restart must not crash the runner
    return tracked;
  };

  const kill = async (n: NodeState): Promise<void> => {
    if (n.starting !== null) await n.starting;
    const c = n.proc;
    n.dead = true;
    n.proc = null;
    if (c === null || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise<void>((res) => c.once('exit', () => res()));
    c.kill('SIGKILL');
    await gone;
  };

  /** The CLI (disconnect / reconnect) in its own process, without blocking the proxies' event loop. */
  const cliAsync = (args: string[]): Promise<{ code: number | null; out: string }> => new Promise((res) => {
    const child = spawn(process.execPath, [...NODE_ARGS, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => {
      children.delete(child);
      res({ code, out });
    });
  });

  // ---- the cluster ----
  await startDaemon(server);
  for (const c of clients) {
    c.proxy = await ChaosProxy.start(port);
    proxies.push(c.proxy);
  }
  await Promise.all(clients.map((c) => startDaemon(c)));
  say(`cluster up in ${Date.now() - t0} ms (t0 = ${t0} epoch ms, as in the logs' "time"): server :${port}, proxies ${clients.map((c) => `${c.name}:${c.proxy!.port}`).join(' ')}`);

  // ---- the schedule of cuts, offline periods and kills, drawn first (its draws do not depend on timing) ----
  const periods: Period[] = [];
  const draw = (kind: Period['kind'], count: number, pick: () => number): void => {
    const mine: Period[] = [];
    for (let i = 0; i < count; i++) {
      const node = pick();
      const start = Math.floor(rng() * cfg.ops * 0.9);
      const end = start + 1 + Math.floor(rng() * cfg.maxPeriodOps);
      mine.push({ kind, node, start, end });
    }
    // Overlapping periods of one kind on one node merge into one.
    mine.sort((a, b) => a.node - b.node || a.start - b.start);
    for (const p of mine) {
      const last = periods[periods.length - 1];
      if (last !== undefined && last.kind === kind && last.node === p.node && p.start <= last.end) last.end = Math.max(last.end, p.end);
      else periods.push({ ...p });
    }
  };
  const pickClient = (): number => 1 + Math.floor(rng() * 3);
  draw('cut', cfg.cuts, pickClient);
  draw('offline', cfg.offline, pickClient);
  draw('kill', cfg.clientKills, pickClient);
  draw('kill', cfg.serverKills, () => 0);
  say(`schedule: ${periods.map((p) => `${p.kind} ${nodes[p.node]!.name} ${p.start}-${p.end}`).join(', ')}`);

  const problems: string[] = [];
  const notes: string[] = [];
  const events: string[] = [];
  const counts = { cuts: 0, offline: 0, clientKills: 0, serverKills: 0 };
  const begin = async (p: Period): Promise<void> => {
    const n = nodes[p.node]!;
    if (p.kind === 'cut') {
      n.proxy!.cut();
      counts.cuts++;
    } else if (p.kind === 'offline') {
      const r = await cliAsync(['disconnect', n.dir]);
      if (r.code !== 0) problems.push(`${n.name}: intersync disconnect failed (${r.code}): ${r.out}`);
      n.offline = true;
      counts.offline++;
    } else {
      await kill(n);
      if (n.role === 'server') counts.serverKills++;
      else counts.clientKills++;
    }
    events.push(`${Date.now() - t0}ms ${p.kind} ${n.name} begins`);
  };
  const finish = async (p: Period): Promise<void> => {
    const n = nodes[p.node]!;
    if (p.kind === 'cut') n.proxy!.restore();
    else if (p.kind === 'offline') {
      const r = await cliAsync(['reconnect', n.dir]);
      if (r.code !== 0) problems.push(`${n.name}: intersync reconnect failed (${r.code}): ${r.out}`);
      n.offline = false;
    } else {
      n.dead = false;
      // Restart in the background: operations go on meanwhile, as they would on a machine rebooting.
      startDaemon(n).catch((e: unknown) => problems.push(`${n.name}: restart failed: ${(e as Error).message}`));
    }
    events.push(`${Date.now() - t0}ms ${p.kind} ${n.name} ends`);
  };

  // ---- the operations ----
  const opLog: OpLog[] = [];
  const written = new Map<string, Written>(); // content hash -> who wrote it
  const unknownSeen: string[] = [];
  const byKind: Record<string, number> = {};
  let skipped = 0;

  const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
  const statOf = (abs: string): Stats | null => {
    try {
      return lstatSync(abs);
    } catch {
      return null;
    }
  };
  /** Read a file on a node, mark its content superseded by op k; returns the content's id (or a note). */
  const supersede = (n: NodeState, rel: string, k: number): string | null => {
    const abs = join(n.dir, rel);
    let buf: Buffer;
    try {
      buf = readFileSync(abs);
    } catch {
      return null;
    }
    const w = written.get(sha(buf));
    if (w === undefined) {
      unknownSeen.push(`op${k} ${n.name}:${rel} held ${buf.length} bytes of unknown content ${JSON.stringify(buf.subarray(0, 40).toString())}`);
      return `unknown(${buf.length}B)`;
    }
    if (w.supersededBy === null) w.supersededBy = k;
    return w.id;
  };
  const contentId = (n: NodeState, rel: string): string | undefined => {
    try {
      return written.get(sha(readFileSync(join(n.dir, rel))))?.id;
    } catch {
      return undefined;
    }
  };
  const stateOf = (n: NodeState): string => [
    n.dead ? 'dead' : n.starting !== null ? 'starting' : 'up',
    ...(n.offline ? ['offline'] : []), ...(n.proxy?.isCut === true ? ['cut'] : []),
  ].join('+');

  for (let k = 0; k < cfg.ops; k++) {
    for (const p of periods) if (p.start === k) await begin(p);
    for (const p of periods) if (p.end === k) await finish(p);
    // Fixed draws per operation, whatever the disk holds, so a seed replays the same choices.
    const u = Array.from({ length: 9 }, () => rng());
    const n = nodes[Math.floor(u[0]! * 4)]!;
    const target = `${DIRS[Math.floor(u[2]! * DIRS.length)]!}/${NAMES[Math.floor(u[3]! * NAMES.length)]!}`;
    const files = DIRS.flatMap((d) => NAMES.map((m) => `${d}/${m}`)).filter((p) => statOf(join(n.dir, p))?.isFile() === true);
    const src = files.length === 0 ? null : files[Math.floor(u[4]! * files.length)]!;
    const r = u[1]!;
    const kind = r < 0.5 ? 'write' : r < 0.65 ? 'rename' : r < 0.79 ? 'delete' : r < 0.87 ? 'chmod' : 'mkdir';
    const at = Date.now() - t0;
    const state = stateOf(n);
    const log = (e: Omit<OpLog, 'k' | 'at' | 'node' | 'state'>): void => {
      opLog.push({ k, at, node: n.name, state, ...e });
      byKind[e.kind] = (byKind[e.kind] ?? 0) + 1;
    };
    const skip = (why: string): void => {
      skipped++;
      opLog.push({ k, at, node: n.name, state, kind: `skip-${kind}`, path: target, superseded: [], note: why });
    };
    const ensureParent = (rel: string): void => {
      mkdirSync(join(n.dir, rel.split('/')[0]!), { recursive: true });
    };
    try {
      if (kind === 'write') {
        const st = statOf(join(n.dir, target));
        if (st !== null && !st.isFile()) {
          skip('a directory holds the name');
        } else {
          const id = `op${k}-${n.name}-${Math.floor(u[6]! * 1e9).toString(36)}`;
          const big = u[5]! < cfg.bigFileRate;
          const content = big ? `${id}\n`.repeat(Math.ceil((1.25 * (1 << 20)) / (id.length + 1))) : `${id}\n`;
          const superseded = st === null ? [] : [supersede(n, target, k)].filter((x): x is string => x !== null);
          ensureParent(target);
          const viaRename = u[5]! > 0.8;
          if (viaRename) {
            // The way editors save: a new file, renamed over the old name.
            const tmp = join(n.dir, target.split('/')[0]!, `.save-${k}.tmp`);
            writeFileSync(tmp, content);
            renameSync(tmp, join(n.dir, target));
          } else {
            writeFileSync(join(n.dir, target), content);
          }
          written.set(sha(content), { id, k, node: n.name, path: target, supersededBy: null });
          const note = [...(big ? ['big'] : []), ...(viaRename ? ['via rename'] : [])].join(', ');
          log({ kind: st === null ? 'create' : 'overwrite', path: target, wrote: id, superseded, ...(note === '' ? {} : { note }) });
        }
      } else if (kind === 'rename') {
        const st = statOf(join(n.dir, target));
        if (src === null) skip('no file to rename');
        else if (src === target) skip('same name');
        else if (st !== null && !st.isFile()) skip('a directory holds the new name');
        else {
          const moved = contentId(n, src) ?? 'unknown';
          const superseded = st === null ? [] : [supersede(n, target, k)].filter((x): x is string => x !== null);
          ensureParent(target);
          renameSync(join(n.dir, src), join(n.dir, target));
          log({ kind: 'rename', path: src, newPath: target, moved, superseded });
        }
      } else if (kind === 'delete') {
        if (src === null) skip('no file to delete');
        else {
          const superseded = [supersede(n, src, k)].filter((x): x is string => x !== null);
          unlinkSync(join(n.dir, src));
          log({ kind: 'delete', path: src, superseded });
        }
      } else if (kind === 'chmod') {
        if (src === null) skip('no file to chmod');
        else {
          const mode = MODES[Math.floor(u[5]! * MODES.length)]!;
          chmodSync(join(n.dir, src), mode);
          log({ kind: 'chmod', path: src, superseded: [], note: mode.toString(8) });
        }
      } else {
        const top = u[5]! < 0.5;
        const path = top ? target.split('/')[0]! : target;
        if (statOf(join(n.dir, path)) !== null) skip('the name exists');
        else {
          ensureParent(path);
          mkdirSync(join(n.dir, path), { recursive: true });
          log({ kind: 'mkdir', path, superseded: [] });
        }
      }
    } catch (e) {
      // The daemon changed the tree under us (a forwarded record applied between our look and our change).
      skip(`raced: ${(e as Error).message}`);
    }
    const pause = u[8]! < cfg.pauseRate ? 200 + Math.floor(u[7]! * 1300) : Math.floor(u[7]! * 50);
    await sleep(pause);
  }
  say(`operations done in ${Date.now() - t0} ms: ${JSON.stringify(byKind)}, ${skipped} skipped`);

  // ---- heal: restore every link, reconnect every client, restart what is dead ----
  for (const p of periods) if (p.end >= cfg.ops) await finish(p);
  for (const n of nodes) if (n.starting !== null) await n.starting.catch(() => {});
  for (const n of nodes) {
    if (n.proc === null || n.proc.exitCode !== null || n.proc.signalCode !== null) {
      problems.push(`${n.name}: daemon not running at the end; restarting it`);
      n.dead = false;
      await startDaemon(n).catch((e: unknown) => problems.push(`${n.name}: restart failed: ${(e as Error).message}`));
    }
  }
  const healedAt = Date.now();
  say(`healed at ${healedAt - t0} ms; waiting for convergence (up to ${cfg.convergeMs} ms)`);

  // ---- invariant 1: every journal and every disk at the server's digest ----
  const dirs = nodes.map((n) => n.dir);
  let converged = false;
  let lastSeen = '';
  for (;;) {
    const left = cfg.convergeMs - (Date.now() - healedAt);
    if (left <= 0) break;
    try {
      await waitConverged(dirs, left);
    } catch (e) {
      lastSeen = (e as Error).message;
      break;
    }
    const want = journalState(server.dir).digest;
    const disks = await Promise.all(dirs.map((d) => diskDigest(d)));
    const journals = dirs.map((d) => journalState(d).digest);
    lastSeen = `journals ${journals.map((j) => j.slice(0, 12)).join(' ')}; disks ${disks.map((j) => j.slice(0, 12)).join(' ')}`;
    if (disks.every((d) => d === want) && journals.every((j) => j === want)) {
      converged = true;
      break;
    }
    await sleep(200);
  }
  const convergeMs = Date.now() - healedAt;
  if (!converged) {
    problems.push(`no convergence within ${cfg.convergeMs} ms after healing: ${lastSeen}`);
    const paths = new Map<string, NodeState>();
    for (const n of nodes) {
      for (const line of await explain(n)) {
        problems.push(`  ${n.name}: ${line}`);
        const m = /^([^ :]+): (journal|on disk)/.exec(line);
        if (m !== null) paths.set(m[1]!, n);
      }
    }
    for (const [p, n] of paths) {
      // The operations on that name, and the whole history of the content it holds (renames included).
      const touching = opLog.filter((o) => o.path === p || o.newPath === p);
      let held: Written | undefined;
      try {
        held = written.get(sha(readFileSync(join(n.dir, p))));
      } catch {
        held = undefined;
      }
      const lines = [...new Set([...touching.map(formatOp), ...(held === undefined ? [] : history(held, opLog))])];
      problems.push(`  operations on ${p}${held === undefined ? '' : ` (holding ${held.id} on ${n.name})`}:${lines.map((l) => `\n      ${l}`).join('') || ' none'}`);
    }
  } else say(`converged ${convergeMs} ms after healing`);

  // ---- invariant 2: nothing acknowledged is lost ----
  const trees = new Map<string, Map<string, string[]>>(); // node -> content hash -> paths
  for (const n of nodes) trees.set(n.name, contentsOf(n.dir));
  const onServer = trees.get('server')!;
  let live = 0;
  const lost: string[] = [];
  for (const [hash, w] of written) {
    if (w.supersededBy !== null) continue;
    live++;
    if (onServer.has(hash)) continue;
    const elsewhere = nodes.filter((n) => trees.get(n.name)!.has(hash)).map((n) => `${n.name}:${trees.get(n.name)!.get(hash)!.join(',')}`);
    lost.push(`${w.id} (written on ${w.node} at ${w.path}) is not on the server${elsewhere.length > 0 ? `; still on ${elsewhere.join(' ')} (not replicated)` : ', nor on any node (DESTROYED)'}\n${history(w, opLog).map((l) => `      ${l}`).join('\n')}`);
  }
  if (lost.length > 0) problems.push(`${lost.length} of ${live} live contents lost:\n    ${lost.join('\n    ')}`);

  // ---- invariant 3: conflict copies stay few ----
  let conflictCopies = 0;
  let nested = 0;
  for (const paths of onServer.values()) {
    for (const p of paths) {
      const m = p.split('/').pop()!.match(/\.conflict-/g)?.length ?? 0;
      if (m > 0) conflictCopies++;
      if (m > 1) nested++;
    }
  }
  const conflictDirs = walkNames(server.dir).filter((p) => lstatOrNull(join(server.dir, p))?.type === 'dir' && /\.conflict-/.test(p)).length;
  const opsDone = Object.values(byKind).reduce((a, b) => a + b, 0);
  if (conflictCopies + conflictDirs >= Math.max(1, opsDone)) problems.push(`conflict copies exploded: ${conflictCopies} files and ${conflictDirs} directories for ${opsDone} operations (${nested} copies of copies)`);
  let conflictLogLines = 0;
  for (const n of nodes) {
    try {
      conflictLogLines += readFileSync(join(n.logDir, 'intersync-default.log'), 'utf8').split('\n').filter((l) => l.includes('"msg":"conflict')).length;
    } catch {
      // no log yet
    }
  }
  for (const n of nodes) {
    try {
      for (const l of readFileSync(join(n.logDir, 'intersync-default.log'), 'utf8').split('\n')) {
        if (l.includes('"level":50')) notes.push(`${n.name} log: ${l.slice(0, 400)}`);
      }
    } catch {
      // no log
    }
  }

  const summary = problems.length === 0 ? 'ok' : `${problems.length} problem lines, details printed above: ${problems
    .filter((p) => !p.startsWith('  '))
    .map((p) => p.split('\n')[0]!.slice(0, 300))
    .join(' | ')}`;
  const result: ChaosResult = {
    seed, summary, opsByKind: byKind, skipped, cuts: clients.reduce((a, c) => a + c.proxy!.cuts, 0), offlinePeriods: counts.offline,
    clientKills: counts.clientKills, serverKills: counts.serverKills, conflictCopies: conflictCopies + conflictDirs,
    nestedConflictCopies: nested, conflictLogLines, contentsWritten: written.size, contentsLive: live, convergeMs,
    totalMs: Date.now() - t0, problems,
  };
  try {
    writeFileSync(join(logs.path, 'ops.log'), `seed ${seed}, t0 ${t0}\n${events.join('\n')}\n${opLog.map(formatOp).join('\n')}\n`);
  } catch {
    // the logs folder is gone: nothing to keep
  }
  say(`result: ${JSON.stringify({ ...result, summary: undefined, problems: problems.length })}`);
  if (notes.length > 0) say(`${notes.length} error lines in the daemons' logs, first ones:\n${notes.slice(0, 8).join('\n')}`);
  if (unknownSeen.length > 0) say(`unknown contents met by the harness (daemon placeholders?): ${unknownSeen.slice(0, 10).join('; ')}`);
  if (problems.length > 0) {
    say(`events: ${events.join('; ')}`);
    say(`PROBLEMS:\n${problems.join('\n')}`);
  } else failed = false;
  return result;
}

/** Every regular file of a tree (metadata folder excluded): content hash -> paths. */
function contentsOf(dir: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const p of walkNames(dir)) {
    const st = lstatOrNull(join(dir, p));
    if (st?.type !== 'file') continue;
    const h = createHash('sha256').update(readFileSync(join(dir, p))).digest('hex');
    out.set(h, [...(out.get(h) ?? []), p]);
  }
  return out;
}

function walkNames(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(dir, rel)).sort()) {
    const p = rel === '' ? name : `${rel}/${name}`;
    if (p === '.intermezzo') continue;
    out.push(p);
    if (lstatOrNull(join(dir, p))?.type === 'dir') out.push(...walkNames(dir, p));
  }
  return out;
}

/** The operations that concern a content: its write, its moves, and every later operation on the names it had. */
function history(w: Written, ops: readonly OpLog[]): string[] {
  const names = new Set([w.path]);
  const out: string[] = [];
  for (const o of ops) {
    if (o.k < w.k) continue;
    if (o.moved === w.id && o.newPath !== undefined) names.add(o.newPath);
    if (o.k === w.k || names.has(o.path) || (o.newPath !== undefined && names.has(o.newPath))) {
      out.push(formatOp(o));
    }
    if (out.length >= 30) break;
  }
  return out;
}

function formatOp(o: OpLog): string {
  return `op${o.k} +${o.at}ms ${o.node}[${o.state}] ${o.kind} ${o.path}${o.newPath !== undefined ? ` -> ${o.newPath}` : ''}${o.wrote !== undefined ? ` wrote ${o.wrote}` : ''}${o.moved !== undefined ? ` moving ${o.moved}` : ''}${o.superseded.length > 0 ? ` superseding ${o.superseded.join(',')}` : ''}${o.note !== undefined ? ` (${o.note})` : ''}`;
}

/** Where a node stands, for a failure message: journal, disk, pending LML, status, and journal-vs-disk gaps. */
async function explain(n: NodeState): Promise<string[]> {
  const out: string[] = [];
  try {
    const s = journalState(n.dir);
    out.push(`journal ${s.digest.slice(0, 16)} lastTid ${s.lastTid} lml ${s.lml} records ${s.records}; disk ${(await diskDigest(n.dir)).slice(0, 16)}; daemon ${n.proc === null ? 'none' : `pid ${n.proc.pid} exit ${n.proc.exitCode ?? n.proc.signalCode ?? 'running'}`}`);
  } catch (e) {
    out.push(`journal unreadable: ${(e as Error).message}`);
  }
  try {
    const st = JSON.parse(readFileSync(join(n.dir, '.intermezzo/default/status.json'), 'utf8')) as { client?: unknown; reint?: unknown };
    if (st.client !== undefined) out.push(`status client ${JSON.stringify(st.client)}`);
    if (st.reint !== undefined) out.push(`status reint ${JSON.stringify(st.reint)}`);
  } catch {
    // no status file
  }
  try {
    const db = FilesetDb.open(findFileset(n.dir).db, { readonly: true, check: false });
    try {
      const seen = new Set<string>();
      for (const o of db.allObjects()) {
        seen.add(o.path);
        const st = lstatOrNull(join(n.dir, o.path));
        const h = st?.type === 'file' ? await hashFile(join(n.dir, o.path), st.size) : null;
        if (st === null || st.type !== o.type || (o.type !== 'symlink' && st.mode !== o.mode) || (o.type === 'file' && h !== o.hash)) {
          out.push(`${o.path}: journal ${o.type} ${o.mode.toString(8)} ${o.hash?.slice(0, 8)} v${o.version}, disk ${st?.type} ${st?.mode.toString(8)} ${h?.slice(0, 8)}`);
        }
      }
      for (const p of walkNames(n.dir)) if (!seen.has(p)) out.push(`${p}: on disk, not journaled`);
      const lml = db.readLml(0n, 20);
      if (lml.length > 0) out.push(`lml: ${lml.map((r) => `${r.seq}:${r.kind}:${r.path}${r.newPath !== null ? `->${r.newPath}` : ''}`).join(', ')}`);
    } finally {
      db.close();
    }
  } catch (e) {
    out.push(`cannot compare journal and disk: ${(e as Error).message}`);
  }
  if (n.stderr.trim() !== '') out.push(`stderr: ${n.stderr.slice(-600)}`);
  return out;
}
