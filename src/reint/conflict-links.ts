import { join } from 'node:path';
import { NO_VERSION, formatTid } from '#core/ids.js';
import { isUnder } from '#core/paths.js';
import type { KmlRecord, LmlRecord } from '#core/record.js';
import type { ObjectRow } from '#journal/fileset-db.js';
import { lstatOrNull } from '#fsio/disk.js';
import { record } from './conflict-decide.js';
import { keepFile, save } from './conflict-redo.js';
import type { Redo, ResolverState } from './conflict-state.js';

// Hard links in the object step (objectStep): the changes made here through the other names of the record's
// inode, the names written apart from it, and the heirs of a name the server removes.

/** Pending changes of content or attributes made here through the other names of the inode a server change of content or attributes reaches. */
export function changesThroughLinks(s: ResolverState, r: KmlRecord): LmlRecord[] {
  if (r.kind !== 'write' && r.kind !== 'truncate' && r.kind !== 'setattr') return [];
  const db = s.d.db;
  const o = db.objectByFid(r.fid);
  // The object's name removed here: its inode's other names here still are the server's object's names. (Its
  // removal pending: one the server accepted after this record is the server's too, its inode kept only for
  // a link to the name still to come, FilesetDb#acceptOwn; nothing here changed the object then.)
  const ino = o === undefined ? (db.hasPendingLocal(r.fid) ? db.removedLinkIno(r.fid) : null) : o.type === 'file' ? o.ino : null;
  // The inode's other names here, and those removed here since (their removal not accepted yet).
  // And the server's names of the inode (r.links), where this node groups them otherwise.
  const here = ino === null ? [] : [...db.objectsByIno(ino).filter((x) => x.type === 'file').map((x) => x.fid), ...db.removedLinksOf(ino)];
  const names = new Set([...here, ...(r.links ?? [])]);
  names.delete(r.fid);
  return [...names].flatMap((fid) => db.localRecordsOf(fid).filter((y) => y.kind === 'write' || y.kind === 'truncate' || y.kind === 'setattr'));
}

/**
 * A chmod made here through a hard-linked name removed here too (its pending records `local`) changed the inode,
 * which lives on here under the other names: their rows took the mode with no record of their own (capture
 * journals a change once, for the name it came through), and the removal's records, dropped by the conflict
 * step, were the only ones to say so. Each such name on disk with no chmod of its own pending gets the server's
 * mode back in its row (`r`'s, the inode's there), and capture looks at it once the step is done: the mode it
 * has here is journaled as a change, and reaches the server. Before, the chmod was on no record and the rows
 * held it: "other mode", a resync (chaos s96 seed 9366, c1; test/long/link-chmod-name-moved.test.ts).
 */
export function chmodThroughRemoved(s: ResolverState, r: KmlRecord, local: readonly LmlRecord[], redo: Redo[]): void {
  if (!local.some((x) => x.kind === 'setattr')) return;
  const db = s.d.db;
  const ino = db.removedLinkIno(r.fid);
  if (ino === null) return;
  for (const x of db.objectsByIno(ino)) {
    if (x.fid === r.fid || x.type !== 'file' || lstatOrNull(join(s.d.root, x.path))?.ino !== ino) continue;
    if (db.localRecordsOf(x.fid).some((y) => y.kind === 'setattr')) continue;
    db.setAttrs(x.fid, { mode: r.mode, uid: x.uid, gid: x.gid, mtimeMs: x.mtimeMs }, null);
    redo.push(() => s.redone.add(x.path));
  }
}

/** The names among `via` written here whose file is not the object's inode here (`o`: the object, or the name its inode lives on as): each one's content kept (see objectStep). */
export function writtenApart(s: ResolverState, o: ObjectRow | undefined, via: readonly LmlRecord[], tid: bigint): Array<{ saved: string; name: string }> {
  const db = s.d.db;
  const ino = o?.type === 'file' ? lstatOrNull(join(s.d.root, o.path))?.ino ?? null : null;
  const out: Array<{ saved: string; name: string }> = [];
  const seen = new Set<string>();
  for (const x of via) {
    if ((x.kind !== 'write' && x.kind !== 'truncate') || seen.has(x.fid)) continue;
    seen.add(x.fid);
    const n = db.objectByFid(x.fid);
    const st = n?.type === 'file' ? lstatOrNull(join(s.d.root, n.path)) : null;
    if (n === undefined || st?.type !== 'file' || st.ino === ino) continue;
    const saved = keepFile(s, n.path, n.path, tid);
    save(s, saved, n.path, tid);
    out.push({ saved, name: n.path });
  }
  return out;
}

/**
 * The server removes one name of a hard-linked file that was written (or chmodded) here through that name:
 * the inode lives on under its other names, there as here, and so does what was written. The pending
 * changes become a surviving name's (made against its version), and the removal applies: nothing is lost,
 * no conflict copy. Before, the write was kept beside as a conflict copy while the other name here still
 * showed it (the inode), and the server's did not: "state differs", a resync. Where the name was moved here
 * too, the moved name stays a name of the inode: a link to the surviving name (FilesetDb#movesToLink), and
 * the server's removal then meets nothing here. Before, the write was kept beside twice and the moved name
 * left, the link groups differed at the end and the client resynced (chaos s61 seed 9251;
 * test/long/link-written-moved-removed.test.ts). True when done.
 */
export function toHeir(s: ResolverState, r: KmlRecord, local: readonly LmlRecord[]): boolean {
  const db = s.d.db;
  const o = db.objectByFid(r.fid);
  if (r.kind !== 'unlink' || o?.type !== 'file' || o.ino === null) return false;
  if (local.length === 0 || !local.every((x) => x.kind === 'write' || x.kind === 'truncate' || x.kind === 'setattr' || x.kind === 'rename')) return false;
  const changes = local.filter((x) => x.kind !== 'rename');
  const lastMove = local.filter((x) => x.kind === 'rename').at(-1);
  // (A pending link made to the moved name names it by this fid: not here.)
  if (lastMove !== undefined && (lastMove.newPath === null || db.pendingLinkTo(r.fid))) return false;
  if (lstatOrNull(join(s.d.root, o.path))?.ino !== o.ino) return false;
  const heirs = db.objectsByIno(o.ino).filter((x) => x.fid !== o.fid && x.type === 'file' && x.version !== NO_VERSION &&
    lstatOrNull(join(s.d.root, x.path))?.ino === o.ino);
  for (const x of heirs) {
    const names = heirNamesThen(s, x, changes);
    const linkName = lastMove === undefined ? x.path : heirNamesThen(s, x, [lastMove])?.get(lastMove.seq);
    if (names === undefined || linkName === undefined) continue;
    const linkTo = { ...x, path: linkName };
    const heir = { ...x, path: names.get(changes.at(-1)?.seq ?? -1n) ?? x.path };
    if (changes.length > 0) db.moveChangesTo(r.fid, x, names);
    const kept = lastMove === undefined ? null : lastMove.newPath;
    if (lastMove !== undefined) db.movesToLink(r.fid, x.fid, linkTo.path);
    const how = changes.length === 0 ? '' : `what was written here through it goes through ${heir.path}, another name of the file`;
    const moved = kept === null ? '' : `its move here to ${kept} makes that name a hard link of ${linkTo.path}`;
    record(s, r, r.path, changes.length === 0 ? 'rename/unlink' : 'write/unlink', 'merged', kept ?? heir.path, 'resolved', `removed on the server; ${[how, moved].filter((y) => y !== '').join('; ')}`);
    s.d.log.info({ path: r.path, heir: heir.path, linked: kept, tid: formatTid(r.tid) },
      'conflict: a name of a hard-linked file changed here was removed on the server; the changes go through another name');
    return true;
  }
  return false;
}

/**
 * The name `x`, another name of the inode, had at the time of each of the changes `local` (seq -> name: the
 * name each ships under as its change); undefined when it cannot take them: removed here, or a pending move of
 * a directory above it came between. Changes made before its first pending move go at that move's old name,
 * the others at the new name of the last move before them. Before, a name with a pending move took no
 * changes, and a write through the name the server removed was kept beside twice while the inode here held
 * it under the moved name (chaos s58 seed 9279, c2: "other content", a resync;
 * test/long/link-written-other-removed.test.ts); then, changes on both sides of a move of it found no name,
 * and a write kept beside the removed name stayed in the inode under the moved one with nothing pending to say
 * so (chaos s75 seed 9254, c2: "other content, other mode", a resync; test/long/link-written-moved-chmod.test.ts).
 */
function heirNamesThen(s: ResolverState, x: ObjectRow, local: readonly LmlRecord[]): Map<bigint, string> | undefined {
  const db = s.d.db;
  const own = db.localRecordsOf(x.fid);
  if (own.some((y) => y.kind === 'unlink')) return undefined;
  const moves = own.filter((y) => y.kind === 'rename' && y.newPath !== null);
  const names = new Map<bigint, string>();
  for (const c of local) {
    if (moves.length === 0) {
      names.set(c.seq, x.path);
      continue;
    }
    const before = moves.filter((m) => m.seq < c.seq).at(-1);
    const [name, from, to] = before === undefined ? [moves[0]!.path, c.seq, moves[0]!.seq] : [before.newPath!, before.seq, c.seq];
    if (db.pendingRenames().some((y) => y.seq > from && y.seq < to && y.fid !== x.fid && isUnder(name, y.newPath ?? y.path))) return undefined;
    names.set(c.seq, name);
  }
  return names;
}
