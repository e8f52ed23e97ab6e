import { IntersyncError, NOT_EMPTY_HOLDS } from '#core/errors.js';
import { NO_VERSION, formatTid, type Fid, type Tid } from '#core/ids.js';
import type { KmlRecord, RecordDraft } from '#core/record.js';
import { isUnder } from '#core/paths.js';
import type { FilesetDb, ObjectRow } from '#journal/fileset-db.js';
import { linkOnDisk } from './link-align.js';
import type { ApplyDeps } from './apply-deps.js';

/** What the check of a record reads: the journal, and the backing directory (a hard link's other names). */
export type CheckDeps = Pick<ApplyDeps, 'db' | 'root'>;

/**
 * The version check: null when `d` applies to this node's state, else why it does not.
 * A record based on a version that this node has since replaced only by
 * earlier records of the same origin made against that same version (the
 * origin sent a chain of changes before it learnt their TIDs) still applies:
 * `baseOf` returns the version it applies on.
 */
export function baseOf(c: CheckDeps, d: RecordDraft): Tid | null {
  const cur = c.db.objectByFid(d.fid);
  if (cur === undefined) return null;
  let v = cur.version;
  // A change through another name of the same inode (a hard link) moved this name's version too.
  const sameInode = (fid: Fid): boolean => {
    if (fid === d.fid) return true;
    const o = cur.type === 'file' && cur.ino !== null ? c.db.objectByFid(fid) : undefined;
    return o !== undefined && o.ino === cur.ino;
  };
  // A change the server accepted after `d` (this node's own, in its journal from the server's answer before
  // the stream brings `d`): the server applied `d` under it, and so does this node. Before, a chmod here
  // through one name of a hard link, accepted after the server's move of the other name, gave that name a
  // version the move was not made against: refused three times, a resync (chaos seed 9218).
  // It may have come through another name of the inode (its version, not the object's, is what that change
  // was made against): the stream being contiguous, nothing else here moved the object's version. Only a
  // change of names passes so: a write or setattr applied under a later one would put back what it replaced.
  const tid = (d as Partial<KmlRecord>).tid;
  if (attrsAbove(c.db, d) !== null) return cur.version;
  // A move made against a version that only changes of content or attributes replaced since, through any name
  // of the inode (KmlRecord.links): a move changes the name only, the object keeps what those changes gave it
  // (ObjectTable), and it meets none of them. The origin rebases its pending moves as such records apply there
  // (and Reintegrator#moveRebased before it sends one); where that was missed, with the object removed there
  // since, the move was refused three times and the client resynced (chaos s96 seed 9374, c3;
  // test/record-check-move.test.ts). Every node applies the forwarded move by this same rule.
  if (d.kind === 'rename' && d.preVersion !== NO_VERSION && d.preVersion < cur.version && c.db.onlyContentSince(d.fid, d.preVersion, cur.version)) return cur.version;
  const naming = d.kind === 'rename' || d.kind === 'unlink' || d.kind === 'rmdir';
  for (let hops = 0; hops < 10_000 && v !== d.preVersion; hops++) {
    const r = c.db.kmlAt(v);
    if (naming && r !== undefined && tid !== undefined && r.tid > tid && sameInode(r.fid)) return cur.version;
    if (r === undefined || r.origin !== d.origin || !sameInode(r.fid)) return oneNameOf(c, cur, d) ? cur.version : null;
    if (r.preVersion === d.preVersion) return cur.version;
    // Through another name: its pre-version is that name's, not this one's; this name's own before it is the
    // last record that gave it one. Before, a write through c pending behind the origin's link c to a and
    // its write through a (one batch) was refused as made against c's older version (current: the write's),
    // and where the client missed rebasing it, three times and a resync (chaos s39 seed 9230;
    // test/long/link-write-both.test.ts).
    v = r.fid === d.fid ? r.preVersion : c.db.lastVersionOf(d.fid, d.preVersion, r.tid)?.tid ?? d.preVersion;
  }
  return v === d.preVersion || oneNameOf(c, cur, d) ? cur.version : null;
}

/**
 * A peer's write or truncate (a record of the stream) met here by this node's own change of attributes
 * through a name of the same inode, which the server accepted after it (its answer came before the stream
 * brought `d`): the server applied the content under the attributes, and so does this node. The row whose
 * attributes `d` takes here instead of its own; null otherwise. Before, `d` was refused as made against an
 * older version three times and the client resynced (a chmod through a hard link made here while the
 * server wrote the file; test/long/link-unseen-write.test.ts).
 */
export function attrsAbove(db: FilesetDb, d: RecordDraft): ObjectRow | null {
  const tid = (d as Partial<KmlRecord>).tid;
  if ((d.kind !== 'write' && d.kind !== 'truncate') || tid === undefined) return null;
  const cur = db.objectByFid(d.fid);
  if (cur?.type !== 'file' || cur.ino === null || cur.version === d.preVersion || cur.version <= tid) return null;
  const r = db.kmlAt(cur.version);
  if (r === undefined || r.kind !== 'setattr' || r.origin !== db.meta.nodeId || r.origin === d.origin) return null;
  return r.fid === cur.fid || db.objectByFid(r.fid)?.ino === cur.ino ? cur : null;
}

/**
 * `d` removes one name of a hard-linked file whose inode keeps another name here, made against an older
 * version that only changes made through the inode's other names replaced (no record of this name since):
 * a change of content or attributes through another name does not meet the removal of this one, that name
 * keeps what it holds, and the removal applies on the current version (the client's conflict step has it so
 * too: such a change meets nothing there). Another node's change or move of this very name since does meet it
 * (update beats delete); the remover's own do not: it made them before the removal, which saw them (chaos s76
 * seed 9244: its own accepted move of the name refused its removal, whose conflict step then brought the name
 * back as a file of its own, a resync; test/long/removed-link-own-move.test.ts). The removal of the inode's
 * last name made against an older version is refused too: it would destroy content its origin never saw; the
 * origin's conflict step brings that content back
 * (ConflictResolver#restoreRemoved). Before, the client gave its pending removal the version of every
 * change of the inode it applied, and the server could not tell: a client's removal of one name, made
 * before the server wrote through the other and then removed that one, destroyed the write everywhere
 * (chaos seed 9206, "DESTROYED").
 */
function oneNameOf(c: CheckDeps, cur: ObjectRow, d: RecordDraft): boolean {
  if (d.kind !== 'unlink' || cur.type !== 'file' || cur.ino === null) return false;
  if (d.preVersion === NO_VERSION || d.preVersion >= cur.version) return false;
  if (c.db.hasLaterRecord(cur.fid, d.preVersion, d.origin)) return false;
  return linkOnDisk(c.db, c.root, cur.ino, cur.fid) !== undefined;
}

/** ApplyPath#check: null when `d` applies to this node's journal and disk, else the CONFLICT that says why not. */
export function checkRecord(c: CheckDeps, d: RecordDraft): IntersyncError | null {
  const db = c.db;
  if (d.kind === 'create' || d.kind === 'mkdir' || d.kind === 'symlink' || d.kind === 'link') {
    if (db.objectByFid(d.fid) !== undefined) return IntersyncError.CONFLICT(d.path, `object ${d.fid} exists already`);
    const there = db.objectByPath(d.path);
    if (there !== undefined) return IntersyncError.CONFLICT(d.path, `the name is taken by ${there.fid}`, { kind: 'name-taken', path: d.path, by: there.fid });
    if (d.kind === 'link') {
      const t = d.target === null ? undefined : db.objectByPath(d.target);
      if (t === undefined || t.type !== 'file') return IntersyncError.CONFLICT(d.path, `link target ${d.target ?? ''} is not a file here`, { kind: 'link-target', path: d.path });
      // The name it linked to is another file here now (replaced since): not the inode the origin linked to.
      if (d.targetFid !== undefined && d.targetFid !== null && t.fid !== d.targetFid) return IntersyncError.CONFLICT(d.path, `link target ${d.target ?? ''} is not a file here`, { kind: 'link-target', path: d.path });
    }
    return null;
  }
  const cur = db.objectByFid(d.fid);
  if (cur === undefined) return IntersyncError.CONFLICT(d.path, `object ${d.fid} does not exist here`);
  if (cur.version !== d.preVersion && baseOf(c, d) === null) {
    return IntersyncError.CONFLICT(d.path, `made against version ${formatTid(d.preVersion)}, current is ${formatTid(cur.version)}`,
      { kind: 'outdated', path: d.path, made: formatTid(d.preVersion), current: formatTid(cur.version) });
  }
  if (cur.path !== d.path) return IntersyncError.CONFLICT(d.path, `the object is at ${cur.path} here`, { kind: 'elsewhere', path: d.path, here: cur.path });
  if ((d.kind === 'write' || d.kind === 'truncate') && cur.type !== 'file') return IntersyncError.CONFLICT(d.path, `${d.kind} of a ${cur.type}`);
  if (d.kind === 'unlink' && cur.type === 'dir') return IntersyncError.CONFLICT(d.path, 'unlink of a directory');
  if (d.kind === 'rmdir' && cur.type !== 'dir') return IntersyncError.CONFLICT(d.path, `rmdir of a ${cur.type}`);
  if (d.kind === 'rename' && d.newPath !== null && cur.type === 'dir' && isUnder(d.newPath, d.path)) {
    return IntersyncError.CONFLICT(d.newPath, 'a directory cannot move inside itself');
  }
  if (d.kind === 'rename' && d.newPath !== null && db.objectByPath(d.newPath) !== undefined) {
    return IntersyncError.CONFLICT(d.newPath, 'the new name is taken', { kind: 'new-name-taken', path: d.newPath });
  }
  if (d.kind === 'rmdir') {
    // Its entries here, by fid: the origin may hold them elsewhere with their moves still to come (Reintegrator#emptiedLater).
    const held = db.objectsBelow(d.path).filter((o) => !o.path.slice(d.path.length + 1).includes('/'));
    if (held.length > 0) {
      return IntersyncError.CONFLICT(d.path, 'directory is not empty here', { kind: 'not-empty', path: d.path, holds: held.slice(0, NOT_EMPTY_HOLDS).map((o) => o.fid).join(',') });
    }
  }
  return null;
}

const CONTENT_KINDS = new Set(['create', 'write', 'truncate']);

/** A create, write or truncate: the record's content must be staged before it applies. */
export function needsContent(d: RecordDraft): boolean {
  return CONTENT_KINDS.has(d.kind);
}
