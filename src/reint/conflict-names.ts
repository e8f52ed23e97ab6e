import { join } from 'node:path';
import { NO_VERSION, ROOT_FID, formatTid, type Fid, type NodeId, type Tid } from '#core/ids.js';
import { isUnder, parentOf } from '#core/paths.js';
import type { KmlRecord, LmlRecord } from '#core/record.js';
import { placedHere } from '#apply/placed.js';
import { lstatOrNull } from '#fsio/disk.js';
import { decideConflict, record } from './conflict-decide.js';
import { conflictPath, move } from './conflict-disk.js';
import { keepFile, remove, unguardedRename } from './conflict-redo.js';
import type { Redo, ResolverState } from './conflict-state.js';
import { localNamesOf, renamesOver } from './local-names.js';

// The name step: who holds a name the server's record needs (a local object goes beside it, or the two
// directories made on both sides merge), local records that need a name the server has given, and a name
// given back once the server frees it (reclaim); with the name cases met outside the conflict step, a pending
// record the server refuses for its name (setAside) and a move cycle (breakCycle).

/** Names the record needs, held here by another object the server does not have there. */
export async function nameStep(s: ResolverState, r: KmlRecord, redo: Redo[]): Promise<boolean> {
  const db = s.d.db;
  const names = r.kind === 'rename' ? [r.newPath!] : ['create', 'mkdir', 'symlink', 'link'].includes(r.kind) ? [r.path] : [];
  // The record's directory (by fid) is not here, and another one holds its name here (moved over it when it
  // was empty): what this node has at the name is in the other directory, no rival of the new name, and
  // parentStep brings the record's directory back first (removedParent). Before, the local object at the
  // name was set beside, and kept a conflict name the server never gave it (chaos s38 seed 9221, c2: "state
  // differs … with nothing pending", a resync; test/long/moved-over-same-name.test.ts).
  const elsewhere = (name: string): boolean => {
    if (r.parent === undefined || r.parent === null || r.parent === ROOT_FID || db.objectByFid(r.parent) !== undefined) return false;
    const dir = parentOf(name) === '' ? undefined : db.objectByPath(parentOf(name));
    return dir !== undefined && dir.fid !== r.parent;
  };
  for (const name of names) {
    if (elsewhere(name)) continue;
    // A local create (or move) onto this name not accepted yet, whose object has moved on here since: the
    // server would refuse it for ever (the name is the server's now). It ships under a conflict name, and
    // its later move follows from there. (Records below a directory made there keep their paths: a gap.)
    for (const x of db.pendingOnto(name)) {
      const now = db.objectByFid(x.fid);
      if (x.fid === r.fid || now?.path === name) continue;
      // Its directory moved on by a later pending rename (and another one took its name since): the record
      // names another directory than `name` does in this node's names now, and replays before that move on
      // the server. No rival. Before, it shipped under a conflict name while its file kept its own (chaos s58
      // seed 9265; test/long/made-in-moved-dir.test.ts).
      if (db.nameAfter(parentOf(name), x.seq) !== parentOf(name)) continue;
      // So when it gives its name in another directory (RecordDraft.parent) than the one at the name's parent
      // here now, whatever its path says (a conflict step set its directory aside, the record kept the old
      // name): the server places it by that directory (chaos s61 seed 9246; test/long/made-in-set-aside-dir).
      const dirHere = parentOf(name) === '' ? ROOT_FID : db.objectByPath(parentOf(name))?.fid;
      if (x.parent !== undefined && x.parent !== null && dirHere !== undefined && x.parent !== dirHere) continue;
      // With no pending move of its own after it, nothing in the LML takes it from the name to where it is
      // here (a conflict step's move whose records kept the old name): it ships at its name here. Before, it
      // shipped under a fresh conflict name, the client held it at the other, and resynced ("state differs …
      // with nothing pending"; chaos s41 seeds 9270, 9275, s42 9247, s43 9301;
      // test/long/made-here-elsewhere.test.ts).
      const movesOn = db.localRecordsOf(x.fid).some((y) => y.seq > x.seq && y.kind === 'rename');
      // (Beside it, in the same directory: the record's directory, by fid, stays right.)
      const here = !movesOn && now !== undefined && parentOf(now.path) === parentOf(name) && db.pendingOnto(now.path).every((y) => y.fid === x.fid);
      const aside = here ? now.path : conflictPath(s, name, r.tid);
      db.renameInLml(x.fid, x.seq, name, aside);
      s.touched = true;
      record(s, r, name, 'name/name', 'keep-both', aside, 'resolved', 'a local change not accepted yet needed this name; it ships under another');
      s.d.log.info({ seq: String(x.seq), kind: x.kind, path: name, to: aside, at: now?.path, tid: formatTid(r.tid) }, 'a local change not accepted yet needed a name the server gave: it ships under another');
    }
    const o = db.objectByPath(name);
    if (o === undefined || o.fid === r.fid) continue;
    if (o.version !== NO_VERSION && o.version > r.tid) {
      // The name is ours by a later server record (our change, accepted before the stream brought this older
      // one): step aside for now; our record puts it back when it arrives (settleOwnName (daemon/client-own.ts)).
      const aside = conflictPath(s, name, r.tid);
      move(s, name, aside);
      db.relocateLocal(o.fid, aside);
      s.touched = true;
      s.d.log.info({ path: name, aside, tid: formatTid(r.tid), ours: formatTid(o.version) }, 'name held by our own later change: stepped aside until its record arrives');
      continue;
    }
    // Both made this directory: one it is. Only a directory made at this name merges; one moved here by a
    // pending rename is another object (the server would refuse the rename of its merged fid for ever).
    if (r.kind === 'mkdir' && o.type === 'dir' && o.version === NO_VERSION && madeHere(s, o.fid, name)) {
      db.adoptDir(o.fid, r, s.d.serverNode(), s.d.clock.now());
      record(s, r, name, 'name/name', 'keep-both', null, 'resolved', 'same directory on both sides: merged');
      return true;
    }
    const decision = decideConflict(s, r, name, 'name/name', o);
    const aside = conflictPath(s, name, r.tid);
    move(s, name, aside);
    db.relocateLocal(o.fid, aside);
    s.touched = true;
    if (decision === 'remote' && o.type === 'file') {
      // The server's object takes the name; the local one leaves the tree, kept in the conflicts folder.
      const kept = keepFile(s, aside, name, r.tid);
      db.dropLocal(o.fid);
      db.forget(o.fid);
      remove(s, aside);
      record(s, r, name, 'name/name', decision, kept, 'resolved', 'the server\'s object took the name');
    } else if (decision === 'local') {
      // The local object takes the name back once the server's is in place; the server's moves beside it.
      redo.push(() => {
        const theirs = conflictPath(s, name, r.tid);
        unguardedRename(s, name, theirs);
        unguardedRename(s, aside, name);
      });
      record(s, r, name, 'name/name', decision, null, 'resolved', 'the local object keeps the name');
    } else {
      record(s, r, name, 'name/name', 'keep-both', aside, 'open', null);
      s.d.log.warn({ path: name, keptAs: aside, tid: formatTid(r.tid) }, 'conflict: name taken on both sides; local kept beside');
    }
  }
  return false;
}

/** The object was made at `name` here and has not moved since (its pending records say so). */
function madeHere(s: ResolverState, fid: Fid, name: string): boolean {
  const recs = s.d.db.localRecordsOf(fid);
  return recs.some((x) => x.kind === 'mkdir' && x.path === name) && !recs.some((x) => x.kind === 'rename');
}

/**
 * A pending record that makes an object at a name, or moves one onto it, that the server keeps refusing
 * because another object has the name there, while this node holds all the server's records (the step
 * that meets the server's record at that name did not see it coming: it came with a directory, or while
 * this record was on its way). Like that step's keep-both: the local object goes beside the name, here and
 * in its pending records, and ships there. Returns where it went, or null when it cannot. Before, the
 * client resynced the whole fileset.
 */
export function setAside(s: ResolverState, x: LmlRecord, serverTid: Tid): string | null {
  const db = s.d.db;
  const name = x.kind === 'rename' ? x.newPath : ['create', 'mkdir', 'symlink', 'link'].includes(x.kind) ? x.path : null;
  if (name === null) return null;
  const aside = conflictPath(s, name, serverTid);
  const o = db.objectByFid(x.fid);
  if (o !== undefined && o.path === name) {
    move(s, name, aside);
    db.relocateLocal(o.fid, aside);
  } else {
    db.renameInLml(x.fid, x.seq, name, aside); // moved on here since: only its records name it
  }
  record(s, { tid: serverTid, origin: s.d.serverNode() as NodeId }, name, 'name/name', 'keep-both', aside, 'open', 'the server has another object at this name');
  s.d.log.warn({ path: name, keptAs: aside }, 'conflict: the server has another object at a name a local change needs; local kept beside');
  return aside;
}

/**
 * A server's move of a directory into one that, here, a pending local move put inside that very directory
 * (b into a here, a into b there): in this node's names the server's move is one into itself. The server's
 * move stands: the local move is undone (the directory goes back to its name, with what it holds and the
 * pending records below it) and its record dropped, so the record applies. Returns whether it did; the
 * caller names the record anew. Before, the record did not apply three times and the client resynced.
 */
export function breakCycle(s: ResolverState, sent: KmlRecord): boolean {
  if (sent.kind !== 'rename' || sent.newPath === null) return false;
  const db = s.d.db;
  const renames = db.pendingRenames();
  // In this node's names, as applyForwarded (daemon/client-apply.ts) places the record (by its parent's fid too).
  const here = (): KmlRecord => placedHere(db, localNamesOf(sent, renamesOver(db, sent.tid)), (fid) => db.hasPendingLocal(fid));
  const local = here();
  if (local.newPath === null || !isUnder(local.newPath, local.path)) return false;
  let undone = false;
  for (const x of [...renames].reverse()) {
    const cur = db.objectByFid(x.fid);
    if (cur?.type !== 'dir' || cur.path === local.path || !isUnder(cur.path, local.path) || !isUnder(local.newPath, cur.path)) continue;
    if (!freeForReturn(s, x.path, sent.tid)) continue;
    if (lstatOrNull(join(s.d.root, parentOf(x.path)))?.type !== 'dir') continue;
    move(s, cur.path, x.path);
    db.relocateLocal(x.fid, x.path);
    db.rewriteLml([], db.localRecordsOf(x.fid).filter((y) => y.kind === 'rename' && y.path === y.newPath).map((y) => y.seq));
    record(s, sent, x.path, 'rename/rename', 'remote', null, 'resolved', `the server moved ${sent.path} to ${sent.newPath}: the move of ${x.path} into it here is undone`);
    s.d.log.warn({ path: x.path, was: cur.path, tid: formatTid(sent.tid) }, 'conflict: a directory moved here into one the server moved into it: moved back');
    undone = true;
    const now = here();
    if (!isUnder(now.newPath!, now.path)) break;
  }
  return undone;
}

/**
 * The name a directory goes back to, to break a cycle, is free, or is made free: an object made or moved
 * there here since (not the server's: the server still holds the moved directory at that name) goes
 * beside it, with its pending records. Before, the name stayed taken, the cycle stayed, and the client
 * resynced, then lost the server's files below the directory (chaos seed 9201).
 */
function freeForReturn(s: ResolverState, name: string, serverTid: Tid): boolean {
  const db = s.d.db;
  const holder = db.objectByPath(name);
  if (holder === undefined) return lstatOrNull(join(s.d.root, name)) === null;
  const made = db.pendingOnto(name).find((y) => y.fid === holder.fid);
  return made !== undefined && setAside(s, made, serverTid) !== null;
}

/**
 * A server record applied here took its object away from `r.path` (moved or removed it). A local object made
 * here and set aside from that very name for the server's object (an open name/name conflict), still not
 * accepted, goes back to it: the name is free again and nobody else has seen the other one. Before, whether
 * it ended at its name or beside it depended on whether its create reached the server first.
 */
export function reclaim(s: ResolverState, r: KmlRecord): void {
  if (r.kind !== 'rename' && r.kind !== 'unlink' && r.kind !== 'rmdir') return;
  const db = s.d.db;
  const name = r.path;
  if (db.objectByPath(name) !== undefined || lstatOrNull(join(s.d.root, name)) !== null) return;
  for (const c of db.conflicts(false)) {
    if (c.kind !== 'name/name' || c.path !== name || c.kept === null) continue;
    const o = db.objectByPath(c.kept);
    if (o === undefined || o.version !== NO_VERSION || lstatOrNull(join(s.d.root, parentOf(name))) === null) continue;
    move(s, c.kept, name);
    db.relocateLocal(o.fid, name);
    db.resolveConflict(c.id, 'the server freed the name: the local object is back at it', s.d.clock.now());
    s.d.log.info({ path: name, was: c.kept, tid: formatTid(r.tid) }, 'the server freed the name a local object was set aside from: back at it');
    return;
  }
}
