// The randomized convergence ("chaos") harness: one server and N clients (3 by default), real daemons in their
// own processes on 127.0.0.1, each client behind its own cuttable TCP proxy. A seeded PRNG drives random file
// operations on every node (the server's own directory too) over a small shared namespace, so that real
// conflicts happen, while links are cut and restored, clients go offline and online (intersync disconnect /
// reconnect) and daemons are SIGKILLed and restarted; operations go on at nodes whose daemon is dead, offline
// or cut. The operations are every kind the product claims: create (O_EXCL), overwrite keeping the inode,
// in-place write at offset 0, append, truncate, replace (temp file renamed over), rename of a file (to a free
// name or over another), rename of a directory followed at once by a change inside it, delete, mkdir (top
// level and nested), rmdir and `rm -r`, chmod, symlink (relative targets, some dangling) and hard link, with
// writes and chmods through either name of a hard-linked pair. At the end everything is healed and checked:
//   1. every journal digest is equal, and equals every disk digest;
//   2. the trees are identical on every node: names, types, modes (not of symlinks), contents, symlink
//      targets and hard-link groups (which names share an inode);
//   3. nothing acknowledged is lost: each written content that no later operation on the node holding it
//      replaced (the harness reads what a node holds right before it changes or removes it) is still in the
//      server's final tree, at some name or in a conflict copy;
//   4. nothing deleted comes back: a content removed from a name (unlink, rename away, rm -r) is not at that
//      name at the end unless an operation put it back, or changed or moved it concurrently (see undoneDeparture);
//   5. no resync happened (unless allowResync), no client holds LML records, none has reintegration pending;
//   6. conflict copies stay few (no copies of copies exploding).
// An operation that races the daemon (it applied a forwarded record between our look and our change) is
// skipped or marked raced and logged; a raced name excuses what it may have removed (no false alarms).
// The seed comes from CHAOS_SEED when set and is printed at the start and in every assertion message.
// CHAOS_DEBUG=31 passes --debug 31 to every daemon; CHAOS_KEEP=1 keeps the directories and JSON logs.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  appendFileSync, closeSync, constants, fchmodSync, fstatSync, ftruncateSync, linkSync, lstatSync, mkdirSync, openSync,
  readdirSync, readFileSync, readlinkSync, readSync, renameSync, rmdirSync, symlinkSync, unlinkSync, writeFileSync,
  writeSync, type BigIntStats,
} from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { FilesetDb } from '#journal/fileset-db.js';
import { findFileset } from '#journal/layout.js';
import { hashFile, lstatOrNull } from '#fsio/disk.js';
import { NODE_ARGS, ROOT, diskDigest, freePort, journalState, readLogs, secretFile, sleep, tmpDir, waitConverged } from '../helpers.js';
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
  /** Random file operations, spread over all nodes. */
  readonly ops: number;
  /** Clients (the server is one more node); 3 when left out. */
  readonly clients?: number;
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
  /** Chance that a written file is large (block transfer, > 1 MiB). */
  readonly bigFileRate: number;
  /** Time allowed to converge once everything is healed. */
  readonly convergeMs: number;
  /** Server --lease-ms (a dead token holder blocks the others this long). */
  readonly leaseMs: number;
  /** Resyncs are expected, not a problem (false when left out). */
  readonly allowResync?: boolean;
  /** Only these operation kinds (their chances scaled up to sum to 1); all of KINDS when left out. */
  readonly kinds?: readonly string[];
}

export interface ChaosResult {
  readonly seed: string;
  /** One line per problem, for an assertion message (the details were printed). */
  readonly summary: string;
  readonly clients: number;
  /** Operations done, by kind (skips not counted). */
  readonly opsByKind: Record<string, number>;
  readonly skipped: number;
  /** Operations that raced the daemon and were marked so (what they may have removed is excused). */
  readonly raced: number;
  readonly cuts: number;
  readonly offlinePeriods: number;
  readonly kills: number;
  readonly clientKills: number;
  readonly serverKills: number;
  readonly conflictCopies: number;
  readonly nestedConflictCopies: number;
  readonly conflictLogLines: number;
  /** Resyncs seen at the end (log lines "resyncing", or status client.resyncs when larger), all nodes. */
  readonly resyncs: number;
  /** Log lines "resync failed", all nodes. */
  readonly resyncFailures: number;
  /**
   * Rescans a client made of its own disk for a digest that differed from the server's with nothing pending, all
   * nodes (checkDigest (daemon/client-digest.ts)). One the rescan explains (the journal lagged the disk) ends without a resync;
   * one it does not is followed by a resync, counted in `resyncs` too. Each is a note with its log line.
   */
  readonly digestRescans: number;
  /** Sum of status reint.refused over the clients at the end (a note, not a problem). */
  readonly refusedAtEnd: number;
  readonly contentsWritten: number;
  readonly contentsLive: number;
  readonly lostContents: number;
  readonly resurrected: number;
  readonly treeDifferences: number;
  readonly converged: boolean;
  readonly convergeMs: number;
  readonly totalMs: number;
  readonly problems: string[];
  readonly notes: string[];
}

/** Top-level directory names; directories are renamed among these (and nested SUBDIRS below them). */
const DIRS = ['alpha', 'beta', 'gamma', 'delta', 'epsilon'];
const SUBDIRS = ['sub', 'deep'];
const NAMES = ['a.txt', 'b.txt', 'c', 'd.md', 'e', 'f.json', 'g.txt', 'h'];
const MODES = [0o600, 0o640, 0o644, 0o664];
const META = '.intermezzo';

/** The operation kinds and their chances (summing to 1). */
const KINDS = [
  ['create', 0.17], ['overwrite', 0.08], ['inplace', 0.06], ['append', 0.07], ['truncate', 0.05], ['replace', 0.07],
  ['rename', 0.10], ['rename-dir', 0.05], ['delete', 0.08], ['mkdir', 0.04], ['rmdir', 0.04], ['chmod', 0.06],
  ['symlink', 0.05], ['link', 0.08],
] as const;
type Kind = (typeof KINDS)[number][0];

/** Every operation kind. */
export const OP_KINDS: readonly string[] = KINDS.map(([k]) => k);

/** The kind a draw in [0, 1) picks among the allowed ones, by their chances. */
function kindOf(r: number, allowed: readonly Kind[]): Kind {
  const from = KINDS.filter(([k]) => allowed.includes(k));
  const total = from.reduce((a, [, p]) => a + p, 0);
  let acc = 0;
  for (const [k, p] of from) {
    acc += p / total;
    if (r < acc) return k;
  }
  return from[from.length - 1]![0];
}

/** The draws of one operation: always all of them, in this order, so that a seed replays the same choices. */
interface Draws {
  readonly node: number;
  readonly kind: number;
  readonly top: number;
  readonly name: number;
  readonly pick: number;
  readonly variant: number;
  readonly idr: number;
  readonly pauseLen: number;
  readonly pauseChance: number;
  readonly nested: number;
  readonly follow: number;
  readonly name2: number;
  readonly preferLinked: number;
  readonly sub: number;
}

function drawOp(rng: () => number): Draws {
  return {
    node: rng(), kind: rng(), top: rng(), name: rng(), pick: rng(), variant: rng(), idr: rng(), pauseLen: rng(),
    pauseChance: rng(), nested: rng(), follow: rng(), name2: rng(), preferLinked: rng(), sub: rng(),
  };
}

const at = <T>(xs: readonly T[], r: number): T => xs[Math.min(xs.length - 1, Math.floor(r * xs.length))]!;

// ---------------------------------------------------------------------------------------------------------
// Trees: what the end check compares.

export type EntryType = 'file' | 'dir' | 'symlink' | 'other';

/** One name of a tree as lstat sees it. */
export interface ListedEntry {
  readonly path: string;
  readonly type: EntryType;
  readonly ino: string;
  readonly nlink: number;
  readonly mode: number;
}

function typeOf(st: BigIntStats): EntryType {
  return st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other';
}

/** Every name below dir (the metadata folder left out), parents before children, sorted; symlinks not followed. */
export function listTree(dir: string): ListedEntry[] {
  const out: ListedEntry[] = [];
  const walk = (rel: string): void => {
    let names: string[];
    try {
      names = readdirSync(rel === '' ? dir : join(dir, rel)).sort();
    } catch {
      return; // removed meanwhile
    }
    for (const name of names) {
      const p = rel === '' ? name : `${rel}/${name}`;
      if (p === META) continue;
      let st: BigIntStats;
      try {
        st = lstatSync(join(dir, p), { bigint: true });
      } catch {
        continue;
      }
      const type = typeOf(st);
      out.push({ path: p, type, ino: st.ino.toString(), nlink: Number(st.nlink), mode: Number(st.mode & 0o7777n) });
      if (type === 'dir') walk(p);
    }
  };
  walk('');
  return out;
}

/** One name of a tree as the end check compares it; `mode` is null for symlinks (Linux ignores their mode). */
export interface TreeEntry {
  readonly type: EntryType;
  readonly mode: number | null;
  readonly hash: string | null;
  readonly target: string | null;
  readonly ino: string;
}

export type Tree = ReadonlyMap<string, TreeEntry>;

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** The tree below dir: type, mode, content hash and symlink target of every name, with its inode. */
export function treeOf(dir: string): Map<string, TreeEntry> {
  const out = new Map<string, TreeEntry>();
  for (const e of listTree(dir)) {
    let hash: string | null = null;
    let target: string | null = null;
    try {
      if (e.type === 'file') hash = sha(readFileSync(join(dir, e.path)));
      else if (e.type === 'symlink') target = readlinkSync(join(dir, e.path));
    } catch {
      continue; // removed meanwhile
    }
    out.set(e.path, { type: e.type, mode: e.type === 'symlink' ? null : e.mode, hash, target, ino: e.ino });
  }
  return out;
}

/** The hard-link groups of a tree: each file name that shares its inode with other names -> all those names, sorted. */
export function linkGroupsOf(tree: Tree): Map<string, string[]> {
  const byIno = new Map<string, string[]>();
  for (const [p, e] of tree) if (e.type === 'file') byIno.set(e.ino, [...(byIno.get(e.ino) ?? []), p]);
  const out = new Map<string, string[]>();
  for (const names of byIno.values()) {
    if (names.length < 2) continue;
    const group = [...names].sort();
    for (const n of group) out.set(n, group);
  }
  return out;
}

function showEntry(e: TreeEntry | undefined): string {
  if (e === undefined) return 'nothing';
  return `${e.type}${e.mode !== null ? ` ${e.mode.toString(8)}` : ''}${e.hash !== null ? ` ${e.hash.slice(0, 10)}` : ''}${e.target !== null ? ` -> ${e.target}` : ''}`;
}

/** What differs between two trees, one line per difference and path (`a` is the reference, `b` the other node). */
export function compareTrees(a: Tree, b: Tree, aName: string, bName: string): string[] {
  const out: string[] = [];
  const ga = linkGroupsOf(a);
  const gb = linkGroupsOf(b);
  for (const p of [...new Set([...a.keys(), ...b.keys()])].sort()) {
    const x = a.get(p);
    const y = b.get(p);
    if (x === undefined || y === undefined || x.type !== y.type) {
      out.push(`${p}: ${aName} has ${showEntry(x)}, ${bName} has ${showEntry(y)}`);
      continue;
    }
    const what = [...(x.mode !== y.mode ? ['mode'] : []), ...(x.hash !== y.hash ? ['content'] : []), ...(x.target !== y.target ? ['symlink target'] : [])];
    if (what.length > 0) out.push(`${p}: ${what.join(', ')} differ: ${aName} has ${showEntry(x)}, ${bName} has ${showEntry(y)}`);
    const lx = (ga.get(p) ?? [p]).join(' ');
    const ly = (gb.get(p) ?? [p]).join(' ');
    if (lx !== ly) out.push(`${p}: hard-link group differs: ${aName} {${lx}}, ${bName} {${ly}}`);
  }
  return out;
}

/** The key of what a name holds, as the ledger tracks it: a file's content hash, a symlink's target. */
function keyOfEntry(e: TreeEntry): string | null {
  return e.type === 'file' ? e.hash : e.type === 'symlink' ? `L:${e.target ?? ''}` : null;
}

// ---------------------------------------------------------------------------------------------------------
// The ledger: what the operations wrote, replaced and removed, for the "lost" and "came back" checks.

/**
 * What an operation did to one (name, content) pair: put it there, took it away (removed or replaced it:
 * depart; moved it, or a directory above it, elsewhere: leave), or changed or linked it.
 */
export type PathEventType = 'arrive' | 'depart' | 'leave' | 'touch';

export interface PathEvent {
  readonly k: number;
  readonly node: string;
  readonly type: PathEventType;
}

/**
 * The departure of a content from a name that an end state still holding that content at that name undoes,
 * or null when the end state is explained. `evs` are the operations on one (name, content) pair, in
 * operation order. Sound rather than complete: it speaks only when (1) the last departure was followed by no
 * arrival nor change of the pair, (2) the lifetime it ended began with exactly one arrival (the one before it
 * is a departure, or nothing), so no concurrent arrival elsewhere could be in flight, and (3) no node changed
 * or linked the pair in that lifetime without removing it itself afterwards (a change concurrent with a
 * removal may lawfully keep the object: update beats delete).
 */
export function undoneDeparture(evs: readonly PathEvent[]): PathEvent | null {
  const away = (e: PathEvent): boolean => e.type === 'depart' || e.type === 'leave';
  let d = -1;
  for (let i = evs.length - 1; i >= 0; i--) {
    if (away(evs[i]!)) {
      d = i;
      break;
    }
  }
  if (d < 0) return null;
  // Moved away last: another node's concurrent move (of it, or of a directory above it) may lawfully bring
  // the object back to this name; only a removal that nothing undid is a resurrection.
  if (evs[d]!.type === 'leave') return null;
  for (let i = d + 1; i < evs.length; i++) if (!away(evs[i]!)) return null;
  let a = -1;
  for (let i = d - 1; i >= 0; i--) {
    if (evs[i]!.type === 'arrive') {
      a = i;
      break;
    }
  }
  if (a < 0) return null; // never seen arriving: nothing known
  if (a > 0 && !away(evs[a - 1]!)) return null;
  for (let i = a + 1; i < d; i++) {
    const e = evs[i]!;
    if (e.type !== 'touch') continue;
    let removedLater = false;
    for (let j = i + 1; j <= d; j++) if (away(evs[j]!) && evs[j]!.node === e.node) removedLater = true;
    if (!removedLater) return null;
  }
  return evs[d]!;
}

/**
 * The events of `key` at `path` across moves: where its last arrival at `path` was a move (a 'leave' of the same
 * content elsewhere at the same operation), the history at the name it came from stands before it, the move
 * itself left out. A change of mode made at the old name by a node that had not seen the move then counts as it
 * would at the new one (update beats delete). Before, a file chmodded on c2 at gamma/deep/d.md, then moved with
 * its directory to alpha and removed at once on c3 (which had not seen the chmod), came back lawfully and was
 * reported as a resurrection (chaos s41 seed 9265).
 */
export function historyAcrossMoves(at: (path: string) => readonly PathEvent[], names: readonly string[], path: string, depth = 0): readonly PathEvent[] {
  const evs = at(path);
  let a = -1;
  for (let i = evs.length - 1; i >= 0; i--) {
    if (evs[i]!.type === 'arrive') {
      a = i;
      break;
    }
  }
  if (a < 0 || depth > 16) return evs;
  const came = evs[a]!;
  for (const q of names) {
    if (q === path) continue;
    const leave = at(q).find((e) => e.type === 'leave' && e.k === came.k && e.node === came.node);
    if (leave === undefined) continue;
    const before = historyAcrossMoves(at, names, q, depth + 1);
    const l = before.indexOf(leave);
    if (l < 0) continue;
    // Nothing known of how it came to the old name (a conflict step's name, which no operation made): the move
    // is its arrival here. Before, the move was left out with nothing in its place, and a removal at this name
    // before the move looked undone by nothing (chaos s90 seed 9302: the server removed alpha/sub/f.json, one
    // name of a hard-linked file, then moved alpha/deep.conflict-…, holding another name of it, to alpha/sub).
    if (!before.slice(0, l).some((e) => e.type === 'arrive')) return evs;
    // After the move, a change there by another node, which had not seen the move yet, is one of the content
    // that moved: it counts too (chaos s46 seed 9221: c2 removed a.txt, the server chmodded it, having seen
    // neither that nor c1's move of its directory; it came back lawfully at c1's name, reported as a resurrection).
    const concurrent = before.slice(l + 1).filter((e) => e.type === 'touch' && e.node !== leave.node);
    // So is the move itself when another node had removed the content there before it: the mover had not seen the
    // removal, and a move concurrent with a removal may keep the object as a change does (the server's move of a
    // file a client removed off line brings it back: test/long/removed-with-dir.test.ts; chaos s46 seed 9224).
    let lastArrive = -1;
    for (let i = l - 1; i >= 0; i--) {
      if (before[i]!.type === 'arrive') {
        lastArrive = i;
        break;
      }
    }
    const racedRemoval = before.slice(lastArrive + 1, l).some((e) => e.type === 'depart' && e.node !== leave.node);
    const moved: PathEvent[] = racedRemoval ? [{ k: leave.k, node: leave.node, type: 'touch' }] : [];
    return [...evs.slice(0, a), ...before.slice(0, l), ...moved, ...concurrent, ...evs.slice(a + 1)];
  }
  return evs;
}

interface Content {
  readonly id: string;
  readonly key: string;
  readonly k: number;
  readonly node: string;
  readonly path: string;
  readonly bytes: number;
  /** The operation that replaced or removed it on the node holding it (null: live). */
  supersededBy: number | null;
  /** Removals of one name of a hard-linked group holding it (it stayed at the group's other names there). */
  readonly halfGone: number[];
  /** Why the write may not have landed at its name (the daemon replaced the name meanwhile); null when it did. */
  raced: string | null;
}

interface RacedName {
  readonly k: number;
  readonly node: string;
  readonly path: string;
  readonly why: string;
}

class Ledger {
  readonly contents = new Map<string, Content>(); // key (content hash) -> content
  readonly #events = new Map<string, Map<string, PathEvent[]>>(); // path -> key -> events
  readonly raced: RacedName[] = [];
  readonly unknown: string[] = [];

  /** A content an operation produced; the same bytes produced again are live again. */
  wrote(key: string, id: string, k: number, node: string, path: string, bytes: number): Content {
    const c = this.contents.get(key);
    if (c !== undefined) {
      c.supersededBy = null;
      return c;
    }
    const n: Content = { id, key, k, node, path, bytes, supersededBy: null, halfGone: [], raced: null };
    this.contents.set(key, n);
    return n;
  }

  /** A node's name holding `key` was replaced or removed; `lastName`: no other name of that inode held it there. */
  gone(key: string, k: number, lastName: boolean): void {
    const c = this.contents.get(key);
    if (c === undefined) return;
    if (!lastName) c.halfGone.push(k);
    else if (c.supersededBy === null) c.supersededBy = k;
  }

  event(path: string, key: string, type: PathEventType, k: number, node: string): void {
    let byKey = this.#events.get(path);
    if (byKey === undefined) this.#events.set(path, (byKey = new Map()));
    byKey.set(key, [...(byKey.get(key) ?? []), { k, node, type }]);
  }

  eventsAt(path: string, key: string): readonly PathEvent[] {
    return this.#events.get(path)?.get(key) ?? [];
  }

  /** Every name a content was seen at (written, moved, linked). */
  namesOf(key: string): string[] {
    const out: string[] = [];
    for (const [p, byKey] of this.#events) if (byKey.has(key)) out.push(p);
    return out;
  }

  /** The id of a content read from a node, noting contents the harness never wrote. */
  idOf(key: string, where: string, buf?: Buffer): string {
    if (key.startsWith('L:')) return `symlink(${key.slice(2)})`;
    const c = this.contents.get(key);
    if (c !== undefined) return c.id;
    if (buf !== undefined) this.unknown.push(`${where} held ${buf.length} bytes of unknown content ${JSON.stringify(buf.subarray(0, 40).toString())}`);
    return `unknown(${key.slice(0, 8)})`;
  }

  display(key: string): string {
    return key.startsWith('L:') ? `symlink -> ${key.slice(2)}` : (this.contents.get(key)?.id ?? `unknown content ${key.slice(0, 10)}`);
  }
}

// ---------------------------------------------------------------------------------------------------------
// The operations.

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

interface OpTarget {
  readonly name: string;
  readonly dir: string;
}

/** One operation's context. */
interface Ctx {
  readonly n: OpTarget;
  readonly k: number;
  readonly d: Draws;
  readonly at: number;
  readonly state: string;
  readonly listing: readonly ListedEntry[];
}

interface Removed {
  readonly key: string;
  readonly id: string;
}

function readAll(fd: number): Buffer {
  const size = fstatSync(fd).size;
  const buf = Buffer.alloc(size);
  let off = 0;
  while (off < size) {
    const r = readSync(fd, buf, off, size - off, off);
    if (r === 0) break;
    off += r;
  }
  return buf.subarray(0, off);
}

function writeAll(fd: number, buf: Buffer, position: number): void {
  for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off, buf.length - off, position + off);
}

function inoAt(abs: string): string | null {
  try {
    return lstatSync(abs, { bigint: true }).ino.toString();
  } catch {
    return null;
  }
}

function typeAt(abs: string): EntryType | null {
  try {
    return typeOf(lstatSync(abs, { bigint: true }));
  } catch {
    return null;
  }
}

const parentOf = (rel: string): string => (rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '');
const isUnder = (p: string, dir: string): boolean => p === dir || p.startsWith(`${dir}/`);

/** Thrown by an operation that does not apply to what the node holds: logged as a skip. */
class Skip extends Error {}

/** Draws and does the random operations on the nodes' directories, and keeps the ledger and the log. */
class Operations {
  readonly ledger = new Ledger();
  readonly log: OpLog[] = [];
  readonly byKind: Record<string, number> = {};
  skipped = 0;
  racedOps = 0;
  readonly #bigFileRate: number;
  readonly #kinds: readonly Kind[];

  constructor(bigFileRate: number, kinds: readonly string[] | undefined) {
    this.#bigFileRate = bigFileRate;
    const all = KINDS.map(([k]) => k);
    const bad = (kinds ?? []).filter((k) => !(all as readonly string[]).includes(k));
    if (bad.length > 0) throw new Error(`unknown operation kinds ${bad.join(', ')}; known: ${all.join(', ')}`);
    this.#kinds = kinds === undefined || kinds.length === 0 ? all : all.filter((k) => kinds.includes(k));
  }

  /** One operation on node n; never throws (a failure is a skip). */
  run(n: OpTarget, k: number, d: Draws, at: number, state: string): void {
    const kind = kindOf(d.kind, this.#kinds);
    const c: Ctx = { n, k, d, at, state, listing: listTree(n.dir) };
    try {
      this.#do(c, kind);
    } catch (e) {
      // Skip: nothing to do it on. Otherwise the daemon changed the tree under us (a forwarded record applied
      // between our look and our change): nothing was changed, or the ledger was told before the change.
      this.#skip(c, kind, e instanceof Skip ? e.message : `raced: ${(e as Error).message}`);
    }
  }

  #do(c: Ctx, kind: Kind): void {
    const { d } = c;
    switch (kind) {
      case 'create':
        return this.#create(c, this.#position(d), this.#id(c, ''), '');
      case 'overwrite':
      case 'inplace':
      case 'append':
      case 'truncate':
        return this.#mutate(c, kind, this.#pickFile(c), this.#id(c, ''), '');
      case 'replace':
        return this.#replace(c, this.#position(d));
      case 'rename':
        return this.#rename(c, this.#pickName(c), this.#position(d));
      case 'rename-dir':
        return this.#renameDir(c);
      case 'delete': {
        const p = this.#pickName(c);
        const r = this.#remove(c, p);
        return this.#record(c, { kind: 'delete', path: p, superseded: [r.id] });
      }
      case 'mkdir':
        return this.#mkdir(c);
      case 'rmdir':
        return this.#rmdir(c);
      case 'chmod':
        return this.#chmod(c, this.#pickFile(c));
      case 'symlink':
        return this.#symlink(c, this.#position(d));
      case 'link':
        return this.#link(c, this.#pickFile(c), this.#position(d));
    }
  }

  // ---- picks ----

  /** A name in the fixed namespace: top/NAME, or top/sub/NAME for a quarter of them. */
  #position(d: Draws): string {
    const dir = d.nested < 0.25 ? `${at(DIRS, d.top)}/${at(SUBDIRS, d.sub)}` : at(DIRS, d.top);
    return `${dir}/${at(NAMES, d.name)}`;
  }

  /** An existing regular file; a hard-linked one a third of the time when there is one. */
  #pickFile(c: Ctx): string {
    const files = c.listing.filter((e) => e.type === 'file');
    const linked = files.filter((e) => e.nlink > 1);
    const from = c.d.preferLinked < 0.35 && linked.length > 0 ? linked : files;
    if (from.length === 0) throw new Skip('no file');
    return at(from, c.d.pick).path;
  }

  /** An existing file or symlink. */
  #pickName(c: Ctx): string {
    const from = c.listing.filter((e) => e.type === 'file' || e.type === 'symlink');
    if (from.length === 0) throw new Skip('no file');
    return at(from, c.d.pick).path;
  }

  #id(c: Ctx, suffix: string): string {
    return `op${c.k}${suffix}-${c.n.name}-${Math.floor(c.d.idr * 1e9).toString(36)}`;
  }

  #content(id: string, big: boolean): Buffer {
    return Buffer.from(big ? `${id}\n`.repeat(Math.ceil((1.25 * (1 << 20)) / (id.length + 1))) : `${id}\n`);
  }

  // ---- logging ----

  #record(c: Ctx, e: Omit<OpLog, 'k' | 'at' | 'node' | 'state'>): void {
    this.log.push({ k: c.k, at: c.at, node: c.n.name, state: c.state, ...e });
    this.byKind[e.kind] = (this.byKind[e.kind] ?? 0) + 1;
  }

  #skip(c: Ctx, kind: string, why: string): void {
    this.skipped++;
    this.log.push({ k: c.k, at: c.at, node: c.n.name, state: c.state, kind: `skip-${kind}`, path: '', superseded: [], note: why });
  }

  #raced(c: Ctx, path: string, why: string): string {
    this.racedOps++;
    this.ledger.raced.push({ k: c.k, node: c.n.name, path, why });
    return `RACED: ${why}`;
  }

  /** The parent folders of rel, made when missing; says whether it made any. */
  #ensureParent(c: Ctx, rel: string): boolean {
    const parent = parentOf(rel);
    if (parent === '' || typeAt(join(c.n.dir, parent)) === 'dir') return false;
    mkdirSync(join(c.n.dir, parent), { recursive: true });
    return true;
  }

  /** The names on the node that hold inode `ino` now. */
  #namesOfIno(c: Ctx, ino: string): string[] {
    return listTree(c.n.dir).filter((e) => e.type === 'file' && e.ino === ino).map((e) => e.path);
  }

  /** What a name holds now, as a ledger key: content hash or symlink target; null when nothing is there. */
  #keyAt(c: Ctx, rel: string): { key: string; nlink: number; ino: string } | null {
    const abs = join(c.n.dir, rel);
    const st = lstatOrNull(abs);
    if (st === null) return null;
    if (st.type === 'symlink') return { key: `L:${readlinkSync(abs)}`, nlink: st.nlink, ino: st.ino };
    if (st.type !== 'file') throw new Skip(`a ${st.type} holds ${rel}`);
    const fd = openSync(abs, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const buf = readAll(fd);
      const key = sha(buf);
      this.ledger.idOf(key, `op${c.k} ${c.n.name}:${rel}`, buf);
      const fst = fstatSync(fd, { bigint: true });
      return { key, nlink: Number(fst.nlink), ino: fst.ino.toString() };
    } finally {
      closeSync(fd);
    }
  }

  // ---- the operations ----

  /** Create with O_EXCL. */
  #create(c: Ctx, rel: string, id: string, note: string): void {
    const abs = join(c.n.dir, rel);
    if (typeAt(abs) !== null) throw new Skip(`${rel} exists`);
    const made = this.#ensureParent(c, rel);
    const big = c.d.variant < this.#bigFileRate;
    const buf = this.#content(id, big);
    const fd = openSync(abs, 'wx');
    let ino: string;
    try {
      writeAll(fd, buf, 0);
      ino = String(fstatSync(fd, { bigint: true }).ino);
    } finally {
      closeSync(fd);
    }
    const key = sha(buf);
    const w = this.ledger.wrote(key, id, c.k, c.n.name, rel, buf.length);
    this.ledger.event(rel, key, 'arrive', c.k, c.n.name);
    const notes = [note, made ? 'mkdir -p' : '', big ? 'big' : ''];
    if (inoAt(abs) !== ino) {
      w.raced = 'replaced right after its create';
      notes.push(this.#raced(c, rel, 'the name no longer holds the file created'));
    }
    this.#record(c, { kind: 'create', path: rel, wrote: w.id, superseded: [], ...noteOf(notes) });
  }

  /** A write through an open file (the inode stays): overwrite (truncate + write), in place at 0, append, truncate. */
  #mutate(c: Ctx, kind: 'overwrite' | 'inplace' | 'append' | 'truncate', rel: string, id: string, note: string): void {
    const abs = join(c.n.dir, rel);
    const fd = openSync(abs, constants.O_RDWR | constants.O_NOFOLLOW | (kind === 'append' ? constants.O_APPEND : 0));
    try {
      const st = fstatSync(fd, { bigint: true });
      if (!st.isFile()) throw new Skip(`${rel} is not a file`);
      const ino = st.ino.toString();
      const old = readAll(fd);
      const oldKey = sha(old);
      if (kind === 'truncate' && old.length === 0) throw new Skip(`${rel} is empty`);
      const oldId = this.ledger.idOf(oldKey, `op${c.k} ${c.n.name}:${rel}`, old);
      const before = this.#namesOfIno(c, ino);
      // Every name of the inode loses the old content: told before the write, so a failure errs on the lenient side.
      this.ledger.gone(oldKey, c.k, true);
      for (const p of before) this.ledger.event(p, oldKey, 'touch', c.k, c.n.name);
      let want: Buffer;
      let big = false;
      if (kind === 'overwrite') {
        big = c.d.variant < this.#bigFileRate;
        want = this.#content(id, big);
        ftruncateSync(fd, 0);
        writeAll(fd, want, 0);
      } else if (kind === 'inplace') {
        const head = Buffer.from(`${id}\n`);
        writeAll(fd, head, 0);
        want = head.length >= old.length ? head : Buffer.concat([head, old.subarray(head.length)]);
      } else if (kind === 'append') {
        const tail = Buffer.from(`+${id}\n`);
        appendFileSync(fd, tail);
        want = Buffer.concat([old, tail]);
      } else {
        const len = c.d.variant < 0.25 ? 0 : Math.floor(c.d.follow * old.length);
        ftruncateSync(fd, len);
        want = old.subarray(0, len);
      }
      const now = readAll(fd);
      const key = sha(now);
      const w = this.ledger.wrote(key, kind === 'truncate' ? `${id}(truncated ${oldId} to ${now.length}B)` : kind === 'overwrite' ? id : `${id}(${kind} on ${oldId})`, c.k, c.n.name, rel, now.length);
      const names = this.#namesOfIno(c, ino);
      for (const p of names) this.ledger.event(p, key, 'arrive', c.k, c.n.name);
      const notes = [note, big ? 'big' : '', names.length > 1 ? `names of the inode: ${names.join(' ')}` : ''];
      let why: string | null = null;
      if (!now.equals(want)) why = 'the file changed under the write';
      else if (inoAt(abs) !== ino) why = 'the name no longer holds the file written';
      if (why !== null) {
        w.raced = why;
        notes.push(this.#raced(c, rel, why));
      }
      this.#record(c, { kind, path: rel, wrote: w.id, superseded: [oldId], ...noteOf(notes) });
    } finally {
      closeSync(fd);
    }
  }

  /** The way editors save: a new file, renamed over the name (which may hold a file or a symlink, or nothing). */
  #replace(c: Ctx, rel: string): void {
    const abs = join(c.n.dir, rel);
    const old = this.#keyAt(c, rel); // a directory there: Skip
    const made = this.#ensureParent(c, rel);
    const id = this.#id(c, '');
    const big = c.d.variant < this.#bigFileRate;
    const buf = this.#content(id, big);
    const tmpRel = `${parentOf(rel)}/.save-${c.k}.tmp`;
    const tmp = join(c.n.dir, tmpRel);
    writeFileSync(tmp, buf, { flag: 'wx' });
    const ino = inoAt(tmp);
    const key = sha(buf);
    const w = this.ledger.wrote(key, id, c.k, c.n.name, rel, buf.length);
    this.ledger.event(tmpRel, key, 'arrive', c.k, c.n.name);
    const superseded: string[] = [];
    if (old !== null) {
      superseded.push(this.ledger.idOf(old.key, rel));
      this.ledger.gone(old.key, c.k, old.nlink <= 1);
      this.ledger.event(rel, old.key, 'touch', c.k, c.n.name);
    }
    renameSync(tmp, abs);
    this.ledger.event(tmpRel, key, 'depart', c.k, c.n.name);
    this.ledger.event(rel, key, 'arrive', c.k, c.n.name);
    const notes = [made ? 'mkdir -p' : '', big ? 'big' : '', old !== null && old.nlink > 1 ? `the old file keeps ${old.nlink - 1} other names` : ''];
    if (inoAt(abs) !== ino) {
      w.raced = 'replaced right after';
      notes.push(this.#raced(c, rel, 'the name no longer holds the file renamed there'));
    }
    this.#record(c, { kind: 'replace', path: rel, wrote: w.id, superseded, ...noteOf(notes) });
  }

  /** Rename a file or symlink to a free name or over another file or symlink. */
  #rename(c: Ctx, src: string, dst: string): void {
    if (src === dst) throw new Skip('same name');
    const srcAbs = join(c.n.dir, src);
    const dstAbs = join(c.n.dir, dst);
    const dstType = typeAt(dstAbs);
    if (dstType === 'dir') throw new Skip(`a directory holds ${dst}`);
    const moved = this.#keyAt(c, src);
    if (moved === null) throw new Skip(`${src} is gone`);
    const old = this.#keyAt(c, dst);
    if (old !== null && old.ino === moved.ino) throw new Skip(`${src} and ${dst} are hard links of one file`);
    const superseded: string[] = [];
    if (old !== null) {
      superseded.push(this.ledger.idOf(old.key, dst));
      this.ledger.gone(old.key, c.k, old.nlink <= 1);
      this.ledger.event(dst, old.key, 'touch', c.k, c.n.name);
    }
    const made = this.#ensureParent(c, dst);
    renameSync(srcAbs, dstAbs);
    this.ledger.event(src, moved.key, 'leave', c.k, c.n.name);
    this.ledger.event(dst, moved.key, 'arrive', c.k, c.n.name);
    const notes = [made ? 'mkdir -p' : '', old !== null && old.nlink > 1 ? `the old file keeps ${old.nlink - 1} other names` : ''];
    if (inoAt(dstAbs) !== moved.ino) notes.push(this.#raced(c, dst, 'the new name does not hold the file renamed'));
    this.#record(c, { kind: old === null ? 'rename' : 'rename-over', path: src, newPath: dst, moved: this.ledger.idOf(moved.key, src), superseded, ...noteOf(notes) });
  }

  /** Remove a file or symlink, telling the ledger; a hard-linked file keeps its content at its other names. */
  #remove(c: Ctx, rel: string): Removed {
    const abs = join(c.n.dir, rel);
    const type = typeAt(abs);
    if (type === 'symlink') {
      const key = `L:${readlinkSync(abs)}`;
      unlinkSync(abs);
      this.ledger.event(rel, key, 'depart', c.k, c.n.name);
      return { key, id: this.ledger.idOf(key, rel) };
    }
    if (type !== 'file') throw new Skip(type === null ? `${rel} is gone` : `a ${type} holds ${rel}`);
    const fd = openSync(abs, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const st = fstatSync(fd, { bigint: true });
      const buf = readAll(fd);
      const key = sha(buf);
      const id = this.ledger.idOf(key, `op${c.k} ${c.n.name}:${rel}`, buf);
      this.ledger.gone(key, c.k, st.nlink <= 1n);
      unlinkSync(abs);
      this.ledger.event(rel, key, 'depart', c.k, c.n.name);
      // Our file lost a name: else the daemon had put another file at the name, and we removed that one.
      if (fstatSync(fd, { bigint: true }).nlink !== st.nlink - 1n) this.#raced(c, rel, 'removed a file the daemon had just put there');
      return { key, id: st.nlink > 1n ? `${id}(one of ${st.nlink} names)` : id };
    } finally {
      closeSync(fd);
    }
  }

  /** Rename a directory (to a free name or over an empty directory), then change something inside it at once. */
  #renameDir(c: Ctx): void {
    const { d } = c;
    const dirs = c.listing.filter((e) => e.type === 'dir');
    if (dirs.length === 0) throw new Skip('no directory');
    const src = at(dirs, d.pick);
    // The drawn name first, then the other fixed names in an order that starts at it: once every top-level
    // name exists, a rename still finds a free (or empty) one, as a nested directory if need be.
    const i = Math.floor(d.top * DIRS.length);
    const tops = DIRS.map((_, j) => DIRS[(i + j) % DIRS.length]!);
    const nestedFirst = d.nested < 0.3;
    const candidates = [...(nestedFirst ? [] : tops), ...tops.flatMap((t) => SUBDIRS.map((s) => `${t}/${s}`)), ...(nestedFirst ? tops : [])];
    const usable = (dst: string): boolean => {
      if (isUnder(dst, src.path) || isUnder(src.path, dst)) return false;
      const type = typeAt(join(c.n.dir, dst));
      if (type !== null && (type !== 'dir' || readdirSync(join(c.n.dir, dst)).length > 0)) return false;
      return parentOf(dst) === '' || typeAt(join(c.n.dir, parentOf(dst))) === 'dir';
    };
    const dst = candidates.find(usable);
    if (dst === undefined) throw new Skip(`no free name for ${src.path}`);
    const dstAbs = join(c.n.dir, dst);
    const dstType = typeAt(dstAbs);
    const inside = c.listing.filter((e) => e.path.startsWith(`${src.path}/`) && (e.type === 'file' || e.type === 'symlink'));
    const keys = inside.map((e) => ({ e, key: this.#keyAt(c, e.path) }));
    renameSync(join(c.n.dir, src.path), dstAbs);
    for (const { e, key } of keys) {
      if (key === null) continue;
      this.ledger.event(e.path, key.key, 'leave', c.k, c.n.name);
      this.ledger.event(`${dst}${e.path.slice(src.path.length)}`, key.key, 'arrive', c.k, c.n.name);
    }
    const notes = [`${inside.length} files and symlinks inside`, dstType === 'dir' ? 'over an empty directory' : ''];
    if (inoAt(dstAbs) !== src.ino) notes.push(this.#raced(c, dst, 'the new name does not hold the directory renamed'));
    this.#record(c, { kind: 'rename-dir', path: src.path, newPath: dst, superseded: [], ...noteOf(notes) });
    // At once (well within a millisecond of the rename): a change inside the directory at its new name.
    const followRel = `${dst}/${at(NAMES, d.name2)}`;
    const followType = typeAt(join(c.n.dir, followRel));
    const why = 'right after rename-dir';
    try {
      if (followType === null) this.#create(c, followRel, this.#id(c, 'b'), why);
      else if (followType === 'file' && d.follow < 0.5) this.#mutate(c, 'overwrite', followRel, this.#id(c, 'b'), why);
      else if (followType === 'file' || followType === 'symlink') {
        const r = this.#remove(c, followRel);
        this.#record(c, { kind: 'delete', path: followRel, superseded: [r.id], note: why });
      } else throw new Skip(`a directory holds ${followRel}`);
    } catch (e) {
      this.#skip(c, 'after-rename-dir', e instanceof Skip ? e.message : `raced: ${(e as Error).message}`);
    }
  }

  #mkdir(c: Ctx): void {
    const { d } = c;
    const rel = d.variant < 0.5 ? at(DIRS, d.top) : `${at(DIRS, d.top)}/${at(SUBDIRS, d.sub)}`;
    if (typeAt(join(c.n.dir, rel)) !== null) throw new Skip(`${rel} exists`);
    const made = this.#ensureParent(c, rel);
    mkdirSync(join(c.n.dir, rel));
    this.#record(c, { kind: 'mkdir', path: rel, superseded: [], ...noteOf([made ? 'mkdir -p' : '']) });
  }

  /** rmdir of an empty directory; three times in ten, `rm -r` of a small tree. */
  #rmdir(c: Ctx): void {
    const dirs = c.listing.filter((e) => e.type === 'dir');
    if (c.d.variant < 0.3) {
      if (dirs.length === 0) throw new Skip('no directory');
      const top = at(dirs, c.d.pick).path;
      const below = c.listing.filter((e) => e.path.startsWith(`${top}/`));
      if (below.length > 12) throw new Skip(`${top} holds ${below.length} names: too many for rm -r`);
      const superseded: string[] = [];
      let stopped = '';
      // As rm -r does: every name, deepest first, then the directories; a name the daemon adds meanwhile stops it.
      try {
        for (const e of [...below].reverse()) {
          if (e.type === 'dir') rmdirSync(join(c.n.dir, e.path));
          else superseded.push(this.#remove(c, e.path).id);
        }
        rmdirSync(join(c.n.dir, top));
      } catch (e) {
        stopped = `, stopped: ${(e as Error).message}`;
      }
      this.#record(c, { kind: 'rm-r', path: top, superseded, note: `${below.length} names below${stopped}` });
      return;
    }
    const empty = dirs.filter((e) => !c.listing.some((x) => x.path.startsWith(`${e.path}/`)));
    if (empty.length === 0) throw new Skip('no empty directory');
    const rel = at(empty, c.d.pick).path;
    rmdirSync(join(c.n.dir, rel));
    this.#record(c, { kind: 'rmdir', path: rel, superseded: [] });
  }

  #chmod(c: Ctx, rel: string): void {
    const abs = join(c.n.dir, rel);
    const mode = at(MODES, c.d.variant);
    const fd = openSync(abs, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const st = fstatSync(fd, { bigint: true });
      if (!st.isFile()) throw new Skip(`${rel} is not a file`);
      const key = sha(readAll(fd));
      fchmodSync(fd, mode);
      const names = this.#namesOfIno(c, st.ino.toString());
      for (const p of names) this.ledger.event(p, key, 'touch', c.k, c.n.name);
      const notes = [mode.toString(8), names.length > 1 ? `names of the inode: ${names.join(' ')}` : ''];
      if (inoAt(abs) !== st.ino.toString()) notes.push(this.#raced(c, rel, 'the name no longer holds the file'));
      this.#record(c, { kind: 'chmod', path: rel, superseded: [], ...noteOf(notes) });
    } finally {
      closeSync(fd);
    }
  }

  /** A symlink with a relative target: a sibling, a file or a folder one level up, or nothing (dangling). */
  #symlink(c: Ctx, rel: string): void {
    const { d } = c;
    const abs = join(c.n.dir, rel);
    if (typeAt(abs) !== null) throw new Skip(`${rel} exists`);
    const target = d.follow < 0.3 ? at(NAMES, d.name2)
      : d.follow < 0.6 ? `../${at(DIRS, d.sub)}/${at(NAMES, d.name2)}`
        : d.follow < 0.8 ? `nowhere-${c.k}` : `../${at(DIRS, d.sub)}`;
    const made = this.#ensureParent(c, rel);
    symlinkSync(target, abs);
    const key = `L:${target}`;
    this.ledger.event(rel, key, 'arrive', c.k, c.n.name);
    const notes = [`-> ${target}`, made ? 'mkdir -p' : ''];
    const now = typeAt(abs) === 'symlink' ? readlinkSync(abs) : null;
    if (now !== target) notes.push(this.#raced(c, rel, 'the name does not hold the symlink made'));
    this.#record(c, { kind: 'symlink', path: rel, superseded: [], ...noteOf(notes) });
  }

  /** A hard link: a new name for an existing file. */
  #link(c: Ctx, src: string, dst: string): void {
    const dstAbs = join(c.n.dir, dst);
    if (typeAt(dstAbs) !== null) throw new Skip(`${dst} exists`);
    const held = this.#keyAt(c, src);
    if (held === null || held.key.startsWith('L:')) throw new Skip(`${src} is no file`);
    const made = this.#ensureParent(c, dst);
    linkSync(join(c.n.dir, src), dstAbs);
    this.ledger.event(src, held.key, 'touch', c.k, c.n.name);
    const notes = [made ? 'mkdir -p' : '', `now ${held.nlink + 1} names`];
    if (inoAt(dstAbs) !== held.ino) notes.push(this.#raced(c, dst, 'linked another file than the one read'));
    else this.ledger.event(dst, held.key, 'arrive', c.k, c.n.name);
    this.#record(c, { kind: 'link', path: src, newPath: dst, moved: this.ledger.idOf(held.key, src), superseded: [], ...noteOf(notes) });
  }
}

function noteOf(parts: readonly string[]): { note?: string } {
  const note = parts.filter((p) => p !== '').join(', ');
  return note === '' ? {} : { note };
}

// ---------------------------------------------------------------------------------------------------------
// The run.

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

interface StatusFile {
  readonly updatedAt?: number;
  readonly client?: { resyncs?: unknown } & Record<string, unknown>;
  readonly reint?: { pending?: unknown; refused?: unknown; waitingForTid?: unknown } & Record<string, unknown>;
}

function readStatus(dir: string): StatusFile | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, META, 'default/status.json'), 'utf8')) as StatusFile;
  } catch {
    return undefined;
  }
}

function logLines(n: NodeState): string[] {
  try {
    return readLogs(n.logDir).split('\n').filter((l) => l !== '');
  } catch {
    return [];
  }
}

function msgOf(line: string): string {
  try {
    const m = (JSON.parse(line) as { msg?: unknown }).msg;
    return typeof m === 'string' ? m : '';
  } catch {
    return '';
  }
}

/** Run the scenario; asserts nothing itself, returns what it found (problems empty when all holds). */
export async function runChaos(t: TestContext, cfg: ChaosConfig): Promise<ChaosResult> {
  const seed = cfg.seed;
  const clientCount = cfg.clients ?? 3;
  const tag = `[chaos seed=${seed}]`;
  const say = (m: string): void => console.log(`${tag} ${m}`);
  say(`start: ${cfg.ops} ops${cfg.kinds !== undefined && cfg.kinds.length > 0 ? ` (${cfg.kinds.join(',')} only)` : ''} on 1 server + ${clientCount} clients, ${cfg.cuts} cuts, ${cfg.offline} offline, ${cfg.clientKills} client kills, ${cfg.serverKills} server kills (CHAOS_SEED=${seed} to replay)`);
  const rng = makeRng(seed);
  const debug = process.env.CHAOS_DEBUG ?? '0';
  const keep = process.env.CHAOS_KEEP === '1';
  const t0 = Date.now();

  // ---- cleanup first, so that it runs however the test ends ----
  const names = ['server', ...Array.from({ length: clientCount }, (_, i) => `c${i + 1}`)];
  const temps = names.map((n) => tmpDir(`intersync-chaos-${n === 'server' ? 'srv' : n}-`));
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

  const nodes: NodeState[] = names.map((name, i) => ({
    name, role: i === 0 ? 'server' : 'client', dir: temps[i]!.path, logDir: join(logs.path, name),
    proxy: null, proc: null, starting: null, offline: false, dead: false, stderr: '',
  }));
  const server = nodes[0]!;
  const clients = nodes.slice(1);
  const port = await freePort();
  // In the state directory, known once the server's daemon made its node id (its first start).
  const secret = (): string => secretFile(server.dir);

  /** Start a daemon as its own process, registered for the kill in t.after before it says anything. */
  const startDaemon = (n: NodeState): Promise<void> => {
    const args = n.role === 'server'
      ? ['--listen', `127.0.0.1:${port}`, '--lease-ms', String(cfg.leaseMs)]
      : ['--server', `http://127.0.0.1:${n.proxy!.port}`, '--secret-file', secret()];
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
    if (n.starting !== null) await n.starting.catch(() => {});
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
  const pickClient = (): number => 1 + Math.floor(rng() * clientCount);
  draw('cut', cfg.cuts, pickClient);
  draw('offline', cfg.offline, pickClient);
  draw('kill', cfg.clientKills, pickClient);
  draw('kill', cfg.serverKills, () => 0);
  say(`schedule: ${periods.map((p) => `${p.kind} ${nodes[p.node]!.name} ${p.start}-${p.end}`).join(', ')}`);

  const problems: string[] = [];
  const notes: string[] = [];
  const events: string[] = [];
  const counts = { offline: 0, clientKills: 0, serverKills: 0 };
  const begin = async (p: Period): Promise<void> => {
    const n = nodes[p.node]!;
    if (p.kind === 'cut') {
      n.proxy!.cut();
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
      const r = await cliAsync(['reconnect', n.dir, '--no-wait']); // operations go on meanwhile: the outcome is the end check's
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
  const ops = new Operations(cfg.bigFileRate, cfg.kinds);
  const ledger = ops.ledger;
  const stateOf = (n: NodeState): string => [
    n.dead ? 'dead' : n.starting !== null ? 'starting' : 'up',
    ...(n.offline ? ['offline'] : []), ...(n.proxy?.isCut === true ? ['cut'] : []),
  ].join('+');
  for (let k = 0; k < cfg.ops; k++) {
    for (const p of periods) if (p.start === k) await begin(p);
    for (const p of periods) if (p.end === k) await finish(p);
    const d = drawOp(rng);
    const n = at(nodes, d.node);
    ops.run(n, k, d, Date.now() - t0, stateOf(n));
    const pause = d.pauseChance < cfg.pauseRate ? 200 + Math.floor(d.pauseLen * 1300) : Math.floor(d.pauseLen * 50);
    await sleep(pause);
  }
  say(`operations done in ${Date.now() - t0} ms: ${JSON.stringify(ops.byKind)}, ${ops.skipped} skipped, ${ops.racedOps} raced`);

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

  /** The operations on names (or on directories above them), and those on the names the content had. */
  const explainPath = (p: string | readonly string[], key: string | null): string => {
    const lines = opsOn(typeof p === 'string' ? [p] : p, ops.log, 25);
    if (key !== null && ledger.contents.has(key)) lines.push(...contentHistory(ledger.contents.get(key)!, ledger, ops.log));
    const uniq = [...new Set(lines)];
    return uniq.length === 0 ? ' none' : uniq.map((l) => `\n      ${l}`).join('');
  };

  // ---- check 1: every journal and every disk at the server's digest ----
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
    if (disks.every((x) => x === want) && journals.every((j) => j === want)) {
      converged = true;
      break;
    }
    await sleep(200);
  }
  const convergeMs = Date.now() - healedAt;
  if (!converged) {
    problems.push(`no convergence within ${cfg.convergeMs} ms after healing: ${lastSeen}`);
    // Busy or waiting: each running daemon's CPU time over 2 s (s99 seed 9364: a client's daemon said nothing and
    // answered nothing for 138 s after a reconnection, cause not found; a busy loop shows ~2,000 ms here).
    const cpuMs = (pid: number | undefined): number | null => {
      try {
        const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
        return (Number(f[11]) + Number(f[12])) * 10; // utime + stime, in clock ticks of 10 ms
      } catch {
        return null;
      }
    };
    const running = nodes.filter((n) => n.proc !== null && n.proc.exitCode === null);
    const before = running.map((n) => cpuMs(n.proc!.pid));
    await sleep(2000);
    running.forEach((n, i) => {
      const a = before[i];
      const b = cpuMs(n.proc!.pid);
      problems.push(`  ${n.name}: daemon pid ${n.proc!.pid} used ${a === null || a === undefined || b === null ? '?' : b - a} ms of CPU in the last 2 s`);
    });
    const paths = new Map<string, NodeState>();
    for (const n of nodes) {
      for (const line of await explain(n)) {
        problems.push(`  ${n.name}: ${line}`);
        const m = /^([^ :]+): (journal|on disk)/.exec(line);
        if (m !== null) paths.set(m[1]!, n);
      }
    }
    for (const [p, n] of [...paths].slice(0, 12)) {
      const e = treeOf(n.dir).get(p);
      const key = e === undefined ? null : keyOfEntry(e);
      problems.push(`  operations on ${p}${key === null ? '' : ` (holding ${ledger.display(key)} on ${n.name})`}:${explainPath(p, key)}`);
    }
  } else say(`converged ${convergeMs} ms after healing`);

  // Quiet: every client's status file written after the convergence (it is rewritten every second).
  const quietFrom = Date.now();
  for (const c of clients) {
    while (Date.now() - quietFrom < 5000 && (readStatus(c.dir)?.updatedAt ?? 0) < quietFrom) await sleep(200);
  }

  // ---- check 2: identical trees (names, types, modes, contents, symlink targets, hard-link groups) ----
  const trees = new Map<string, Map<string, TreeEntry>>();
  for (const n of nodes) trees.set(n.name, treeOf(n.dir));
  const serverTree = trees.get('server')!;
  const serverGroups = linkGroupsOf(serverTree);
  let treeDifferences = 0;
  for (const c of clients) {
    const diffs = compareTrees(serverTree, trees.get(c.name)!, 'server', c.name);
    treeDifferences += diffs.length;
    if (diffs.length === 0) continue;
    problems.push(`${c.name}: tree differs from the server's at ${diffs.length} points: ${diffs[0]}`);
    for (const line of diffs.slice(0, 15)) {
      const p = line.slice(0, line.indexOf(': '));
      const e = serverTree.get(p) ?? trees.get(c.name)!.get(p);
      // A hard-link group difference: the operations on every name of either group.
      const group = [...new Set([p, ...(serverGroups.get(p) ?? []), ...(linkGroupsOf(trees.get(c.name)!).get(p) ?? [])])];
      problems.push(`  ${c.name}: ${line}; operations:${explainPath(group, e === undefined ? null : keyOfEntry(e))}`);
    }
  }

  // ---- check 3: nothing acknowledged is lost ----
  const onServer = new Set<string>();
  for (const e of serverTree.values()) if (e.hash !== null) onServer.add(e.hash);
  let live = 0;
  const lost: string[] = [];
  const excused: string[] = [];
  for (const [key, w] of ledger.contents) {
    if (w.supersededBy !== null) continue;
    if (w.raced !== null) {
      excused.push(`${w.id}: ${w.raced}`);
      continue;
    }
    live++;
    if (onServer.has(key)) continue;
    const seenAt = ledger.namesOf(key);
    const racedAt = ledger.raced.find((r) => r.k >= w.k && seenAt.includes(r.path));
    if (racedAt !== undefined) {
      excused.push(`${w.id}: op${racedAt.k} on ${racedAt.node} raced the daemon at ${racedAt.path}`);
      continue;
    }
    if (w.halfGone.length >= 2) {
      excused.push(`${w.id}: names of its hard-linked group were removed by op${w.halfGone.join(', op')}`);
      continue;
    }
    const elsewhere = nodes.filter((n) => [...trees.get(n.name)!].some(([, e]) => e.hash === key))
      .map((n) => `${n.name}:${[...trees.get(n.name)!].filter(([, e]) => e.hash === key).map(([p]) => p).join(',')}`);
    lost.push(`${w.id} (written on ${w.node} at ${w.path}) is not on the server${elsewhere.length > 0 ? `; still on ${elsewhere.join(' ')} (not replicated)` : ', nor on any node (DESTROYED)'}\n${contentHistory(w, ledger, ops.log).map((l) => `      ${l}`).join('\n')}`);
  }
  if (lost.length > 0) problems.push(`${lost.length} of ${live} live contents lost:\n    ${lost.join('\n    ')}`);
  if (excused.length > 0) notes.push(`${excused.length} contents gone but excused (raced or removed at every name): ${excused.slice(0, 6).join('; ')}`);

  // ---- check 4: nothing deleted comes back ----
  const back = new Map<string, { d: PathEvent; nodes: string[]; key: string }>();
  for (const n of nodes) {
    for (const [p, e] of trees.get(n.name)!) {
      const key = keyOfEntry(e);
      if (key === null) continue;
      const d = undoneDeparture(historyAcrossMoves((q) => ledger.eventsAt(q, key), ledger.namesOf(key), p));
      if (d === null) continue;
      const id = `${p}\0${key}`;
      const b = back.get(id) ?? { d, nodes: [], key };
      b.nodes.push(n.name);
      back.set(id, b);
    }
  }
  if (back.size > 0) {
    problems.push(`${back.size} removed contents came back: ${[...back].map(([id, b]) => `${id.split('\0')[0]} on ${b.nodes.join(',')}`).slice(0, 8).join(', ')}`);
    for (const [id, b] of [...back].slice(0, 10)) {
      const p = id.split('\0')[0]!;
      problems.push(`  ${p} holds ${ledger.display(b.key)} again on ${b.nodes.join(',')}: op${b.d.k} on ${b.d.node} removed it and no operation brought it back; operations:${explainPath(p, b.key)}`);
    }
  }

  // ---- check 5: no resync, nothing left in any LML, nothing pending ----
  let resyncs = 0;
  let resyncFailures = 0;
  let digestRescans = 0;
  let refusedAtEnd = 0;
  let conflictLogLines = 0;
  for (const n of nodes) {
    const lines = logLines(n);
    const msgs = lines.map(msgOf);
    const mine = msgs.filter((m) => m.includes('resyncing')).length;
    const failedHere = msgs.filter((m) => m.includes('resync failed')).length;
    const rescans = lines.filter((l) => msgOf(l).includes('rescanning this node\'s disk'));
    digestRescans += rescans.length;
    for (const l of rescans.slice(0, 3)) notes.push(`${n.name}: digest differed, disk rescanned: ${l.slice(0, 300)}`);
    conflictLogLines += msgs.filter((m) => m.startsWith('conflict')).length;
    for (const l of lines) if (l.includes('"level":"error"')) notes.push(`${n.name} log: ${l.slice(0, 400)}`);
    const st = n.role === 'client' ? readStatus(n.dir) : undefined;
    const fromStatus = typeof st?.client?.resyncs === 'number' ? st.client.resyncs : 0;
    const count = Math.max(mine, fromStatus);
    resyncs += count;
    resyncFailures += failedHere;
    if ((count > 0 || failedHere > 0) && cfg.allowResync !== true) {
      const first = lines.filter((l) => /resyncing|resync failed/.test(msgOf(l))).slice(0, 3).map((l) => l.slice(0, 300));
      problems.push(`${n.name}: ${count} resyncs, ${failedHere} failed resyncs${fromStatus > 0 ? ` (status client.resyncs ${fromStatus})` : ''}: ${first.join(' | ')}`);
    }
    if (n.role !== 'client') continue;
    try {
      const lml = journalState(n.dir).lml;
      if (lml > 0) problems.push(`${n.name}: ${lml} records left in its LML at the end`);
    } catch (e) {
      problems.push(`${n.name}: journal unreadable at the end: ${(e as Error).message}`);
    }
    if (st === undefined) notes.push(`${n.name}: no status file at the end`);
    else {
      const pending = st.reint?.pending;
      if (typeof pending === 'number' && pending > 0) problems.push(`${n.name}: status reint shows ${pending} records pending at the end: ${JSON.stringify(st.reint)}`);
      if (st.reint?.waitingForTid !== undefined && st.reint.waitingForTid !== null) notes.push(`${n.name}: status reint waits for TID ${String(st.reint.waitingForTid)} at the end`);
      const refused = st.reint?.refused;
      if (typeof refused === 'number' && refused > 0) {
        refusedAtEnd += refused;
        notes.push(`${n.name}: status reint.refused ${refused} at the end`);
      }
    }
  }

  // ---- check 6: conflict copies stay few ----
  let conflictCopies = 0;
  let nested = 0;
  for (const p of serverTree.keys()) {
    const m = p.split('/').pop()!.match(/\.conflict-/g)?.length ?? 0;
    if (m > 0) conflictCopies++;
    if (m > 1) nested++;
  }
  const opsDone = Object.values(ops.byKind).reduce((a, b) => a + b, 0);
  if (conflictCopies >= Math.max(1, opsDone)) problems.push(`conflict copies exploded: ${conflictCopies} for ${opsDone} operations (${nested} copies of copies)`);

  const summary = problems.length === 0 ? 'ok' : `${problems.length} problem lines, details printed above: ${problems
    .filter((p) => !p.startsWith('  '))
    .map((p) => p.split('\n')[0]!.slice(0, 300))
    .join(' | ')}`;
  const cuts = clients.reduce((a, c) => a + c.proxy!.cuts, 0);
  const result: ChaosResult = {
    seed, summary, clients: clientCount, opsByKind: { ...ops.byKind }, skipped: ops.skipped, raced: ops.racedOps, cuts,
    offlinePeriods: counts.offline, kills: counts.clientKills + counts.serverKills, clientKills: counts.clientKills,
    serverKills: counts.serverKills, conflictCopies, nestedConflictCopies: nested, conflictLogLines, resyncs, resyncFailures,
    digestRescans, refusedAtEnd, contentsWritten: ledger.contents.size, contentsLive: live, lostContents: lost.length, resurrected: back.size,
    treeDifferences, converged, convergeMs, totalMs: Date.now() - t0, problems, notes,
  };
  try {
    writeFileSync(join(logs.path, 'ops.log'), `seed ${seed}, t0 ${t0}\n${events.join('\n')}\n${ops.log.map(formatOp).join('\n')}\n`);
  } catch {
    // the logs folder is gone: nothing to keep
  }
  say(`result: ${JSON.stringify({ ...result, summary: undefined, problems: problems.length, notes: notes.length })}`);
  if (notes.length > 0) say(`${notes.length} notes, first ones:\n${notes.slice(0, 10).join('\n')}`);
  if (ledger.unknown.length > 0) say(`unknown contents met by the harness (daemon placeholders?): ${ledger.unknown.slice(0, 10).join('; ')}`);
  if (problems.length > 0) {
    say(`events: ${events.join('; ')}`);
    say(`PROBLEMS:\n${problems.join('\n')}`);
  } else failed = false;
  say(`summary: ${summaryLine(result)}`);
  return result;
}

/** One line for a run: operations by kind, cuts, kills, conflict copies, resyncs, convergence, problems. */
export function summaryLine(r: ChaosResult): string {
  const kinds = Object.entries(r.opsByKind).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k} ${v}`).join(', ');
  return `seed ${r.seed}, ${r.clients} clients: ops {${kinds}} (${r.skipped} skipped, ${r.raced} raced), cuts ${r.cuts}, offline ${r.offlinePeriods}, kills ${r.clientKills}+${r.serverKills}, conflict copies ${r.conflictCopies}, resyncs ${r.resyncs}, digest rescans ${r.digestRescans}, ${r.converged ? `converged in ${r.convergeMs} ms` : `NOT converged after ${r.convergeMs} ms`}, tree diffs ${r.treeDifferences}, lost ${r.lostContents}, came back ${r.resurrected}, problems ${r.problems.filter((p) => !p.startsWith('  ')).length}, total ${Math.round(r.totalMs / 1000)} s`;
}

/** The operations on the given names or on directories above them (renames of those directories included), last `limit`. */
function opsOn(paths: readonly string[], log: readonly OpLog[], limit: number): string[] {
  const hits = (x: string | undefined): boolean => x !== undefined && paths.some((p) => isUnder(p, x));
  return log.filter((o) => hits(o.path) || hits(o.newPath)).slice(-limit).map(formatOp);
}

/** The operations that concern a content: from its write on, those on every name it had (moves followed). */
function contentHistory(w: Content, ledger: Ledger, log: readonly OpLog[]): string[] {
  const names = ledger.namesOf(w.key);
  return opsOn(names, log.filter((o) => o.k >= w.k), 30);
}

function formatOp(o: OpLog): string {
  return `op${o.k} +${o.at}ms ${o.node}[${o.state}] ${o.kind}${o.path !== '' ? ` ${o.path}` : ''}${o.newPath !== undefined ? ` -> ${o.newPath}` : ''}${o.wrote !== undefined ? ` wrote ${o.wrote}` : ''}${o.moved !== undefined ? ` moving ${o.moved}` : ''}${o.superseded.length > 0 ? ` superseding ${o.superseded.join(',')}` : ''}${o.note !== undefined ? ` (${o.note})` : ''}`;
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
  const st = readStatus(n.dir);
  if (st?.client !== undefined) out.push(`status client ${JSON.stringify(st.client)}`);
  if (st?.reint !== undefined) out.push(`status reint ${JSON.stringify(st.reint)}`);
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
      for (const e of listTree(n.dir)) if (!seen.has(e.path)) out.push(`${e.path}: on disk, not journaled`);
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
