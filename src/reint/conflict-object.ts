import { chmodSync, linkSync, renameSync, rmSync, symlinkSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { IntersyncError } from '#core/errors.js';
import { formatTid } from '#core/ids.js';
import { isUnder, parentOf } from '#core/paths.js';
import type { KmlRecord, RecordDraft } from '#core/record.js';
import { removedLink } from '#apply/link-align.js';
import { conflictKind } from '#policy/conflict-policy.js';
import { EMPTY_SHA256, lstatOrNull } from '#fsio/disk.js';
import { restoreBase, serverAttrs } from './conflict-base.js';
import { decideConflict, record } from './conflict-decide.js';
import { conflictPath, dirOnDisk, mkdir, move, removeHeld } from './conflict-disk.js';
import { changesThroughLinks, chmodThroughRemoved, toHeir, writtenApart } from './conflict-links.js';
import { takenHere } from './conflict-parents.js';
import { chmod, keepFile, putBack, remove, save, settle, unguardedRename } from './conflict-redo.js';
import type { Redo, ResolverState } from './conflict-state.js';

// The object step: the record's own object has local changes the server has not accepted. The local content
// is kept, the object goes back to the server's base state at the server's name (one transaction), and the
// local intent is decided and redone over the server's result. One function, like the sequence it is: what
// can fail comes first, then the transaction, then the decision and the redo steps.

/** The record's own object has local changes not accepted yet. */
export async function objectStep(s: ResolverState, r: KmlRecord, redo: Redo[]): Promise<void> {
  const db = s.d.db;
  if (['create', 'mkdir', 'symlink', 'link'].includes(r.kind)) return;
  const local = db.localRecordsOf(r.fid);
  // Hard links: a change here through another name of the inode is a change of this object too (the server's
  // change is written into the same inode, and the other name's record, made against the old version, would
  // be refused for ever).
  const viaLinks = changesThroughLinks(s, r);
  if (local.length === 0 && viaLinks.length === 0) return;
  s.touched = true;
  if (toHeir(s, r, local)) return;
  const o = db.objectByFid(r.fid);
  const removedHere = o === undefined;
  // Removed on both sides: the server's removal is the end, and the local one has nothing left to do (nor the
  // object's other records here, which went with it). Nothing on disk moves; ClientNode keeps the record as
  // the server's history. Before, the object's row was made again at the server's name to apply the removal
  // to, and what held that name here meanwhile (a directory moved there, its make accepted already) went
  // beside it for good: the names differed, a resync (chaos s53 seed 9260; test/long/removed-both-taken.test.ts).
  // Not when a pending record needs it on the server (made in the directory, or linked to the file, before
  // its removal here): the steps below keep the removal, after those records (chaos s54 seed 9255, where
  // the create in the directory was refused for want of it; test/long/removed-both-used.test.ts).
  const needed = r.kind === 'rmdir' ? db.pendingInto(r.fid).length > 0 : db.pendingLinkTo(r.fid);
  if (removedHere && (r.kind === 'unlink' || r.kind === 'rmdir') && viaLinks.length === 0 && !needed) {
    db.batch(() => {
      chmodThroughRemoved(s, r, local, redo);
      db.dropLocal(r.fid);
    });
    s.d.log.info({ path: r.path, tid: formatTid(r.tid) }, 'removed on both sides: the local removal is dropped');
    return;
  }
  const changed = [...local, ...viaLinks];
  const contentHere = changed.some((x) => x.kind === 'write' || x.kind === 'truncate' || x.kind === 'create');
  // Where a local move left the object is where it is here now, not the name its last rename record gives it:
  // that name is of the record's time, and a later move of a directory above it (or a conflict step's, which
  // rewrote the record) took the object on. Before, the redo moved it to the name of then, whose directory was
  // elsewhere by now: ENOENT, "cannot redo a local change after a conflict", and the move was lost (chaos seeds
  // 9208, c3: `mv delta/sub/e epsilon/h`, then `mv epsilon alpha/sub`; 9213, c2; test/redo-moved.test.ts).
  const lastRename = local.filter((x) => x.kind === 'rename').at(-1);
  const renamedHere = lastRename === undefined ? null : o?.path ?? db.nameAfter(lastRename.newPath ?? lastRename.path, lastRename.seq);
  const modeHere = changed.some((x) => x.kind === 'setattr') ? o?.mode ?? null : null;
  const remoteContent = r.kind === 'write' || r.kind === 'truncate';
  const remoteGone = r.kind === 'unlink' || r.kind === 'rmdir';

  // A hard-linked name removed here whose inode lives on here under another name: what was written through
  // it is in that inode (no record of the other name says so), and on the server the names are one inode.
  // (The server removing the name too meets nothing: the write ships as the other name's, see Reconciler#carrierOf.)
  const survivor = removedHere && !remoteGone ? removedLink(s.d.db, s.d.root, r.fid) : undefined;

  // Removed here: its removal says what it was (a symlink's names its target). Before, a symlink removed here
  // and renamed on the server came back as an empty file, and the client resynced ("state differs").
  const removal = local.find((x) => x.kind === 'unlink' || x.kind === 'rmdir');
  const type = o?.type ?? (removal?.kind === 'rmdir' ? 'dir' : removal?.target !== null && removal?.target !== undefined ? 'symlink' : 'file');
  // The server's attributes where the row holds a chmod made here (redone after the record, see below): the
  // redo then changes the mode capture compares with, and journals it again. Before, the base took the local
  // mode, a move kept it, the redo's chmod changed nothing capture could see, and the chmod never reached the
  // server; the client differed from its digest and resynced, which lost it (chaos s51 seed 9261;
  // test/long/chmod-moved.test.ts).
  const attrs = o === undefined ? undefined : modeHere !== null ? { ...serverAttrs(s, o, r), mtimeMs: o.mtimeMs } : { mode: o.mode, uid: o.uid, gid: o.gid, mtimeMs: o.mtimeMs };
  const base: RecordDraft = attrs !== undefined ? { ...r, ...attrs } : { ...local.at(-1)!, path: r.path };
  const finalPath = r.kind === 'rename' ? r.newPath! : r.path;
  // A name removed here whose inode lives on here under another name (nothing written through either since)
  // comes back as a name of that inode, as on the server, not as a file of its own with the server's content:
  // before, the two were one file on the server and two here, for good (chaos s42 seed 9253;
  // test/long/removed-link-moved.test.ts).
  const needsServerContent = type === 'file' && !remoteContent && !remoteGone && (contentHere || (removedHere && survivor === undefined));
  // What can fail comes before anything changes, so that a try that fails leaves the journal and the disk as
  // they were and the next one meets the same pending records: the server's content (a cut link), the
  // directory the object goes in, the name at the end of a move. Before, such a failure came after the
  // object's pending records were dropped, and the next try had nothing left to keep.
  const fetched = needsServerContent ? await s.d.apply.stageCurrent(base, s.d.source) : null;
  // The object goes back to the server's name of it (moved back, or made again when removed here), where the
  // record then applies. A server's move of an object whose directory is not here (removed here with it:
  // `rm -r d` here, `mv d/x y` there) puts it where the move leaves it instead, and the record is journaled
  // with it here: nothing is made in a directory that is not here, and the directory's removal stays (the
  // server only took an entry out of it). Before, the object was made again at its old name, which failed
  // (ENOENT) after its pending removal was dropped: the retries found neither ("object … does not exist
  // here"), and the client resynced (chaos seeds 9201, 9202, 9213; test/long/removed-with-dir.test.ts).
  const making = removedHere && !remoteGone;
  const back = o !== undefined && o.path !== r.path && lstatOrNull(join(s.d.root, o.path)) !== null;
  // The server removes it, and its name there is in a directory that is not here (removed here after a move
  // took the object out of it, then a move of a directory above): the removal goes where the object is here
  // (ClientNode places the record by identity once nothing is pending). Before, it was refused ("parent …
  // does not exist here") three times, and the client resynced (chaos s40 seed 9271;
  // test/long/removed-moved-out.test.ts).
  // So when the server's name of it lies inside it here (moved out of its parent, and the parent into it):
  // moving it back is moving it inside itself (EINVAL; chaos s44 seed 9230;
  // test/long/removed-dir-moved-over.test.ts).
  const stay = back && remoteGone && (!dirOnDisk(s, parentOf(r.path)) || isUnder(r.path, o.path));
  const moving = o !== undefined && o.path !== r.path && !stay;
  const placing = making || (back && !stay);
  // So when a file or symlink is made again and another object holds its old name here (moved over it,
  // `mv x e/f` here while the server moved e/f away): that object keeps the name. Before, it went beside under
  // a conflict name, for nothing; and where its pending move was named otherwise than it was found, the server
  // kept the old name and this node the conflict name (chaos s89 seed 9302, c1;
  // test/long/replaced-then-moved-there.test.ts). Not a directory: the pending records of what it held here
  // name it at its old name, and only the server's move from there takes them along (as the name's holder's
  // records go with it beside; test/long/moved-out-removed-parent-moved.test.ts).
  const heldHere = making && type !== 'dir' && (db.objectByPath(r.path) ?? r).fid !== r.fid;
  const atEnd = placing && r.kind === 'rename' && (!dirOnDisk(s, parentOf(r.path)) || takenHere(s, r.path) || heldHere);
  const at = atEnd ? finalPath : stay ? o.path : r.path;
  const refuse = (why: string): never => {
    if (fetched !== null) rmSync(fetched.staged.file, { force: true });
    throw IntersyncError.CONFLICT(at, why);
  };
  if (placing && !dirOnDisk(s, parentOf(at))) refuse(`parent ${parentOf(at)} does not exist here`);
  // (The object itself at the end: moved there here too, the same move on both sides.)
  if (atEnd && o?.path !== at && lstatOrNull(join(s.d.root, at)) !== null) refuse('an unjournaled file has this name here');

  // Keep the local content before anything moves.
  let saved: string | null = null;
  if (o !== undefined && o.type === 'file' && contentHere && lstatOrNull(join(s.d.root, o.path)) !== null) {
    saved = keepFile(s, o.path, r.path, r.tid);
    save(s, saved, r.path, r.tid);
  } else if (survivor !== undefined && contentHere) {
    saved = keepFile(s, survivor.path, r.path, r.tid);
    save(s, saved, r.path, r.tid);
  }
  // Names the server links to the object that are files of their own here (grouped otherwise), written
  // here: what they hold is not in the object's inode, so each is kept beside its own name too. Before, the
  // names joined the inode after this step (apply/link-align.ts) and what was written there was gone.
  const apart = writtenApart(s, o ?? survivor, viaLinks, r.tid);

  // Back to the server's base state of the object, at the server's name, so `r` applies. The other names of
  // the inode take the server's change with it: what they changed here is redone below like this name's.
  const dropPending = (): void => {
    db.dropLocal(r.fid);
    db.rewriteLml([], viaLinks.map((x) => x.seq));
  };
  // Once its pending moves are dropped, the records name the object at its name before the first of them, as the
  // pending renames above it since carry that name (LmlRewriter#dropLocal), not at its name on disk, which only
  // those moves gave it: the records follow it from there. Before, they followed it from its name on disk, and
  // an older era's records below the name another object had then were taken for its own: `mv alpha/deep
  // alpha/sub; echo > alpha/sub/b.txt; mv alpha gamma/sub; mv gamma/sub/sub alpha` here while the server removed
  // alpha/deep made the file's create name alpha/deep/deep/b.txt, refused for ever (chaos s97 seed 9382, c1;
  // test/long/removed-dir-moved-twice.test.ts).
  const firstMove = local.find((x) => x.kind === 'rename' && x.newPath !== null);
  const lmlName = (): string | undefined => (firstMove === undefined ? undefined : db.nameAfter(firstMove.path, firstMove.seq));
  // In one transaction from here: a process killed in between leaves the pending records as they were (they
  // are what the next start sees of the local changes), never those records dropped while the object's row
  // still holds the local content as if the server had it (then a fetch put the server's content over it, and
  // the local write was on no node: chaos s45 seed 9291, c1).
  db.batch(() => {
    if (survivor !== undefined) chmodThroughRemoved(s, r, local, redo);
    if (!atEnd) dropPending();
    // The server's name may be held here by another object now (made or moved here meanwhile): move it aside.
    // Not when the object goes straight to the end of the server's move: the name is not needed, and whatever
    // holds it keeps it. Before, it was moved aside still, with no record (its name came from its directory's
    // pending move): the server kept the old name, this node the conflict name, and it resynced (chaos s75
    // seed 9255, c2; test/long/removed-moved-name-taken.test.ts).
    const occupant = stay || atEnd ? undefined : db.objectByPath(r.path);
    if (occupant !== undefined && occupant.fid !== r.fid) {
      const aside = conflictPath(s, r.path, r.tid);
      move(s, r.path, aside);
      db.relocateLocal(occupant.fid, aside);
      record(s, r, r.path, 'name/name', 'keep-both', aside, 'open', null);
    }
    if (moving && lstatOrNull(join(s.d.root, at)) === null) {
      // Back at the server's name, with what it holds (a directory's entries and their pending records).
      move(s, o.path, at);
      if (!atEnd) db.relocateLocal(o.fid, r.path, lmlName());
    }
    let baseHere: RecordDraft = { ...base, path: at };
    if (fetched !== null) {
      // The server's current content of the object (whatever its version now), or an empty stand-in when it
      // holds none at the object's name (removed, or moved and not journaled yet): a later record of the server
      // removes it, or the client fetches the content after it (catchUp (daemon/client-catch-up.ts)).
      const { staged, placeholder } = fetched;
      if (placeholder) baseHere = { ...baseHere, hash: EMPTY_SHA256, size: 0 };
      if (lstatOrNull(join(s.d.root, at)) === null) {
        // The row says what is placed: newer content than the base too (a later record of the server says so).
        baseHere = { ...baseHere, hash: staged.hash, size: staged.size };
        s.d.guard.hold(at);
        try {
          chmodSync(staged.file, base.mode);
          utimesSync(staged.file, base.mtimeMs / 1000, base.mtimeMs / 1000);
          renameSync(staged.file, join(s.d.root, at));
        } finally {
          s.d.guard.release(at);
        }
      } else {
        rmSync(staged.file, { force: true });
      }
    } else if (making && type === 'dir') {
      mkdir(s, at, base.mode);
    } else if (making && type === 'symlink' && base.target !== null && lstatOrNull(join(s.d.root, at)) === null) {
      s.d.guard.hold(at);
      try {
        symlinkSync(base.target, join(s.d.root, at));
      } finally {
        s.d.guard.release(at);
      }
    } else if (survivor !== undefined && !remoteGone && lstatOrNull(join(s.d.root, at)) === null) {
      // Back as a name of that inode, as on the server: the server's change then goes into it through both.
      s.d.guard.hold(at);
      try {
        linkSync(join(s.d.root, survivor.path), join(s.d.root, at));
      } finally {
        s.d.guard.release(at);
      }
      // (The server's mode where a chmod made here through the removed name is redone: see chmodThroughRemoved.)
      const chmodded = local.some((x) => x.kind === 'setattr');
      const mode = chmodded ? r.mode : survivor.mode;
      if (chmodded) redo.push(() => s.redone.add(at));
      baseHere = { ...baseHere, mode, uid: survivor.uid, gid: survivor.gid, mtimeMs: survivor.mtimeMs, hash: survivor.hash, size: survivor.size };
    }
    if (atEnd) {
      // Journaled as the apply path would have, in one transaction with the pending records' end: the base at
      // the record's name, then the server's move.
      const st = lstatOrNull(join(s.d.root, at));
      try {
        db.batch(() => {
          dropPending();
          // Another object holds the record's name here (left where it is, see above): the base goes at the
          // move's end, which the move then keeps.
          const baseAt = db.objectByPath(r.path) === undefined ? r.path : at;
          if (o !== undefined) db.relocateLocal(o.fid, baseAt, lmlName());
          else restoreBase(s, { ...baseHere, path: baseAt }, r.preVersion, type);
          db.commitRemote([{ record: r, identity: st === null ? null : { ino: st.ino, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, racy: true } }], s.d.serverNode(), s.d.clock.now());
        });
      } catch (e) {
        // Nothing of it journaled: the disk goes back as it was, and the next try meets the same.
        if (o !== undefined) move(s, at, o.path);
        else removeHeld(s, at);
        throw e;
      }
      s.applied = true;
    } else {
      restoreBase(s, baseHere, r.preVersion, type);
    }
  });

  // Decide, then redo the local intent over the server's result.
  const kind = conflictKind({ removedHere, contentHere, renamedHere: renamedHere !== null, modeHere: modeHere !== null }, r.kind);
  for (const { saved: kept, name } of apart) {
    const aside = conflictPath(s, name, r.tid);
    redo.push(() => putBack(s, kept, aside));
    record(s, r, name, 'write/write', 'keep-both', aside, 'open', null);
    s.d.log.warn({ path: name, keptAs: aside, tid: formatTid(r.tid) }, 'conflict: changed on both sides (a name the server links to it); local kept beside');
  }
  if (kind === 'unlink/write') {
    // A delete loses no data: the server's change brings the object back, unless the client must win.
    const decision = decideConflict(s, r, r.path, kind, undefined);
    if (decision === 'local' && !remoteGone) redo.push(() => remove(s, finalPath));
    record(s, r, r.path, kind, decision, null, 'resolved', decision === 'local' ? 'removed again here' : 'the server\'s change brought it back');
    if (saved !== null) {
      // What was written here through the removed name (kept from the inode's other name): beside it.
      const aside = conflictPath(s, r.path, r.tid);
      redo.push(() => putBack(s, saved!, aside));
      record(s, r, r.path, 'write/write', 'keep-both', aside, 'open', null);
      s.d.log.warn({ path: r.path, keptAs: aside, tid: formatTid(r.tid) }, 'conflict: written here through a name removed since, and changed on the server; local kept beside');
    }
    return;
  }
  // Changes that do not overlap merge whatever the policy: a name, a mode, a content change each survive.
  if (renamedHere !== null && r.kind !== 'rename' && !remoteGone) redo.push(() => unguardedRename(s, finalPath, renamedHere));
  if (modeHere !== null && r.kind !== 'setattr' && !remoteGone) redo.push(() => chmod(s, renamedHere ?? finalPath, modeHere));
  if (saved === null) {
    if (kind === 'rename/rename') {
      const decision = decideConflict(s, r, r.path, kind, o);
      if (decision === 'local' && renamedHere !== null) redo.push(() => unguardedRename(s, finalPath, renamedHere));
      record(s, r, r.path, kind, decision, null, 'resolved', decision === 'local' ? `renamed to ${renamedHere}` : `kept the server's name ${finalPath}`);
    }
    return;
  }
  if (kind === 'write/setattr' || kind === 'write/rename') {
    // The server changed only attributes, or only the name: the local content goes back in place (at the new
    // name), as a local write. Before, a move there and a write here were kept as two files (keep-both).
    redo.push(() => putBack(s, saved!, renamedHere ?? finalPath));
    record(s, r, r.path, kind, 'keep-both', null, 'resolved', kind === 'write/rename' ? 'merged: local content, the server\'s name' : 'merged: local content, server attributes');
    return;
  }
  const decision = decideConflict(s, r, r.path, kind, o);
  if (decision === 'local') {
    redo.push(() => {
      if (!remoteGone) keepFile(s, finalPath, finalPath, r.tid);
      putBack(s, saved!, renamedHere ?? finalPath);
    });
    record(s, r, r.path, kind, decision, null, 'resolved', 'the local version replaced the server\'s');
  } else if (decision === 'remote') {
    record(s, r, r.path, kind, decision, s.d.policy().discard ? null : saved, 'resolved', 'the server\'s version kept');
    settle(s, saved); // where the policy keeps it: the conflicts folder
    if (s.d.policy().discard) rmSync(saved, { force: true });
  } else {
    const aside = conflictPath(s, r.path, r.tid);
    redo.push(() => putBack(s, saved!, aside));
    record(s, r, r.path, kind, 'keep-both', aside, 'open', null);
    s.d.log.warn({ path: r.path, keptAs: aside, tid: formatTid(r.tid) }, 'conflict: changed on both sides; local kept beside');
  }
}
