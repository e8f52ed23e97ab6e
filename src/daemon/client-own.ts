import { renameSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { formatTid, type Tid } from '#core/ids.js';
import { isUnder, parentOf } from '#core/paths.js';
import type { KmlRecord, RecordDraft } from '#core/record.js';
import { joinLinks, splitApart } from '#apply/link-align.js';
import { lstatOrNull } from '#fsio/disk.js';
import type { ObjectRow } from '#journal/fileset-db.js';
import { localNamesOf, serverRenames } from '#reint/local-names.js';
import { catchUp, noteBehind } from './client-catch-up.js';
import { linkAlign, type ClientState } from './client-state.js';

/*
 * A client's own records back on the forwarded stream, and objects settled at the server's names (for an own
 * record back, and for a server record that names an object elsewhere than here). The names with a # in the
 * comments are the ClientNode methods these functions were; they keep their names.
 */

/**
 * Our own record is back on the stream (applyForwarded (daemon/client-apply.ts), its first branch): accepted into the journal,
 * then the names it leaves are settled as the server has them.
 */
export async function ownBack(s: ClientState, sent: KmlRecord, peer: string): Promise<void> {
  const db = s.db;
  db.acceptOwn(sent, peer, s.o.clock.now());
  ownChangeThroughRemoved(s, sent);
  if (sent.kind === 'rmdir') removeMadeAgain(s, sent);
  settleOwnName(s, sent);
  // Our write went into an inode whose other names the server may hold apart (its `links`): they leave it
  // here too and take the server's content back (before, they kept our write: "state differs", a resync).
  const { left, fetch } = splitApart(linkAlign(s), sent);
  if (left.length > 0) s.log.warn({ tid: formatTid(sent.tid), path: sent.path, left }, 'hard links grouped as on the server: names left the inode');
  // And the names the server holds with it that are files of their own here join it: the write went into
  // them there. Before, each kept its old content here, the digests differed and the client resynced
  // (chaos seed 9215, c2: a resync had placed epsilon/c apart from d.md while a write through d.md was pending).
  const joined = joinLinks(linkAlign(s), sent);
  if (joined.length > 0) s.log.warn({ tid: formatTid(sent.tid), path: sent.path, joined }, 'hard links grouped as on the server: names joined the inode');
  for (const fid of fetch) noteBehind(s, fid, true);
  if (fetch.length > 0) await catchUp(s, fetch);
}

/**
 * Our own records back on the stream, a run of them that made new names (a deploy written here): accepted in one
 * transaction, then each settled at the server's name as ownBack does, with one read of the KML for what came
 * after them (settleOwnName's question, asked per directory above each). Only the head of `run` that is so (this
 * node's creates and mkdirs, no hard-link group, not applied yet); returns how many it took (0: none, the first
 * goes through ownBack). Synchronous: the caller holds the exchange lock.
 */
export function ownBackRun(s: ClientState, run: readonly KmlRecord[], peer: string): number {
  const db = s.db;
  let since = db.lastRcvdOf(peer);
  let n = 0;
  for (const r of run) {
    const own = r.origin === db.meta.nodeId && r.originSeq !== null && r.tid > since;
    if (!own || (r.kind !== 'create' && r.kind !== 'mkdir') || (r.links ?? []).length > 0) break;
    since = r.tid;
    n++;
  }
  if (n < 2) return 0;
  const took = run.slice(0, n);
  const now = s.o.clock.now();
  db.batch(() => {
    for (const r of took) db.acceptOwn(r, peer, now);
  });
  const last = db.lastRecordsAfter(took[0]!.tid);
  const later = (fid: string, tid: Tid): boolean => (last.get(fid) ?? 0n) > tid;
  for (const r of took) settleOwnName(s, r, later);
  return n;
}

/**
 * Our own change of attributes through a name removed here since: the server set them on the inode, so on
 * every name it links to it (`links`). Such a name here is a file of its own (a link to the removed name was
 * placed as one, its target gone here), and takes them too, unless changed here since. Before, it kept the
 * attributes of the link's time: the journals differed ("other mode") and the client resynced (chaos s53
 * seed 9244: chmod, then rm, off line, while the server linked alpha/h to the name).
 */
function ownChangeThroughRemoved(s: ClientState, sent: KmlRecord): void {
  const db = s.db;
  if (sent.kind !== 'setattr' || sent.links === undefined || sent.links === null || db.objectByFid(sent.fid) !== undefined) return;
  const r = s.apply.localize(sent);
  for (const fid of sent.links) {
    const x = fid === sent.fid ? undefined : db.objectByFid(fid);
    if (x?.type !== 'file' || db.hasPendingLocal(x.fid) || (x.mode === r.mode && x.uid === r.uid && x.gid === r.gid)) continue;
    const d: RecordDraft = { ...r, fid: x.fid, path: x.path, newPath: null, target: null, preVersion: x.version, size: x.size, hash: x.hash, mtimeMs: x.mtimeMs };
    try {
      s.apply.apply(d, null, (identity) => db.setAttrs(x.fid, d, identity));
      s.log.info({ tid: formatTid(sent.tid), path: x.path, mode: r.mode.toString(8) }, 'our change of attributes through a name removed here: set on the name the server links to it');
    } catch (e) {
      s.log.warn({ path: x.path, err: (e as Error).message }, 'cannot set our change of attributes on a name the server links to it');
    }
  }
}

/**
 * This node's removal of a directory, back from the server: the directory the conflict step made again for
 * older server records that put things in it and took them out (the conflict step's removedAhead) goes now.
 * One that holds something is kept: what it holds is this node's, and reintegration makes it there again.
 */
function removeMadeAgain(s: ClientState, r: KmlRecord): void {
  const o = s.db.objectByFid(r.fid);
  if (o?.type !== 'dir') return;
  if (s.db.objectsBelow(o.path).length > 0) {
    s.log.warn({ path: o.path, tid: formatTid(r.tid) }, 'a directory removed here and made again for older server records holds entries now: kept');
    return;
  }
  s.guard.hold(o.path);
  try {
    rmdirSync(join(s.paths.dir, o.path));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      s.log.warn({ path: o.path, err: (e as Error).message }, 'a directory removed here and made again for older server records cannot go: kept');
      return;
    }
  } finally {
    s.guard.release(o.path);
  }
  s.db.forget(o.fid);
}

/**
 * Our own record is back on the stream: every older server record is applied, so the object must be where
 * the server has it. The conflict step of an older server record may have moved it aside meanwhile (its
 * change was accepted, from the reintegration answer, before the stream brought that older record).
 */
function settleOwnName(s: ClientState, r: KmlRecord, later: (fid: string, tid: Tid) => boolean = (fid, tid) => s.db.hasLaterRecord(fid as ObjectRow['fid'], tid)): void {
  if (r.kind === 'unlink' || r.kind === 'rmdir') return;
  const o = s.db.objectByFid(r.fid);
  if (o === undefined || o.version !== r.tid) return;
  // Renamed here since: the LML says where it goes.
  if (s.db.localRecordsOf(r.fid).some((x) => x.kind === 'rename')) return;
  // Below a directory a later change of ours moved, which the server has accepted already (its answer is in
  // the journal before the stream brings it back): that record says where the object is. Before, a write
  // coming back after the rename of its directory was accepted moved the file back to the old name, into a
  // directory made there since (chaos seed 9203: a conflict copy, then "state differs" and a resync).
  for (let p = parentOf(o.path); p !== ''; p = parentOf(p)) {
    const dir = s.db.objectByPath(p);
    if (dir !== undefined && later(dir.fid, r.tid)) return;
  }
  // Below a directory renamed here and not accepted yet, the server's name is under the directory's local name.
  const mine = localNamesOf(r, serverRenames(s.db));
  toServerName(s, o, mine.newPath ?? mine.path, r.tid, 'own change back from the server: moved back to its name');
}

/**
 * A server record names an object, with no local change pending, at another name than here (a conflict
 * step moved it aside while the server kept it, a record sent before the move was accepted as sent):
 * the server's name is the object's name.
 */
export function followServerName(s: ClientState, r: KmlRecord): void {
  if (['create', 'mkdir', 'symlink', 'link'].includes(r.kind)) return;
  const o = s.db.objectByFid(r.fid);
  if (o === undefined || o.path === r.path || s.db.hasPendingLocal(r.fid)) return;
  toServerName(s, o, r.path, r.tid, 'object back at the server\'s name for its record');
}

function toServerName(s: ClientState, o: ObjectRow, want: string, tid: Tid, msg: string): void {
  if (o.path === want || isUnder(want, o.path)) return;
  if (s.db.objectByPath(want) !== undefined || lstatOrNull(join(s.paths.dir, want)) !== null) return;
  if (lstatOrNull(join(s.paths.dir, parentOf(want) === '' ? '.' : parentOf(want)))?.type !== 'dir') return;
  s.guard.hold(o.path);
  s.guard.hold(want);
  try {
    renameSync(join(s.paths.dir, o.path), join(s.paths.dir, want));
    s.db.relocateLocal(o.fid, want);
  } finally {
    s.guard.release(o.path);
    s.guard.release(want);
  }
  // A conflict that kept it beside the name is over: it is the name's object.
  for (const c of s.db.conflicts(false)) {
    if (c.kept === o.path) s.db.resolveConflict(c.id, `back at ${want}: the server kept the object there`, s.o.clock.now());
  }
  s.log.info({ path: want, was: o.path, tid: formatTid(tid) }, msg);
}
