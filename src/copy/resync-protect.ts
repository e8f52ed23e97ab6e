import { copyFileSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { sha256Hex } from '#core/sha256.js';
import { NO_VERSION, asTid, type Fid, type Tid } from '#core/ids.js';
import { baseName, isUnder, joinRel, parentOf } from '#core/paths.js';
import type { LmlRecord } from '#core/record.js';
import type { SnapshotEntry } from '#net/snapshot-source.js';
import type { ObjectRow } from '#journal/fileset-db.js';
import { lstatOrNull, readTargetOrNull } from '#fsio/disk.js';
import { unchanged } from '#presto/scan.js';
import { conflictName } from '#core/conflict-name.js';
import type { CopyDeps } from './copy-deps.js';

// A resync rebuilds a client's state from the server's snapshot. Its rule: it never removes a byte the server
// has not acknowledged, and it never leaves a pending local record for an object that is not there.

type Deps = Pick<CopyDeps, 'db' | 'apply' | 'root' | 'log' | 'stuck'>;

/** Local versions to put back beside their name once the snapshot is placed: [saved file, name]. */
export type PutBack = Array<[string, string]>;

/**
 * Before a resync, decide about local changes not accepted yet: an object the server has not changed
 * since keeps its local changes (they reintegrate as they are; a directory the server moved brings it
 * along, see moveDir); one it changed or removed gives its name to the server's version, and a local
 * content change comes back beside it (keep-both). A local delete or attribute change loses to the
 * server's change; no data is lost either way.
 */
export function protectLocal(
  d: Deps, snapshot: readonly SnapshotEntry[], tid: Tid, earlier: PutBack = [],
): { skip: Set<string>; putBack: PutBack; entries: SnapshotEntry[]; here: (e: SnapshotEntry) => SnapshotEntry } {
  const skip = new Set<string>();
  const putBack: PutBack = [...earlier];
  const byFid = new Map(snapshot.map((e) => [e.fid, e]));
  const pending = new Map<string, LmlRecord[]>();
  for (const r of d.db.readLml(0n, 1_000_000)) pending.set(r.fid, [...(pending.get(r.fid) ?? []), r]);
  const made: Fid[] = [];
  const remake: Fid[] = [];
  const removedHere = new Set<string>();
  for (const [fid, recs] of pending) {
    const o = d.db.objectByFid(fid as Fid);
    const e = byFid.get(fid as Fid);
    const stuck = d.stuck?.has(fid as Fid) === true;
    if (o !== undefined && o.version === NO_VERSION) {
      made.push(o.fid);
      // Made here, its records refused again and again: it is journaled afresh once placed (a new object; a
      // directory with what is below it, as the scan finds it).
      if (stuck) remake.push(o.fid);
      continue;
    }
    // Its records refused again and again: the server's version takes the name, the local one comes beside.
    if (stuck) {
      saveLocal(d, fid as Fid, recs, e?.path, putBack);
      continue;
    }
    // Unchanged on the server since, and the local changes made on that version: they apply on it as they are.
    // (Changes journaled against an older version than this node's cannot: they go like a change on the server.)
    if (o !== undefined && e !== undefined && asTid(BigInt(e.version)) === o.version && recs.every((r) => r.preVersion === o.version)) {
      skip.add(fid);
      continue;
    }
    // Removed here (a file or symlink), unchanged on the server since: the removal reintegrates as it is, and
    // the snapshot must not bring the object back meanwhile.
    if (o === undefined && e !== undefined && e.type !== 'dir' && recs.every((r) => r.preVersion === asTid(BigInt(e.version)))) {
      skip.add(fid);
      removedHere.add(fid);
      continue;
    }
    saveLocal(d, fid as Fid, recs, e?.path, putBack);
  }
  undoCycles(d, snapshot, skip);
  const entries = localNames(d, snapshot, skip);
  for (const fid of made) {
    // Made here: the server does not know it. Keep it, unless its name is the server's now (not when the
    // server's object there is removed here: a file replaced here keeps its name).
    const o = d.db.objectByFid(fid);
    if (o === undefined || !entries.some((x) => x.path === o.path && !removedHere.has(x.fid))) continue;
    const to = conflictName(o.path, d.db.meta.nodeId, tid, (q) => d.db.objectByPath(q) !== undefined || lstatOrNull(join(d.root, q)) !== null);
    renameSync(join(d.root, o.path), join(d.root, to));
    d.db.relocateLocal(o.fid, to);
  }
  for (const fid of remake) {
    // Its row and records go; the file stays where it is, and capture's scan after the resync journals it as
    // a new object, made on the server's state of now (what was refused cannot be refused again).
    const o = d.db.objectByFid(fid);
    d.db.forget(fid);
    d.log.warn({ path: o?.path, fid }, 'resync: a local object whose changes the server kept refusing is journaled again as new');
  }
  return { skip, putBack, entries, here: localNamer(d, snapshot, skip) };
}

/**
 * A directory kept here with its pending move into one that the server moved into it (b into a here, a into
 * b there): in this node's names the server's directory would go inside itself, and the resync would remove
 * it with what the server holds in it. The server's move stands, as on the forwarded path
 * (ConflictResolver#breakCycle): the local move is undone, back to the server's name of the directory, with
 * what it holds and the pending records below it. Before, a resync past the server's retention removed the
 * server's files below the directory on every node.
 */
function undoCycles(d: Deps, snapshot: readonly SnapshotEntry[], skip: Set<string>): void {
  const byFid = new Map(snapshot.map((e) => [e.fid, e]));
  // Only a kept directory elsewhere here than on the server can make one (no lookup per entry otherwise).
  const movedHere = (): boolean => [...skip].some((fid) => {
    const e = byFid.get(fid as Fid);
    return e?.type === 'dir' && d.db.objectByFid(fid as Fid)?.path !== e.path;
  });
  for (let pass = 0; pass < 16 && movedHere(); pass++) {
    const cyc = localNames(d, snapshot, skip).find((x) => {
      const o = x.type === 'dir' ? d.db.objectByFid(x.fid as Fid) : undefined;
      return o?.type === 'dir' && x.path !== o.path && isUnder(x.path, o.path);
    });
    if (cyc === undefined) return;
    const outer = d.db.objectByFid(cyc.fid as Fid)!.path;
    // The kept directory the local name goes through, inside the one the server moves: the deepest first.
    const inner = [...skip].map((fid) => d.db.objectByFid(fid as Fid)).filter((o) => o?.type === 'dir' && o.path !== outer
      && isUnder(o.path, outer) && isUnder(cyc.path, o.path) && byFid.has(o.fid)).sort((a, b) => b!.path.length - a!.path.length)[0];
    const to = inner === undefined ? undefined : byFid.get(inner.fid)!.path;
    if (inner === undefined || to === undefined || d.db.objectByPath(to) !== undefined || lstatOrNull(join(d.root, to)) !== null
      || lstatOrNull(join(d.root, parentOf(to) === '' ? '.' : parentOf(to)))?.type !== 'dir') return;
    renameSync(join(d.root, inner.path), join(d.root, to));
    d.db.relocateLocal(inner.fid, to);
    d.db.rewriteLml([], d.db.localRecordsOf(inner.fid).filter((y) => y.kind === 'rename' && y.path === y.newPath).map((y) => y.seq));
    if (!d.db.hasPendingLocal(inner.fid)) skip.delete(inner.fid);
    d.log.warn({ path: to, was: inner.path, into: cyc.path }, 'resync: a directory moved here into one the server moved into it: moved back');
  }
}

/**
 * The snapshot's entries at their names here: a directory kept with a pending local rename (the server
 * will get it) holds the server's entries below its local name, so they are placed there, not at the
 * server's name (whose parent is not here).
 */
function localNames(d: Deps, snapshot: readonly SnapshotEntry[], skip: ReadonlySet<string>): SnapshotEntry[] {
  return snapshot.map(localNamer(d, snapshot, skip));
}

/**
 * A snapshot entry at its name here now: below a directory kept with its pending move (in `skip`), at that
 * directory's name here, and a hard link's other name likewise. Asked again for each entry as it is placed:
 * the placement moves directories as it goes (moveDir, evacuate), and an entry below one of them goes where
 * it went. Before, the names were taken once, before anything moved: an entry below a kept directory that
 * `evacuate` had moved beside was placed at the old name ("parent … does not exist here"), the resync failed
 * half-way again and again, and capture journaled the half-done tree (chaos seed 9269: a server file removed).
 */
export function localNamer(d: Deps, snapshot: readonly SnapshotEntry[], skip: ReadonlySet<string>): (e: SnapshotEntry) => SnapshotEntry {
  const server = new Map(snapshot.map((e) => [e.fid, e]));
  const byPath = new Map(snapshot.map((e) => [e.path, e]));
  // Kept directories only (skip only shrinks from here on): the names are looked at again after every move or
  // removal the placement makes, which must cost the few kept directories, not the whole snapshot's.
  const dirs = snapshot.filter((e) => e.type === 'dir' && skip.has(e.fid));
  let seen: { relocations: number; skipped: number } | null = null;
  let moves: Array<[string, string]> = [];
  const map = (p: string): string => {
    const m = moves.find(([from]) => isUnder(p, from));
    return m === undefined ? p : `${m[1]}${p.slice(m[0].length)}`;
  };
  return (entry) => {
    if (seen === null || seen.relocations !== d.db.relocations || seen.skipped !== skip.size) {
      moves = [];
      for (const e of dirs) {
        if (!skip.has(e.fid)) continue;
        const here = d.db.objectByFid(e.fid as Fid)?.path;
        if (here !== undefined && here !== e.path) moves.push([e.path, here]);
      }
      moves.sort((a, b) => b[0].length - a[0].length); // the longest (deepest) prefix first
      seen = { relocations: d.db.relocations, skipped: skip.size };
    }
    const e = server.get(entry.fid) ?? entry;
    // A hard link's other name is the server's object at that path: kept here with its local changes (a
    // pending rename of its own), it is where that object is here.
    const linkOf = (p: string): string => {
      const t = byPath.get(p);
      const here = t !== undefined && skip.has(t.fid) ? d.db.objectByFid(t.fid as Fid)?.path : undefined;
      return here ?? map(p);
    };
    return { ...e, path: map(e.path), linkOf: e.linkOf === null ? null : linkOf(e.linkOf) };
  };
}

/** Keep the local content of `fid` (when it changed here) to put back beside `name`, and drop its pending records. */
function saveLocal(d: Deps, fid: Fid, recs: readonly LmlRecord[], name: string | undefined, putBack: PutBack): void {
  const o = d.db.objectByFid(fid);
  const contentHere = recs.some((r) => r.kind === 'write' || r.kind === 'truncate');
  if (o !== undefined && o.type === 'file' && contentHere && lstatOrNull(join(d.root, o.path)) !== null) {
    // Outside tmp/ (cleared at start) and noted in the journal before its records go: a resync that fails
    // or is killed before it puts the copy back finds it at its next try (pendingPutBack).
    const dir = keptDir(d);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const saved = join(dir, `resync-${fid}-${Date.now()}`);
    copyFileSync(join(d.root, o.path), saved);
    putBack.push([saved, name ?? o.path]);
    d.db.setMeta(PUT_BACK, JSON.stringify(putBack));
  }
  d.db.dropLocal(fid);
}

const PUT_BACK = 'resync_put_back';

function keptDir(d: Deps): string {
  return join(d.apply.stagedPath('resync'), '..', '..', 'resync-kept');
}

/** Local versions an earlier resync saved and did not put back (it failed or was killed): put back by this one. */
export function pendingPutBack(d: Deps): PutBack {
  try {
    const list = JSON.parse(d.db.getMeta(PUT_BACK) ?? '[]') as PutBack;
    return list.filter(([saved]) => lstatOrNull(saved) !== null);
  } catch {
    return [];
  }
}

/**
 * Objects kept by protectLocal that are not at the server's name for them, with no pending rename of their
 * own (a directory of theirs the server moved could not be moved here): their changes are kept beside like any
 * other, so that the server's version can take its place. Returns the entries to place now.
 */
export function misplaced(d: Deps, skip: Set<string>, entries: readonly SnapshotEntry[], putBack: PutBack): SnapshotEntry[] {
  const out: SnapshotEntry[] = [];
  for (const e of entries) {
    if (!skip.has(e.fid)) continue;
    const recs = d.db.localRecordsOf(e.fid as Fid);
    const o = d.db.objectByFid(e.fid as Fid);
    // At its name, or moved here on purpose (its own pending rename says where from): in place.
    if (recs.length === 0 || o === undefined || o.path === e.path || recs.some((r) => r.kind === 'rename')) continue;
    skip.delete(e.fid);
    saveLocal(d, e.fid as Fid, recs, e.path, putBack);
    out.push(e);
  }
  return out;
}

/**
 * A directory the server moved: move it here from `from` to `to`, with all it holds and the pending records
 * of what is below (FilesetDb.relocateLocal). False when it cannot (the new name is held here, or its parent
 * is missing): the caller falls back to removing it, after `evacuate`.
 */
export function moveDir(d: Deps, from: string, to: string): boolean {
  if (from === to || isUnder(to, from)) return false;
  if (d.db.objectByPath(to) !== undefined || lstatOrNull(join(d.root, to)) !== null) return false;
  if (lstatOrNull(join(d.root, parentOf(to) === '' ? '.' : parentOf(to)))?.type !== 'dir') return false;
  const fid = d.db.objectByPath(from)?.fid;
  if (fid === undefined || lstatOrNull(join(d.root, from))?.type !== 'dir') return false;
  renameSync(join(d.root, from), join(d.root, to));
  d.db.relocateLocal(fid, to);
  d.log.info({ from, to }, 'resync: a directory the server moved is moved here too, with what it holds');
  return true;
}

/**
 * Before a directory is removed by a resync: everything below it that holds local changes the server has not
 * accepted (objects made here, objects with pending records) moves beside the directory, under a conflict
 * name, with its records, so the removal takes nothing that was not acknowledged.
 */
export function evacuate(d: Deps, dir: string, tid: Tid): void {
  const below = d.db.objectsBelow(dir).sort((a, b) => a.path.length - b.path.length);
  const moved: string[] = [];
  for (const o of below) {
    if (moved.some((m) => isUnder(o.path, m))) continue; // travels with a directory moved already
    const anyPending = o.version === NO_VERSION || d.db.hasPendingLocal(o.fid) ||
      (o.type === 'dir' && d.db.objectsBelow(o.path).some((x) => x.version === NO_VERSION || d.db.hasPendingLocal(x.fid)));
    if (!anyPending || lstatOrNull(join(d.root, o.path)) === null) continue;
    if (o.type === 'dir' && o.version !== NO_VERSION && !d.db.hasPendingLocal(o.fid)) continue; // its pending entries move one by one
    const to = conflictName(joinRel(parentOf(dir), baseName(o.path)), d.db.meta.nodeId, tid,
      (q) => d.db.objectByPath(q) !== undefined || lstatOrNull(join(d.root, q)) !== null);
    renameSync(join(d.root, o.path), join(d.root, to));
    d.db.relocateLocal(o.fid, to);
    moved.push(o.path);
    d.log.warn({ path: o.path, keptAs: to }, 'resync: the server removed or moved a directory holding local changes; kept beside it');
  }
  // What is on disk below it and not journaled as it is (capture has not seen it yet, or it changed since):
  // content no record holds yet, kept beside too, never removed with the directory. Capture's scan after
  // the resync journals it as a new local file. Before, `rm -r` of the directory took it (chaos seed 9208:
  // a file replaced by rename a moment before, DESTROYED).
  for (const rel of unjournaledBelow(d, dir)) {
    if (moved.some((m) => isUnder(rel, m))) continue;
    const to = conflictName(joinRel(parentOf(dir), baseName(rel)), d.db.meta.nodeId, tid,
      (q) => d.db.objectByPath(q) !== undefined || lstatOrNull(join(d.root, q)) !== null);
    renameSync(join(d.root, rel), join(d.root, to));
    moved.push(rel);
    d.log.warn({ path: rel, keptAs: to }, 'resync: the server removed or moved a directory holding what was not journaled yet here; kept beside it');
  }
}

/**
 * A file or symlink the server no longer has, about to be removed by a resync: when what is on disk is not
 * what the journal holds (changed and not journaled yet), it is kept beside instead. True when kept.
 */
export function keepIfChanged(d: Deps, path: string, tid: Tid): boolean {
  if (!differsFromTable(d, path)) return false;
  const to = conflictName(path, d.db.meta.nodeId, tid, (q) => d.db.objectByPath(q) !== undefined || lstatOrNull(join(d.root, q)) !== null);
  renameSync(join(d.root, path), join(d.root, to));
  d.log.warn({ path, keptAs: to }, 'resync: the server no longer has a name whose content changed here and was not journaled yet; kept beside it');
  return true;
}

/**
 * A file about to be placed again with the server's content: what it holds here is kept beside it, as a local
 * file capture journals, when the server never acknowledged that content. That is content the journal holds
 * at the server's version or a newer one with another hash (journaled here, never sent: a bookkeeping fault
 * elsewhere), or content on disk that the journal does not hold. A resync never removes a byte the server has
 * not acknowledged; before, it placed the server's content over such a file (a write through a hard link
 * whose journaling went astray, from chaos s54 seed 9250; test/resync-protect.test.ts). Returns the name kept.
 */
export function keepUnacknowledged(d: Deps, o: ObjectRow, e: SnapshotEntry, tid: Tid): string | null {
  if (o.type !== 'file' || behind(d).has(o.fid)) return null; // a stand-in for content still to come is no one's
  const abs = join(d.root, o.path);
  if (lstatOrNull(abs)?.type !== 'file') return null;
  const serverVersion = asTid(BigInt(e.version));
  const unsent = o.hash !== e.hash && o.version >= serverVersion;
  if (!unsent && !differsFromTable(d, o.path)) return null;
  const hash = fileHash(abs);
  if (hash === null || hash === e.hash) return null; // the server's content already
  const to = conflictName(o.path, d.db.meta.nodeId, tid, (q) => d.db.objectByPath(q) !== undefined || lstatOrNull(join(d.root, q)) !== null);
  copyFileSync(abs, join(d.root, to));
  d.log.warn({ path: o.path, keptAs: to }, 'resync: content here the server never acknowledged is kept beside');
  return to;
}

/** Files whose content here is a stand-in for the server's, still to be fetched (ClientNode's `content_behind`). */
function behind(d: Deps): Set<string> {
  try {
    const list = JSON.parse(d.db.getMeta('content_behind') ?? '[]') as unknown;
    return new Set(Array.isArray(list) ? list.filter((x): x is string => typeof x === 'string') : []);
  } catch {
    return new Set();
  }
}

/** What is at `path` on disk is not what the object table holds there (a directory: itself only). */
function differsFromTable(d: Deps, p: string): boolean {
  const st = lstatOrNull(join(d.root, p));
  if (st === null) return false;
  const row = d.db.objectByPath(p);
  if (row === undefined || row.type !== st.type) return true;
  if (st.type === 'symlink') return readTargetOrNull(join(d.root, p)) !== row.target;
  return st.type === 'file' && !unchanged(row, st) && fileHash(join(d.root, p)) !== row.hash;
}

/**
 * Names below `dir` on disk that the object table does not hold as they are: not in it, another type, a
 * symlink with another target, or a file whose content is not the row's (stat data first, the hash when
 * they differ). A directory not in the table is one name (everything in it is unjournaled).
 */
function unjournaledBelow(d: Deps, dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    let names: string[];
    try {
      names = readdirSync(join(d.root, rel));
    } catch {
      return;
    }
    for (const name of names.sort()) {
      const p = joinRel(rel, name);
      if (differsFromTable(d, p)) out.push(p);
      else if (lstatOrNull(join(d.root, p))?.type === 'dir') walk(p);
    }
  };
  walk(dir);
  return out;
}

function fileHash(abs: string): string | null {
  try {
    return sha256Hex(readFileSync(abs));
  } catch {
    return null;
  }
}

/** Put the saved local versions back beside their names (in the nearest directory that exists); the names kept. */
export function putBackAside(d: Deps, putBack: PutBack, tid: Tid): string[] {
  const kept: string[] = [];
  for (const [saved, name] of putBack) {
    if (lstatOrNull(saved) === null) continue; // put back already
    let dir = parentOf(name);
    while (dir !== '' && lstatOrNull(join(d.root, dir))?.type !== 'dir') dir = parentOf(dir);
    const to = conflictName(joinRel(dir, baseName(name)), d.db.meta.nodeId, tid,
      (q) => d.db.objectByPath(q) !== undefined || lstatOrNull(join(d.root, q)) !== null);
    mkdirSync(join(d.root, dir === '' ? '.' : dir), { recursive: true });
    copyFileSync(saved, join(d.root, to));
    rmSync(saved, { force: true });
    kept.push(to);
    d.log.warn({ path: name, keptAs: to }, 'resync: a local version the server replaced is kept beside it');
  }
  d.db.setMeta(PUT_BACK, '[]');
  return kept;
}
