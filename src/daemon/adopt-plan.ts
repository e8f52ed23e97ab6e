/**
 * Adoption, the plan: a client's first start in a directory that already holds the files (a web root of an
 * existing farm) compares the local tree with the server's snapshot and decides, entry by entry, what it
 * keeps without a transfer, what it fetches, and what it treats as a local change under the fileset's
 * conflict policy. Read-only: `--dry-run` prints this plan, a real start carries it out (adopt.ts).
 *
 * A file is the server's when type, content and hard-link grouping match: sizes that differ settle it
 * without reading; equal size and mtime (within 1 ms) settle it as equal (rsync's quick check); else it is hashed.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { META_DIR } from '#core/format.js';
import { formatTid, type Tid } from '#core/ids.js';
import { depthOf, isUnder, joinRel, parentOf } from '#core/paths.js';
import type { SnapshotEntry } from '#net/peer-client.js';
import { decide, formatPolicy, type Decision, type PolicyConfig } from '#policy/conflict-policy.js';
import { hashFileSync, lstatOrNull, readTargetOrNull, type DiskStat } from '#fsio/disk.js';
import { conflictName } from '#core/conflict-name.js';
import { linkGroupsApart } from '#copy/link-groups.js';

/**
 * keep: the server's already (journaled as its version, no transfer); fetch: missing here, or placed again;
 * beside: the local version goes beside the name as a conflict copy (then sent as a new file), the server's
 * comes to the name; save: the local version goes to the fileset's conflicts folder (server-wins), the
 * server's comes; send: the local version stays at the name and is sent over the server's (client-wins;
 * the server's is kept in the conflicts folder); local: only here, sent as a local create.
 */
export type AdoptAction = 'keep' | 'fetch' | 'beside' | 'save' | 'send' | 'local';

export interface AdoptItem {
  readonly path: string;
  readonly action: AdoptAction;
  /** Why, in words (empty for a plain keep). */
  readonly why: string;
  /** The server's entry (null for a local-only object). */
  readonly entry: SnapshotEntry | null;
  /** The server's bytes (fetched unless kept). */
  readonly bytes: number;
  /** The local bytes sent to the server (local-only, kept beside, client-wins). */
  readonly sendBytes: number;
  /** Files (a local-only directory counts what it holds). */
  readonly files: number;
  /** beside / send: the conflict name the local version goes to; save: null (decided when moved). */
  readonly to: string | null;
  /** keep: set the server's mode here (the local mode loses); 'send': the local mode is sent as a change. */
  readonly mode: 'same' | 'set' | 'send';
  /** fetch: the local name holds the server's content but must be re-linked (removed, no transfer). */
  readonly relink: boolean;
}

export interface AdoptPlan {
  readonly tid: Tid;
  readonly policy: string;
  readonly items: readonly AdoptItem[];
  /** Files read to compare their content (size and mtime did not settle it). */
  readonly hashed: number;
}

export interface PlanInput {
  readonly root: string;
  readonly entries: readonly SnapshotEntry[];
  readonly tid: Tid;
  /** This node's id (conflict names) and the server's (the policy's tie-break). */
  readonly node: string;
  readonly serverNode: string;
  readonly policy: PolicyConfig;
  /** The mode an entry is placed with here (the attribute policy may drop set-id bits); null: this node refuses it. */
  readonly modeOf: (e: SnapshotEntry) => number | null;
}

/** The local tree, as lstat data by relative path (the metadata folder left out; symlinks not followed). */
export function walkLocal(root: string): Map<string, DiskStat> {
  const out = new Map<string, DiskStat>();
  const stack = [''];
  while (stack.length > 0) {
    const rel = stack.pop()!;
    let names: string[];
    try {
      names = readdirSync(rel === '' ? root : join(root, rel));
    } catch {
      continue;
    }
    for (const n of names) {
      if (rel === '' && n === META_DIR) continue;
      const p = joinRel(rel, n);
      const st = lstatOrNull(join(root, p));
      if (st === null || st.type === 'other') continue;
      out.set(p, st);
      if (st.type === 'dir') stack.push(p);
    }
  }
  return out;
}

/** Compare the local tree with the snapshot and decide each object's fate. Reads files only to hash them. */
export function planAdoption(i: PlanInput): AdoptPlan {
  const local = walkLocal(i.root);
  // Entries this node refuses (an escaping symlink under safe-links): left out, and what is at their name here is left alone.
  const refused = new Set(i.entries.filter((e) => i.modeOf(e) === null).map((e) => e.path));
  const entries = [...i.entries].filter((e) => !refused.has(e.path)).sort((a, b) => depthOf(a.path) - depthOf(b.path) || (a.path < b.path ? -1 : 1));
  const inSnap = new Set(entries.map((e) => e.path));
  const items: AdoptItem[] = [];
  const given = new Set<string>();
  const movedAway: string[] = []; // local directories that go elsewhere with what they hold
  let hashed = 0;
  const taken = (p: string): boolean => given.has(p) || inSnap.has(p) || local.has(p);
  const conflictTo = (p: string): string => {
    const to = conflictName(p, i.node, i.tid, taken);
    given.add(to);
    return to;
  };
  const base = { why: '', bytes: 0, sendBytes: 0, files: 0, to: null, mode: 'same' as const, relink: false };
  for (const e of entries) {
    const st = local.get(e.path);
    const fetch = (why: string): AdoptItem => ({ ...base, path: e.path, action: 'fetch', why, entry: e, bytes: e.type === 'file' ? e.size ?? 0 : 0, files: e.type === 'file' ? 1 : 0 });
    if (st === undefined || movedAway.some((d) => isUnder(e.path, d))) {
      items.push(fetch('not here'));
      continue;
    }
    const mode = i.modeOf(e)! & 0o7777;
    const diff = differs(i.root, e, st, () => hashed++);
    if (diff === null) {
      const modeDiffers = e.type !== 'symlink' && (st.mode & 0o7777) !== mode;
      const how = modeDiffers ? modeDecision(i, e, st) : 'same';
      items.push({ ...base, path: e.path, action: 'keep', entry: e, files: e.type === 'file' ? 1 : 0, bytes: e.type === 'file' ? e.size ?? 0 : 0, mode: how,
        why: how === 'same' ? '' : `mode ${octal(st.mode)} here, ${octal(mode)} on the server: ${how === 'set' ? 'the server\'s set here' : 'the local one sent'}` });
      continue;
    }
    // A local version that differs: a local change under the fileset's conflict policy.
    let d: Decision = decide(i.policy, { kind: 'write/write', path: e.path, localNode: i.node, remoteNode: i.serverNode, localMtimeMs: st.mtimeMs, remoteMtimeMs: e.mtimeMs });
    // The local version replaces the server's only file for file (or symlink for symlink): a directory is kept beside.
    if (d === 'local' && (st.type === 'dir' || e.type === 'dir' || (e.type === 'file' && e.linkOf !== null))) d = 'keep-both';
    if (st.type === 'dir') movedAway.push(e.path);
    const files = st.type === 'dir' ? countFiles(local, e.path) : st.type === 'file' ? 1 : 0;
    const sendBytes = st.type === 'dir' ? bytesBelow(local, e.path) : st.type === 'file' ? st.size : 0;
    const server = e.type === 'file' ? e.size ?? 0 : 0;
    if (d === 'keep-both') {
      items.push({ ...base, path: e.path, action: 'beside', why: diff, entry: e, bytes: server, sendBytes, files, to: conflictTo(e.path) });
    } else if (d === 'remote') {
      items.push({ ...base, path: e.path, action: 'save', why: `${diff}; ${i.policy.discard ? 'the local version discarded' : 'the local version kept in the conflicts folder'}`, entry: e, bytes: server, files });
    } else {
      items.push({ ...base, path: e.path, action: 'send', why: `${diff}; the local version replaces the server's`, entry: e, bytes: server, sendBytes, files, to: conflictTo(e.path) });
    }
  }
  relinks(i, items);
  // What only this node has: sent as local creates (a directory once, with what it holds).
  for (const [p, st] of local) {
    if (inSnap.has(p) || refused.has(p) || movedAway.some((d) => isUnder(p, d))) continue;
    const parent = parentOf(p);
    if (parent !== '' && !inSnap.has(parent)) continue; // below a local-only directory: counted with it
    const files = st.type === 'dir' ? countFiles(local, p) : st.type === 'file' ? 1 : 0;
    items.push({ ...base, path: p, action: 'local', why: 'only here', entry: null, sendBytes: st.type === 'dir' ? bytesBelow(local, p) : st.type === 'file' ? st.size : 0, files });
  }
  return { tid: i.tid, policy: formatPolicy(i.policy), items, hashed };
}

/**
 * Why the local object is not the server's entry, or null when it is (modes aside). `onHash` counts the
 * files read.
 */
function differs(root: string, e: SnapshotEntry, st: DiskStat, onHash: () => void): string | null {
  if (st.type !== e.type) return `a ${st.type} here, a ${e.type} on the server`;
  if (e.type === 'dir') return null;
  if (e.type === 'symlink') {
    const t = readTargetOrNull(join(root, e.path));
    return t === e.target ? null : `symlink to ${t ?? '?'} here, to ${e.target ?? '?'} on the server`;
  }
  if (st.size !== e.size) return `${st.size} bytes here, ${e.size ?? 0} on the server`;
  // Within a millisecond: copies keep mtimes at that precision (cp -p, rsync -t through utimes with a float).
  if (Math.abs(st.mtimeMs - e.mtimeMs) < 1) return null;
  onHash();
  return hashFileSync(join(root, e.path)) === e.hash ? null : 'other content';
}

/** An identical object whose mode differs: the policy says whose mode stays (keep-both cannot keep two: the server's). */
function modeDecision(i: PlanInput, e: SnapshotEntry, st: DiskStat): 'set' | 'send' {
  const d = decide(i.policy, { kind: 'setattr/write', path: e.path, localNode: i.node, remoteNode: i.serverNode, localMtimeMs: st.mtimeMs, remoteMtimeMs: e.mtimeMs });
  return d === 'local' ? 'send' : 'set';
}

/**
 * Kept files whose hard-link grouping here is not the server's: a name the server links to another is
 * removed here and linked again by the copy (same content, no transfer); a name of a group of its own on
 * the server is given an inode of its own (adopt.ts).
 */
function relinks(i: PlanInput, items: AdoptItem[]): void {
  const kept = new Map(items.filter((x) => x.action === 'keep' && x.entry?.type === 'file').map((x) => [x.path, x]));
  if (kept.size === 0) return;
  const apart = linkGroupsApart(i.root, [...kept.values()].map((x) => x.entry!), (e) => kept.has(e.path));
  for (let n = 0; n < items.length; n++) {
    const x = items[n]!;
    if (x.action !== 'keep' || !apart.has(x.path) || x.entry === null) continue;
    items[n] = x.entry.linkOf === null
      ? { ...x, relink: true, why: 'hard links grouped otherwise here: given an inode of its own' }
      : { ...x, action: 'fetch', relink: true, bytes: 0, why: `hard links grouped otherwise here: linked to ${x.entry.linkOf} again` };
  }
}

function countFiles(local: ReadonlyMap<string, DiskStat>, dir: string): number {
  let n = 0;
  for (const [p, st] of local) if (st.type === 'file' && isUnder(p, dir) && p !== dir) n++;
  return n;
}

function bytesBelow(local: ReadonlyMap<string, DiskStat>, dir: string): number {
  let n = 0;
  for (const [p, st] of local) if (st.type === 'file' && isUnder(p, dir) && p !== dir) n += st.size;
  return n;
}

const octal = (m: number): string => (m & 0o7777).toString(8).padStart(4, '0');

export interface AdoptSummary {
  readonly tid: string;
  readonly policy: string;
  readonly kept: { readonly files: number; readonly bytes: number };
  readonly fetched: { readonly files: number; readonly bytes: number };
  readonly keptBeside: number;
  readonly savedAside: number;
  readonly sent: { readonly files: number; readonly bytes: number };
  readonly modesSet: number;
  readonly hashed: number;
}

/** The counts people read: files kept, fetched, kept beside, saved in the conflicts folder, sent. */
export function summarize(p: AdoptPlan): AdoptSummary {
  const sum = (f: (x: AdoptItem) => boolean, v: (x: AdoptItem) => number): number => p.items.filter(f).reduce((n, x) => n + v(x), 0);
  // client-wins fetches the server's version too: it is kept in the conflicts folder.
  const fetching = (x: AdoptItem): boolean => (x.action === 'fetch' && !x.relink) || x.action === 'beside' || x.action === 'save' || x.action === 'send';
  const sending = (x: AdoptItem): boolean => x.action === 'local' || x.action === 'send' || x.action === 'beside';
  return {
    tid: formatTid(p.tid), policy: p.policy,
    kept: { files: sum((x) => x.action === 'keep' && x.entry?.type === 'file', () => 1), bytes: sum((x) => x.action === 'keep', (x) => x.bytes) },
    fetched: { files: sum((x) => fetching(x) && x.entry?.type === 'file', () => 1), bytes: sum(fetching, (x) => x.bytes) },
    keptBeside: sum((x) => x.action === 'beside', () => 1),
    savedAside: sum((x) => x.action === 'save', () => 1),
    sent: { files: sum(sending, (x) => x.files), bytes: sum(sending, (x) => x.sendBytes) },
    modesSet: sum((x) => x.mode === 'set', () => 1),
    hashed: p.hashed,
  };
}
