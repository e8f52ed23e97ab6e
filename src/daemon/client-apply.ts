import { chmodSync, renameSync, rmSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { IntersyncError } from '#core/errors.js';
import { NO_VERSION, formatTid, type Fid } from '#core/ids.js';
import { parentOf } from '#core/paths.js';
import type { KmlRecord, RecordDraft } from '#core/record.js';
import { joinLinks, removedLink, splitApart } from '#apply/link-align.js';
import { placedHere } from '#apply/placed.js';
import { applyRecord } from '#apply/record-applier.js';
import { identityOf, lstatOrNull, nowNs } from '#fsio/disk.js';
import type { Redo } from '#reint/conflict-resolver.js';
import { localNamesOf, renamesOver } from '#reint/local-names.js';
import { refusedFids, skipRefused } from '#copy/client-attrs.js';
import { modeChange } from '#policy/attr-policy.js';
import { catchUp, noteBehind } from './client-catch-up.js';
import { followServerName, ownBack } from './client-own.js';
import { linkAlign, type ClientState } from './client-state.js';
import { ForwardJournaler, showPending } from './forward-journaler.js';

/*
 * A client applies one record forwarded by the server: its own change back (client-own.ts), or another node's
 * placed in this node's names, through the conflict step (ConflictResolver) and the apply path, with its hard
 * links grouped as on the server. The names with a # in the comments are the ClientNode methods these
 * functions were; they keep their names.
 */

/** Apply one record from the server: our own accepted change, or another node's through the apply path. */
export async function applyForwarded(s: ClientState, sent: KmlRecord, inline: Buffer | null): Promise<void> {
  const db = s.db;
  const peer = s.serverNode();
  if (sent.tid <= db.lastRcvdOf(peer)) return;
  if (sent.origin === db.meta.nodeId && sent.originSeq !== null) {
    await ownBack(s, sent, peer);
    return;
  }
  // In this node's names: below a directory renamed here and not accepted yet, or by a change of ours the
  // server accepted after this record (renamesOver), a server path is elsewhere; with the modes and owners this node takes from a peer (what it applies is what it journals).
  const place = (): KmlRecord => s.apply.localize(placedHere(db, localNamesOf(sent, renamesOver(db, sent.tid)), (fid) => db.hasPendingLocal(fid)));
  let r: KmlRecord;
  try {
    if (refusedFids(db).has(sent.fid)) throw IntersyncError.UNSAFE_LINK(sent.path, sent.target ?? '', 'a change of an object refused here');
    s.resolver.breakCycle(sent);
    r = place();
  } catch (e) {
    if (!(e instanceof IntersyncError) || e.code !== 'UNSAFE_LINK') throw e;
    s.log.warn({ tid: formatTid(sent.tid), path: sent.path, err: e.message }, 'server record skipped');
    skipRefused(db, sent, peer, s.o.clock.now());
    return;
  }
  const mode = modeChange(r.kind, sent.mode, r.mode);
  if (mode !== null) s.log[mode.warn ? 'warn' : 'info']({ tid: formatTid(sent.tid), path: r.path, mode: sent.mode.toString(8), applied: r.mode.toString(8) }, mode.message);
  const namesOf = (x: KmlRecord): string[] => {
    const here = db.objectByFid(x.fid)?.path;
    return [x.path, ...(x.newPath === null ? [] : [x.newPath]), ...(here === undefined ? [] : [here])];
  };
  let names = namesOf(r);
  // And the server's other names of the inode (its `links`) that are files here: the apply path refuses the
  // change while one of them is written here and not journaled, "retried once capture has journaled it", so
  // capture must look at them before each try. Before, nothing asked it to: a name whose stat moved without an
  // event (a move or removal of another name of its inode, here or applied) was refused three times and the
  // client resynced (chaos seeds 9218, 9220).
  const linked = (sent.links ?? []).flatMap((fid) => {
    const x = fid === sent.fid ? undefined : db.objectByFid(fid);
    return x?.type === 'file' ? [x.path] : [];
  });
  await s.capture.syncPaths([...names, ...linked]);
  // What capture journaled just now counts: a directory moved here a moment ago (its move journaled first, see
  // WatchCapture.syncPaths) takes the record's names along. Before, the record kept the directory's old name,
  // where nothing was any more: the conflict step put the server's content back there and failed (ENOENT).
  const again = place();
  if (again.path !== r.path || again.newPath !== r.newPath || again.target !== r.target) {
    r = again;
    names = namesOf(r);
    await s.capture.syncPaths(names);
  }
  // Held from the conflict step to the commit: a local change in between is journaled after it, against the
  // version this record makes (not against the one it replaces, which the server would refuse for ever).
  const redo = await s.guard.around(names, async () => {
    try {
      return await applyResolved(s, r, inline, peer, sent, place);
    } catch (e) {
      s.resolver.rescue(); // what the conflict step saved to put back later comes back now
      throw e;
    }
  });
  for (const step of redo ?? []) {
    try {
      step();
    } catch (e) {
      s.log.error({ tid: formatTid(r.tid), err: (e as Error).message }, 'cannot redo a local change after a conflict');
    }
  }
  s.resolver.rescue(); // a saved content whose redo failed: beside its name, never left in the conflicts folder only
  s.resolver.reclaim(r);
  // What the redo changed is journaled now, as a local change: not pending in no journal until capture's next event.
  const redone = s.resolver.takeRedone();
  if (redone.length > 0) await s.capture.syncPaths(redone);
  if (s.leftToFetch.length > 0) await catchUp(s, s.leftToFetch.splice(0));
  if ((r.kind === 'rename' || r.kind === 'setattr') && r.hash !== null) {
    // A conflict step may have left the stand-in too: the record names content this node does not hold.
    // Not when a name of its inode here has a change pending: that content is newer than the record's (a
    // write through another name of a hard link, not accepted yet). Before, the server's older content was
    // fetched into this name, taking it off the inode: a resync followed ("state differs").
    const o = db.objectByFid(r.fid);
    const pendingOnInode = o?.type === 'file' && o.ino !== null && db.objectsByIno(o.ino).some((x) => db.hasPendingLocal(x.fid));
    if (o?.type === 'file' && o.hash !== r.hash && !db.hasPendingLocal(r.fid) && !pendingOnInode) noteBehind(s, r.fid, true);
    await catchUp(s, [r.fid]);
  }
}

/**
 * A server's change of a file this node does not have, with nothing pending for it here (lost here without a
 * record): the file is placed at the name the change leaves it at, with the server's content now, and the
 * record kept as the server's history. Before, it did not apply three times ("object … does not exist here")
 * and the client resynced the whole fileset. A directory is not restored this way (what it holds is unknown).
 */
async function restoreMissing(s: ClientState, r: KmlRecord, peer: string): Promise<boolean> {
  const db = s.db;
  if (!['write', 'truncate', 'setattr', 'rename'].includes(r.kind) || r.hash === null || db.objectByFid(r.fid) !== undefined || db.hasPendingLocal(r.fid)) return false;
  if (db.hasLaterRecord(r.fid, r.tid)) {
    // Removed here by a change of ours the server accepted after this record: nothing to place.
    db.skipRemote(r, peer, s.o.clock.now());
    return true;
  }
  const at = r.newPath ?? r.path;
  const parent = parentOf(at);
  if (db.objectByPath(at) !== undefined || lstatOrNull(join(s.paths.dir, at)) !== null) return false;
  if ((parent !== '' && db.objectByPath(parent)?.type !== 'dir') || lstatOrNull(join(s.paths.dir, parent === '' ? '.' : parent))?.type !== 'dir') return false;
  const base: RecordDraft = { ...r, kind: 'create', path: at, newPath: null, target: null, preVersion: NO_VERSION };
  const { staged } = await s.apply.stageCurrent(base, s.source);
  s.guard.hold(at);
  try {
    chmodSync(staged.file, r.mode);
    utimesSync(staged.file, r.mtimeMs / 1000, r.mtimeMs / 1000);
    renameSync(staged.file, join(s.paths.dir, at));
    const st = lstatOrNull(join(s.paths.dir, at));
    db.batch(() => {
      db.commitCopy({ ...base, hash: staged.hash, size: staged.size }, r.tid, st === null ? null : identityOf(st, nowNs()));
      db.skipRemote(r, peer, s.o.clock.now());
    });
  } finally {
    rmSync(staged.file, { force: true });
    s.guard.release(at);
  }
  s.log.warn({ tid: formatTid(r.tid), kind: r.kind, path: at, fid: r.fid }, 'a file this node did not have, changed on the server: placed with the server\'s content');
  return true;
}

/** The conflict step, then the apply path, for a forwarded record: the local intent to redo after it. */
async function applyResolved(s: ClientState, placed: KmlRecord, inline: Buffer | null, peer: string, sent: KmlRecord, place: () => KmlRecord): Promise<Redo[] | null> {
  const db = s.db;
  // Names the server holds apart leave the inode first, with what they hold: the conflict step then meets
  // the names as the server groups them (apply/link-align.ts).
  const { left, fetch } = splitApart(linkAlign(s), placed);
  if (left.length > 0) s.log.warn({ tid: formatTid(placed.tid), path: placed.path, left }, 'hard links grouped as on the server: names left the inode');
  // Their content here may be a write made through another name: the server's is fetched after the record.
  for (const fid of fetch) noteBehind(s, fid, true);
  s.leftToFetch.push(...fetch);
  const steps = await s.resolver.prepare(placed, sent);
  if (steps !== null && !Array.isArray(steps)) return steps.applied; // journaled by the conflict step
  // The record in this node's names as the conflict step left them: a directory it set beside takes its pending
  // move, and the record's names below it, along. Before, the names of before the step were kept: a file the
  // server moved out of a directory a client had moved onto the name of one it removed was taken for one already
  // in the removed directory, which the step brought back, and moved there; the server's move of it onto
  // itself then did not apply ("the new name is taken"), a resync (chaos s94 seed 9345, c3;
  // test/long/moved-over-gained-from-inside.test.ts).
  const r0 = steps === null ? placed : place();
  // A hard link to a file removed here (its removal not accepted yet): the name is placed as a file of its
  // own with the server's content, and the removal then takes only the other name on the server. (Before,
  // the link did not apply three times and the client resynced.) The digest is the same; the KML says create.
  let r = r0;
  let placedFor: Fid | undefined; // the removed name a link placed as a file of its own was made to
  // By identity: the file the link names (targetFid) is not a file here (removed here, or lost): whatever
  // holds its name now is another file, and the apply path's check would refuse the link for ever.
  const goneHere = (fid: Fid | null | undefined): boolean => fid !== undefined && fid !== null && db.objectByFid(fid)?.type !== 'file';
  const removal = r.kind === 'link' && r.target !== null && db.objectByPath(r.target) === undefined
    ? db.pendingRemovals('unlink', r.target).find((x) => x.path === r.target) : undefined;
  if (r.kind === 'link' && r.target !== null && (goneHere(r.targetFid) || removal !== undefined)) {
    // The name removed here was one of several of its inode, which lives on here under another: the new name
    // joins that inode, as it joins the target's on the server (whose other names are these). Before, it was
    // a file of its own: once the removal was accepted the server held the new name and the others as one
    // file, this node as two, for good (the digest does not cover link groups; chaos seed 9207, c1).
    const removed = r.targetFid ?? removal?.fid;
    const survivor = removed === undefined || removed === null ? undefined : removedLink(db, s.paths.dir, removed);
    if (survivor !== undefined) {
      r = { ...r, target: survivor.path, targetFid: survivor.fid };
      s.log.warn({ tid: formatTid(r.tid), path: r.path, target: r0.target, linkedTo: survivor.path }, 'a hard link to a file removed here: made to another name of its inode here');
    } else {
      r = { ...r, kind: 'create', target: null };
      placedFor = removed ?? undefined;
      s.log.warn({ tid: formatTid(r.tid), path: r.path, target: r0.target }, 'a hard link to a file removed here: placed as a file of its own');
    }
  }
  followServerName(s, r);
  // Still elsewhere (the server's name is in a directory that is not here) with nothing pending any more: the
  // change goes where the object is (by identity, placedHere), not refused as made "elsewhere".
  if (!db.hasPendingLocal(r.fid)) r = placedHere(db, r);
  // The server removes an object this node does not have, with nothing pending for it here: the end is the
  // same (whatever holds the name here is another object), so the record is kept as the server's history
  // and nothing changes. Before, it did not apply three times ("object … does not exist here"): a resync.
  if ((r.kind === 'unlink' || r.kind === 'rmdir') && db.objectByFid(r.fid) === undefined && !db.hasPendingLocal(r.fid)) {
    s.log.warn({ tid: formatTid(r.tid), path: r.path, fid: r.fid }, 'the server removed an object this node does not have: nothing to do');
    db.skipRemote(r, peer, s.o.clock.now());
    return steps;
  }
  if (await restoreMissing(s, r, peer)) return steps;
  // Under this node's own later change of attributes (accepted before the stream brought `r`): the content
  // goes in, the attributes stay (ApplyPath#attrsAbove).
  const above = s.apply.attrsAbove(r);
  if (above !== null) r = { ...r, mode: above.mode, uid: above.uid, gid: above.gid };
  // Changed or moved again on the server meanwhile: its newer content, or an empty stand-in when it holds none
  // at the record's name (a later record brings the rest); the name is kept meanwhile. Checked, the server's
  // names of the inode joined, and journaled by the ForwardJournaler.
  const j = new ForwardJournaler(s, peer);
  await applyRecord(s.apply, r, { inline, source: s.source, standIn: true }, j);
  // On the server the new name is one file with the removed one: the next link to that name is made to this
  // file (removedLink). Before, it was a file of its own too, and the server held the two links as one file
  // once it accepted the removal, this node as two, for good (chaos s40 seed 9278, c2).
  const placedIno = placedFor === undefined ? null : db.objectByFid(r.fid)?.ino ?? null;
  if (placedFor !== undefined && placedIno !== null) db.noteRemovedLinkAt(placedFor, placedIno);
  if (j.placesInode) {
    // Before, the names the server links to it stayed files of their own here: the server held them as one
    // file, this node as several, for good (chaos seed 9215, c1).
    const late = joinLinks(linkAlign(s), r);
    if (late.length > 0) s.log.warn({ tid: formatTid(r.tid), path: r.path, joined: late }, 'hard links grouped as on the server: names joined the inode');
  }
  return steps;
}

/**
 * What this node holds at a record's names (in the server's names and in this node's), in the journal and on
 * disk, with the pending records of what is there: a log line that tells why a record did not apply.
 */
export function namesNow(s: ClientState, r: KmlRecord): Record<string, unknown> {
  const here = s.db.objectByFid(r.fid)?.path;
  const names = [...new Set([r.path, ...(r.newPath === null ? [] : [r.newPath]), ...(here === undefined ? [] : [here])])];
  return Object.fromEntries(names.map((p) => {
    const o = s.db.objectByPath(p);
    const st = lstatOrNull(join(s.paths.dir, p));
    return [p, {
      journal: o === undefined ? null : `${o.fid} ${o.type} @${formatTid(o.version)} ino ${o.ino ?? '-'}`,
      disk: st === null ? null : `${st.type} ino ${st.ino}`,
      pending: o === undefined ? [] : s.db.localRecordsOf(o.fid).slice(0, 5).map(showPending),
    }];
  }));
}
