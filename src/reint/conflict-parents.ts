import { join } from 'node:path';
import { ROOT_FID, formatTid, type Fid, type Tid } from '#core/ids.js';
import { baseName, depthOf, isUnder, joinRel, parentOf } from '#core/paths.js';
import type { KmlRecord, LmlRecord } from '#core/record.js';
import type { ObjectRow } from '#journal/fileset-db.js';
import { lstatOrNull } from '#fsio/disk.js';
import { conflictName } from '#core/conflict-name.js';
import { restoreBase } from './conflict-base.js';
import { record } from './conflict-decide.js';
import { conflictPath, mkdir, move } from './conflict-disk.js';
import type { ResolverState } from './conflict-state.js';
import { localPath, renamesOver } from './local-names.js';

// The parent step: the directories a server record needs, removed here (or taken here by another object
// since), come back at their names (update beats delete); and a directory the server removes gives up what
// was made or moved into it here.

/** Records that give a name (the new one, for a rename). */
const NAMES = new Set(['create', 'mkdir', 'symlink', 'link', 'rename']);
const REMOVALS = new Set(['unlink', 'rmdir']);

/**
 * The directory the server's new name goes in (by fid, RecordDraft.parent) was removed here, and another
 * object took its name here meanwhile (a directory moved over it, `mv x d` onto an empty d): update beats
 * delete, so the removal is dropped and the directory comes back at its name, with what the server put in
 * it; the object that took the name moves beside (its pending move now ends there). Before, the server's
 * entry went into the other directory, and the removal was refused for ever ("directory is not empty
 * here"): a resync (chaos seeds 9201, 9203, 9206).
 */
function removedParent(s: ResolverState, r: KmlRecord): void {
  const db = s.d.db;
  const dir = r.kind === 'rename' || ['create', 'mkdir', 'symlink', 'link'].includes(r.kind) ? r.parent : null;
  if (dir === undefined || dir === null || dir === ROOT_FID || db.objectByFid(dir) !== undefined) return;
  const removal = db.localRecordsOf(dir).find((x) => x.kind === 'rmdir');
  if (removal === undefined) return;
  // Its name now: later pending moves of directories above it took the name along (chaos s33 seed 9228, c3:
  // mv beta/sub alpha/sub over an empty alpha/sub, then mv alpha gamma, while the server moved a file into
  // alpha/sub: the file went into the moved directory, on this node only, a resync;
  // test/long/moved-over-gained-dir.test.ts).
  const name = localPath(removal.path, db.pendingRenames().filter((x) => x.seq > removal.seq));
  const there = db.objectByPath(name);
  if (there === undefined) return; // no name taken: parentStep sees to it
  takeBack(s, r, removal, there, name);
}

/**
 * The same for a server's change of an object removed here with its directory (`rm -r d`), where the record
 * names it by its path alone (a write, truncate or setattr): a directory on that path that another object
 * made or moved onto the name here since the removal of the directory the server has there (`mkdir d` after
 * `rm -r d`) is not the server's. The server's directory comes back at its name, where the object comes back
 * (objectStep), and the local one goes beside; so for its removal (an unlink or rmdir of what was removed here
 * too, in a directory removed here). Before, the object came back inside the local directory, the removal of
 * the server's stayed pending and was refused for ever ("directory is not empty here", a resync; chaos seed
 * 9203, c2: rm -r alpha/deep, mkdir -p alpha/deep, alpha/deep/d.md chmodded there).
 */
function removedAncestor(s: ResolverState, r: KmlRecord): void {
  const db = s.d.db;
  // A change of an object not here, or a new name in a directory not here (chaos s32 seed 9223, c1: rm -r
  // gamma, then a new gamma, while the server made gamma/sub/d.md: the conflict step brought the server's
  // gamma/sub back inside the new gamma, the first directory on the way, then the server's gamma at its name
  // with the new one beside, and sub stayed in the new one, on this node only: "state differs … with nothing
  // pending", a resync; test/long/removed-dir-taken.test.ts).
  const target = r.kind === 'rename' ? r.newPath! : r.path;
  if (['write', 'truncate', 'setattr'].includes(r.kind)) {
    if (db.objectByFid(r.fid) !== undefined) return;
  } else if (!(NAMES.has(r.kind) || REMOVALS.has(r.kind)) || parentOf(target) === '' || db.objectByPath(parentOf(target)) !== undefined) {
    return;
  }
  // A removal of an object removed here too, whose directory parentStep brings back (its removal pending here):
  // so the directories above it (chaos s92 seed 9350, c1: rm -r epsilon, a symlink made in a new epsilon, while
  // the server removed epsilon/deep/e: epsilon/deep came back inside the new epsilon, and went beside with it
  // when the server's epsilon came back, a resync; test/long/removed-dir-taken.test.ts, last test). Not when the
  // removal's directory is here: nothing comes back for it, and nothing moves (removed-both-taken.test.ts).
  if (REMOVALS.has(r.kind) && db.objectByFid(r.fid) !== undefined) return;
  for (let p = parentOf(target); p !== ''; p = parentOf(p)) {
    const there = db.objectByPath(p);
    if (there === undefined) continue; // removed here and free: parentStep brings it back
    const removal = removalTaken(s, p, there);
    if (removal === undefined) return;
    if (throughOwnMove(s, target, p, there.fid)) return;
    takeBack(s, r, removal, there, p);
    return;
  }
}

/**
 * The record's `target` is below `p` only through a pending move of `fid`, the object at `p` here: the
 * server means that object, moved here onto the name of a directory removed here, not the removed one.
 * Before, the removed directory came back at its name and the object went beside with the server's entry
 * in it (chaos s32 seed 9221, c2: mv gamma.conflict-… gamma/sub over an empty gamma/sub, while the server
 * chmodded a file in the moved directory: the file ended up in the directory removed here, a resync).
 */
function throughOwnMove(s: ResolverState, target: string, p: string, fid: Fid, old = false): boolean {
  const sent = s.sent;
  if (sent === null) return false;
  const db = s.d.db;
  const serverTarget = sent.kind === 'rename' && !old ? sent.newPath! : sent.path;
  const others = renamesOver(db, sent.tid).filter((x) => x.fid !== fid);
  return isUnder(target, p) && !isUnder(localPath(serverTarget, others), p);
}

/**
 * A directory above `path` (the record's old name, in this node's names) is here by a local change the
 * server has not seen (made or moved onto that name, not reached through its own move): the server's
 * directory of that name is not here. Before, an object the server moved out of it went back into the
 * other directory by name, and the server's move became one onto itself there ("a directory cannot move
 * inside itself", a resync; chaos s32 seed 9229, c2: mv e/sub g, rmdir e, mv d e, while the server moved
 * e/sub to d/sub; test/long/moved-from-replaced-dir.test.ts).
 */
export function takenHere(s: ResolverState, path: string): boolean {
  const db = s.d.db;
  for (let p = parentOf(path); p !== ''; p = parentOf(p)) {
    const o = db.objectByPath(p);
    if (o === undefined || !db.pendingOnto(p).some((x) => x.fid === o.fid)) continue;
    if (!throughOwnMove(s, path, p, o.fid, true)) return true;
  }
  return false;
}

/**
 * The directory removed by `removal` comes back at `p`, its name here now (the removal's, or where later
 * pending moves of directories above took that name), which `there` took here meanwhile: that goes beside.
 */
function takeBack(s: ResolverState, r: KmlRecord, removal: LmlRecord, there: ObjectRow, p: string): void {
  const db = s.d.db;
  takeBackAbove(s, r, parentOf(p));
  if (parentOf(p) !== '' && db.objectByPath(parentOf(p))?.type !== 'dir') return;
  // The directory that took the name went beside with the one above it (takeBackAbove): the name is free.
  const holder = db.objectByPath(p);
  if (holder === undefined ? lstatOrNull(join(s.d.root, p)) !== null : holder.fid !== there.fid) return;
  const to = holder === undefined ? null : conflictPath(s, p, r.tid);
  if (to !== null) {
    move(s, p, to);
    db.relocateLocal(there.fid, to);
  }
  db.rewriteLml([], [removal.seq]); // the removal alone loses: a pending move of the directory still ships
  freeName(s, removal, r.tid);
  mkdir(s, p, removal.mode);
  restoreBase(s, { ...removal, path: p, kind: 'mkdir' }, removal.preVersion, 'dir');
  s.touched = true;
  if (to === null) {
    record(s, r, p, 'rmdir/gained', 'remote', null, 'resolved', 'directory removed here gained entries on the server: kept');
    s.d.log.warn({ path: p, tid: formatTid(r.tid) }, 'conflict: a directory removed here gained entries on the server; it is kept');
    return;
  }
  record(s, r, p, 'rmdir/gained', 'keep-both', to, 'open', null);
  s.d.log.warn({ path: p, keptAs: to, tid: formatTid(r.tid) }, 'conflict: a directory removed here gained entries on the server; it is back, and what took its name here is kept beside');
}

/**
 * The directory at `q` here took the name of one removed here (its removal pending, the taking after it):
 * the removed one, whose entry comes back below it, comes back first, and the other goes beside. Before, the
 * entry came back inside the other directory (chaos s34 seed 9260, c1: rmdir gamma/deep, mv epsilon gamma
 * over the empty gamma, while the server made gamma/deep/h: "state differs … with nothing pending", a resync;
 * test/long/moved-over-gained-parent.test.ts).
 */
function takeBackAbove(s: ResolverState, r: KmlRecord, q: string): void {
  if (q === '') return;
  const db = s.d.db;
  const holder = db.objectByPath(q);
  if (holder?.type !== 'dir') return;
  const removal = removalTaken(s, q, holder);
  if (removal !== undefined) takeBack(s, r, removal, holder, q);
}

/** The pending removal of a directory at `p` whose name `holder` took here after it (made or moved onto it since). */
function removalTaken(s: ResolverState, p: string, holder: ObjectRow): LmlRecord | undefined {
  const db = s.d.db;
  const removal = db.pendingRemovals('rmdir', p).find((x) => x.path === p && x.fid !== holder.fid && db.objectByFid(x.fid) === undefined);
  return removal !== undefined && db.pendingOnto(p).some((x) => x.fid === holder.fid && x.seq > removal.seq) ? removal : undefined;
}

/**
 * A directory removed here comes back at its name (its removal dropped): a pending record that made another
 * object there, or moved one onto the name, after that removal, and whose object has moved on since (`mkdir d`
 * then `mv d e` here), ships under a conflict name, with what followed it there; else the server, which kept
 * its directory at the name, would refuse it for ever (chaos seed 9212).
 */
function freeName(s: ResolverState, removal: LmlRecord, tid: Tid): void {
  const db = s.d.db;
  for (const x of db.pendingOnto(removal.path)) {
    if (x.seq < removal.seq || x.fid === removal.fid || db.objectByFid(x.fid)?.path === removal.path) continue;
    // Free here and in the pending records too (two such records get two names).
    const aside = conflictName(removal.path, s.d.node, tid, (p) => db.objectByPath(p) !== undefined || db.pendingOnto(p).length > 0 || lstatOrNull(join(s.d.root, p)) !== null);
    db.renameInLml(x.fid, x.seq, removal.path, aside);
    s.d.log.info({ seq: String(x.seq), kind: x.kind, path: removal.path, to: aside, tid: formatTid(tid) }, 'a local change not accepted yet gave the name of a directory removed here and back now: it ships under another');
  }
}

/** The record's parent directories, removed here but not on the server: bring them back. */
export async function parentStep(s: ResolverState, r: KmlRecord): Promise<void> {
  removedParent(s, r);
  removedAncestor(s, r);
  const target = r.kind === 'rename' ? r.newPath! : r.path;
  const missing: string[] = [];
  for (let p = parentOf(target); p !== ''; p = parentOf(p)) {
    if (s.d.db.objectByPath(p) !== undefined) break;
    missing.unshift(p);
  }
  // The record's object removed here (with its directory, `rm -r`): its removal names the directories above it
  // as they were then, and a pending move of one above since renamed them (chaos s35 seed 9303, c1: "parent …
  // does not exist here", a resync; test/long/removed-dir-renamed-above.test.ts).
  const db = s.d.db;
  const gone = db.objectByFid(r.fid) === undefined ? db.localRecordsOf(r.fid).find((x) => x.kind === 'unlink' || x.kind === 'rmdir') : undefined;
  const removedWith = (p: string): Fid | null => {
    if (gone === undefined) return null;
    let then = gone.path;
    for (let n = depthOf(target) - depthOf(p); n > 0; n--) then = parentOf(then);
    if (then === '') return null;
    return db.pendingRemovals('rmdir', then).find((z) => z.path === then && z.seq > gone.seq && db.objectByFid(z.fid) === undefined)?.fid ?? null;
  };
  for (const p of missing) {
    // By name, or for the record's own directory by identity (moved here before it was removed: its removal
    // names it where it was then), or as its object's removal names it.
    const byFid = (p === parentOf(target) && r.parent !== undefined && r.parent !== null ? r.parent : null) ?? removedWith(p);
    // The record's own directory first: another one removed here at that name is not the server's (chaos s85
    // seed 9335; test/long/removed-twice-same-name.test.ts).
    const removals = s.d.db.pendingRemovals('rmdir', p, byFid);
    const removal = removals.find((x) => x.fid === byFid) ?? removals[0] ?? (byFid === null ? removedBefore(s, target, p) : undefined);
    if (removal === undefined) {
      if (byFid !== null && missing.length === 1) removedAhead(s, r, p, byFid);
      return; // not a local removal: the version check reports it
    }
    // The removal alone loses (update beats delete): a pending move of the directory still ships.
    s.d.db.rewriteLml([], [removal.seq]);
    freeName(s, { ...removal, path: p }, r.tid);
    if (lstatOrNull(join(s.d.root, p)) === null) mkdir(s, p, removal.mode);
    restoreBase(s, { ...removal, path: p, kind: 'mkdir' }, removal.preVersion, 'dir');
    s.touched = true;
    record(s, r, p, 'rmdir/gained', 'remote', null, 'resolved', 'directory removed here gained entries on the server: kept');
    s.d.log.warn({ path: p, tid: formatTid(r.tid) }, 'conflict: a directory removed here gained entries on the server; it is kept');
  }
}

/**
 * The directory at `p` (the record's name `target` in this node's names, or one above it) by the server's name of
 * it: removed here under that name, and a pending move of a directory above it since took the name elsewhere
 * (`rmdir d/sub` then `mv d e`: its removal names d/sub, the record's place is e/sub). Neither the record (a write
 * names no parent) nor the object's own removal (moved out of the directory before, `mv d/sub/f x`) leads to it.
 * Before, the server's write of d/sub/f was refused ("parent e/sub does not exist here") three times, then a
 * resync (chaos s85 seed 9331, c3; test/long/moved-out-removed-dir-renamed-above.test.ts).
 */
function removedBefore(s: ResolverState, target: string, p: string): LmlRecord | undefined {
  const sent = s.sent;
  if (sent === null) return undefined;
  let then = sent.kind === 'rename' ? sent.newPath! : sent.path;
  for (let n = depthOf(target) - depthOf(p); n > 0; n--) then = parentOf(then);
  if (then === '' || then === p) return undefined;
  const db = s.d.db;
  return db.pendingRemovals('rmdir', then).find((z) => z.path === then && db.objectByFid(z.fid) === undefined
    && localPath(z.path, db.pendingRenames().filter((x) => x.seq > z.seq)) === p);
}

/**
 * The record's directory was removed here, and the server accepted that removal after this record (the
 * stream lags behind this node's reintegration): on the server the directory stood until then, and what
 * the records up to it put in it they took out again (else the removal would have been refused). It is
 * made again here, as it was when removed, and goes when the removal comes back (ClientNode, own records).
 * Before, the record did not apply three times ("parent … does not exist here") and the client resynced
 * (chaos seeds 9204, 9214, 9217; stream-lag.test.ts).
 */
function removedAhead(s: ResolverState, r: KmlRecord, p: string, fid: Fid): void {
  const own = s.d.db.ownRmdirAfter(fid, r.tid);
  if (own === undefined || lstatOrNull(join(s.d.root, p)) !== null) return;
  mkdir(s, p, own.mode);
  restoreBase(s, { ...own, path: p, kind: 'mkdir' }, own.preVersion, 'dir');
  s.touched = true;
  s.d.log.info({ path: p, tid: formatTid(r.tid), removedAt: formatTid(own.tid) }, 'a directory removed here, its removal accepted by the server after this record: made again until it comes back');
}

/** The server removes a directory that holds objects made here: move them out beside it. */
export function emptyForRmdir(s: ResolverState, r: KmlRecord): void {
  const db = s.d.db;
  const below = db.objectsBelow(r.path).filter((o) => !o.path.slice(r.path.length + 1).includes('/'));
  for (const o of below) {
    const to = conflictPath(s, joinRel(parentOf(r.path), baseName(o.path)), r.tid);
    move(s, o.path, to);
    db.relocateLocal(o.fid, to);
    s.touched = true;
    record(s, r, o.path, 'gained/rmdir', 'keep-both', to, 'open', null);
    s.d.log.warn({ path: o.path, keptAs: to, tid: formatTid(r.tid) }, 'conflict: the server removed a directory that gained entries here');
  }
  besideRemoved(s, r);
}

/**
 * Pending records that still give a name in the directory the server removes: what was made or moved into it
 * here and left it since (removed again, moved on), or an older name of what was just set beside it. The
 * server has no such directory any more and would refuse them for ever ("parent … does not exist here", a
 * resync; chaos seeds 9205, 9214, 9215). Like what the directory still held, they give the name beside it
 * instead, at the names of their time, and the object's later records there follow (FilesetDb.renameInLml);
 * nothing is on disk any more to move.
 */
function besideRemoved(s: ResolverState, r: KmlRecord): void {
  const db = s.d.db;
  const given = new Set<string>(); // names handed out here that nothing holds yet
  for (const x of db.pendingInto(r.fid)) {
    const name = x.kind === 'rename' ? x.newPath : ['create', 'mkdir', 'symlink', 'link'].includes(x.kind) ? x.path : null;
    if (name === null || !name.includes('/')) continue;
    // Its object is set beside the directory here already (emptyForRmdir), and no pending move of its own
    // follows: the record gives the name it has now. Before, it named the place beside the directory's name
    // of its time, which differed where the directory had moved here (inside the moved object itself: a cycle
    // the server refused, a resync; chaos s44 seed 9230; test/long/removed-dir-moved-over.test.ts).
    const now = db.objectByFid(x.fid);
    const movesOn = db.localRecordsOf(x.fid).some((y) => y.seq > x.seq && y.kind === 'rename');
    // (Only where no pending move of a directory above it came after: the record's name is of its time.)
    const above = now !== undefined && db.pendingRenames().some((y) => y.seq > x.seq && y.newPath !== null && isUnder(now.path, y.newPath));
    if (now !== undefined && !movesOn && !above && !isUnder(now.path, r.path)) {
      const dirNow = parentOf(now.path) === '' ? undefined : db.objectByPath(parentOf(now.path));
      db.renameInLml(x.fid, x.seq, name, now.path);
      db.setLmlParent(x.seq, parentOf(now.path) === '' ? ROOT_FID : dirNow?.type === 'dir' ? dirNow.fid : null);
      s.touched = true;
      s.d.log.info({ seq: x.seq.toString(), kind: x.kind, path: name, to: now.path, tid: formatTid(r.tid) }, 'a pending record named a directory the server removed: it names where its object is now');
      continue;
    }
    const besideThen = parentOf(parentOf(name));
    const besideNow = db.nameAfter(besideThen, x.seq);
    const aside = conflictName(joinRel(besideNow, baseName(name)), s.d.node, r.tid as Tid,
      (p) => given.has(p) || db.objectByPath(p) !== undefined || lstatOrNull(join(s.d.root, p)) !== null);
    given.add(aside);
    const to = joinRel(besideThen, baseName(aside));
    const dir = besideNow === '' ? undefined : db.objectByPath(besideNow);
    db.renameInLml(x.fid, x.seq, name, to);
    db.setLmlParent(x.seq, besideNow === '' ? ROOT_FID : dir?.type === 'dir' ? dir.fid : null);
    s.touched = true;
    s.d.log.info({ seq: x.seq.toString(), kind: x.kind, path: name, to, tid: formatTid(r.tid) }, 'a pending record named a directory the server removed: it names the place beside it');
  }
}
