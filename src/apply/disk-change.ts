import { chmodSync, copyFileSync, linkSync, lutimesSync, mkdirSync, renameSync, rmSync, rmdirSync, symlinkSync, unlinkSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { IntersyncError } from '#core/errors.js';
import type { RecordDraft } from '#core/record.js';
import type { ObjectRow, StatIdentity } from '#journal/fileset-db.js';
import { DELTA_THRESHOLD } from '#core/format.js';
import { lstatOrNull, moveNoReplace } from '#fsio/disk.js';
import type { ApplyState } from './apply-deps.js';
import { confine } from './confine.js';
import { HeldFile, keepLateWrite } from './late-write.js';
import { placeNew, tryLchown } from './new-file.js';
import { apartWrittenSince, namesAsJournaled, otherNamesOnDisk, renewNames } from './other-names.js';
import type { Attrs, Staged } from './staging.js';
import { appliedIdentity, changedSinceJournaled } from './stat-identity.js';
import { freeOld, keepAside, tmpName } from './tmp-folder.js';
import { rmIfThere, undo } from './undo.js';
import type { PendingVersion } from './versions.js';

/** ApplyPath#apply: the check of a file about to be replaced or removed against its row, then the change of the disk and the commit. */
export function applyChange(s: ApplyState, d: RecordDraft, staged: Staged | null, commit: (identity: StatIdentity | null) => void, intent: string | number | null): void {
  // A change that replaces or removes a file's content must not take a local write that capture has not
  // journaled yet with it (made between capture's last look and now): refused for the moment, the write is
  // journaled first and meets the conflict step when the change comes again. Only the stat identity counts:
  // the conflict step may have set the row's content to the server's base on purpose.
  // The file is held open from this check on (late-write.ts): a write landing between the check and the
  // change goes into the inode the change replaces, and is kept from there once the change is in.
  let held: HeldFile | null = null;
  if (d.kind === 'write' || d.kind === 'truncate' || d.kind === 'unlink') {
    const row = s.deps.db.objectByFid(d.fid);
    const at = join(s.deps.root, d.path);
    const file = row?.type === 'file' && row.ino !== null ? row : undefined;
    // Not a removal of one name of an inode with others: what is written through them stays theirs.
    const holds = file !== undefined && !(d.kind === 'unlink' && s.deps.db.objectsByIno(file.ino!).length > 1);
    held = holds ? HeldFile.open(at) : null;
    const pre = file !== undefined ? held?.stat ?? lstatOrNull(at) : null;
    if (row !== undefined && pre !== null && (pre.ino !== row.ino || pre.mtimeNs !== row.mtimeNs || pre.ctimeNs !== row.ctimeNs)) {
      held?.close();
      if (staged !== null) rmSync(staged.file, { force: true });
      throw IntersyncError.CONFLICT(d.path, 'written here since it was journaled; retried once capture has journaled it');
    }
    // Its name is gone from the disk and capture has not journaled that yet (a program's move or removal a
    // moment ago): a write made there would be a file of its own while the journal gave its content to the
    // inode's other names, which hold the old one (chaos s59 seed 9273: capture then journaled the moved name
    // as a link of that inode and the old content over the write, lost on every node;
    // test/apply-move-race.test.ts). Refused for the moment: the record comes again once the move is journaled.
    if (file !== undefined && pre === null && d.kind !== 'unlink') {
      if (staged !== null) rmSync(staged.file, { force: true });
      throw IntersyncError.CONFLICT(d.path, 'moved or removed here since it was journaled; retried once capture has journaled it');
    }
  }
  try {
    const into = applyChecked(s, d, staged, commit, intent, held);
    if (held !== null && into === 'replaced') keepLateWrite(s.deps, d, held);
  } finally {
    held?.close();
  }
}

/**
 * ApplyPath#apply once checked. Says where a write or truncate went: into a new file at the names (`replaced`),
 * into the file's inode in place, or both (`filled`: a name of the old inode a program moved or linked
 * meanwhile). The other two kept a late local write already; after `replaced` the caller does (keepLateWrite).
 */
function applyChecked(
  s: ApplyState, d: RecordDraft, staged: Staged | null, commit: (identity: StatIdentity | null) => void, intent: string | number | null, held: HeldFile | null,
): 'replaced' | 'in-place' | 'filled' {
  // So with the server's other names of the inode (KmlRecord.links) that are files of their own here: the
  // commit gives each the change's version, and a write made here through one of them, not journaled yet,
  // would then pass for one made on the server's content and replace it everywhere (chaos seed 9202, lost
  // write). Journaled first, it meets the conflict step (changesThroughLinks) when the record comes again.
  const apart = apartWrittenSince(s.deps.db, s.deps.root, d);
  if (apart !== null) {
    if (staged !== null) rmSync(staged.file, { force: true });
    throw IntersyncError.CONFLICT(apart, 'a name the server links to this file was written here since it was journaled; retried once capture has journaled it');
  }
  const names = d.newPath === null ? [d.path] : [d.path, d.newPath];
  for (const n of names) s.deps.guard.hold(n);
  // Noted before the disk changes, cleared once journaled: a start after a crash in between finds it. A number is
  // a note written already (a run's notes go in one transaction before any of its changes: ApplyPath#noteMany).
  const inflight = intent === null ? null : typeof intent === 'number' ? intent : s.deps.db.markInflight(intent);
  let consumed = false;
  let merged = false; // the change was on disk already: nothing to take back if the journal refuses it
  const swapped: ObjectRow[] = []; // the other names of a hard-linked file that took the new content's inode
  let replacedIno: string | null = null; // the inode the new file replaced at its names
  let into: 'replaced' | 'in-place' | 'filled' = 'replaced';
  let version: PendingVersion | null = null;
  try {
    const abs = confine(s.deps.root, d.path);
    // The old content a write or removal replaces, kept when this node keeps versions (versions.ts).
    version = s.deps.versions?.begin(d, s.deps.db, abs) ?? null;
    // A rename or setattr keeps the file's content: if it changed here since it was journaled (capture is a
    // moment behind), the identity stored after must not vouch for it, so that capture reads it again.
    // So with a link: the stat after it is every name's of the inode, and a write made through one of them a
    // moment ago would pass for journaled (lost writes, chaos seeds 9202 and 9220).
    const keepsContent = d.kind === 'rename' || d.kind === 'setattr';
    const unseen = keepsContent ? changedSinceJournaled(s.deps.db.objectByFid(d.fid), lstatOrNull(abs))
      : d.kind === 'link' && d.target !== null && changedSinceJournaled(s.deps.db.objectByPath(d.target), lstatOrNull(confine(s.deps.root, d.target)));
    let after: string | null = abs;
    // A removal or a move of one name of a hard-linked file moves the inode's change time under its other names,
    // and capture has no event for them: those journaled as they were are so still (else each looked written
    // here since journaled, and the link steps and the apply path's checks refused or skipped them: a resync;
    // a server's move of one name, chaos seed 9218).
    const row = d.kind === 'unlink' || d.kind === 'rename' ? s.deps.db.objectByFid(d.fid) : undefined;
    const keptNames = row?.type === 'file' ? namesAsJournaled(s.deps.db, s.deps.root, row.ino, row.fid) : [];
    switch (d.kind) {
      case 'create':
      case 'write':
      case 'truncate': {
        if (staged === null) throw new Error(`apply ${d.kind} ${d.path}: nothing staged`);
        const existing = lstatOrNull(abs);
        if (d.kind === 'create' && existing !== null) throw IntersyncError.CONFLICT(d.path, 'an unjournaled file has this name here');
        if (d.kind !== 'create' && existing?.type === 'file' && existing.nlink > 1) {
          // Hard links share the inode: every name must show the new content. The new file takes each name of
          // the old inode in turn (a link of it renamed over the name), as a file with one name takes its one:
          // a reader, or a program writing the file in place, sees the old version or the new one whole.
          // Before, the content went into the shared inode in place (truncate, then copy): a local write in
          // that moment read the file empty, and went out as made on the server's content it never saw, which
          // it then replaced on every node (chaos seeds 9202 and 9203, "DESTROYED"; link-apply-atomic.test.ts).
          const others = otherNamesOnDisk(s.deps.db, s.deps.root, d, existing);
          if (others !== null) {
            const old = existing.size >= DELTA_THRESHOLD || version !== null ? keepAside(s.deps.tmpDir, abs) : null;
            tryLchown(staged.file, d.uid, d.gid);
            chmodSync(staged.file, d.mode);
            utimesSync(staged.file, d.mtimeMs / 1000, d.mtimeMs / 1000);
            const tmps: string[] = [];
            try {
              while (tmps.length < others.length) {
                const tmp = tmpName(s.deps.tmpDir);
                linkSync(staged.file, tmp);
                tmps.push(tmp);
              }
            } catch (e) {
              for (const tmp of tmps) rmSync(tmp, { force: true });
              if (old !== null) rmSync(old, { force: true });
              throw e;
            }
            for (const x of others) {
              s.deps.guard.hold(x.path);
              swapped.push(x);
            }
            replacedIno = existing.ino;
            // Names of the old inode outside the tree (the link kept aside), and the inode's names as the swap begins.
            // (Only when the file held since the check is the one whose names are replaced: not a program's new file.)
            const stray = held !== null && held.stat.ino === existing.ino ? held : null;
            const outside = stray === null ? 0 : stray.links() - others.length - 1;
            others.forEach((x, i) => {
              const at = join(s.deps.root, x.path);
              // A name a program moved or replaced a moment ago is not made again: the inode's other name is filled below.
              if (lstatOrNull(at)?.ino === existing.ino) renameSync(tmps[i]!, at);
              else rmSync(tmps[i]!, { force: true });
            });
            renameSync(staged.file, abs);
            consumed = true;
            // The old inode still has a name in the tree: a program moved or linked one in that moment (`mv b c` as
            // the new file took b). It keeps the old content while the journal gives it the write (every name of the
            // inode takes it): capture then journaled the old content as a write through it, made on the peer's,
            // and the peer's write was lost on every node (chaos s83 seed 9263; test/link-swap-move-race.test.ts).
            // So it takes the write too, in place.
            if (stray !== null && stray.links() > outside) {
              keepLateWrite(s.deps, d, stray); // a local write landed in it meanwhile: kept beside first, the fill goes over it
              stray.fill(abs, d);
              into = 'filled';
              s.deps.log.warn({ path: d.path }, 'a name of this hard-linked file was moved or linked here while a peer\'s write of it was applied: it holds the write too');
            }
            if (old !== null) freeOld(old, version);
            break;
          }
          // A name of the inode the journal does not know as one: the content goes into the inode in place. A local
          // write landed in it since the check (through that name, moved a moment ago) is kept beside first: the
          // copy in place would go over it (the likely path of chaos s84 seed 9247; test/late-write.test.ts).
          if (held !== null) keepLateWrite(s.deps, d, held);
          into = 'in-place';
          version?.copyOf(abs);
          copyFileSync(staged.file, abs);
          rmSync(staged.file, { force: true });
          consumed = true;
          tryLchown(abs, d.uid, d.gid);
          chmodSync(abs, d.mode);
          utimesSync(abs, d.mtimeMs / 1000, d.mtimeMs / 1000);
          break;
        }
        if (!sameAttrs(staged.attrs, d)) {
          tryLchown(staged.file, d.uid, d.gid);
          chmodSync(staged.file, d.mode);
          utimesSync(staged.file, d.mtimeMs / 1000, d.mtimeMs / 1000);
        }
        const old = existing?.type === 'file' && (existing.size >= DELTA_THRESHOLD || version !== null) ? keepAside(s.deps.tmpDir, abs) : null;
        if (d.kind === 'create') placeNew(staged.file, abs, d.path);
        else renameSync(staged.file, abs);
        consumed = true;
        // A name removed here whose inode lives on in this one (FilesetDb#removedLinkIno) follows it to the new
        // file, as it does when the inode has several names: on the server it is a name of the file written.
        // Before, the note kept the old inode, and the next link to the removed name was placed as a file of
        // its own: one file on the server, two here, for good (chaos s49 seed 9255;
        // test/long/link-removed-written.test.ts).
        if (existing?.type === 'file') replacedIno = existing.ino;
        // The old version's blocks are freed by the thread pool, after this: freeing a GiB took the rename a second.
        if (old !== null) freeOld(old, version);
        break;
      }
      case 'mkdir':
        try {
          mkdirSync(abs, { mode: d.mode });
        } catch (e) {
          // Made here too and not journaled yet (capture is a moment behind): the same directory, merged.
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || lstatOrNull(abs)?.type !== 'dir') throw e;
          merged = true;
        }
        tryLchown(abs, d.uid, d.gid);
        chmodSync(abs, d.mode);
        break;
      case 'symlink':
        symlinkSync(d.target!, abs);
        tryLchown(abs, d.uid, d.gid);
        break;
      case 'link':
        linkSync(confine(s.deps.root, d.target!), abs);
        break;
      case 'rename': {
        const to = confine(s.deps.root, d.newPath!);
        // Never over what a program made at the new name, even a moment ago (see moveNoReplace). Before, a
        // check then rename(2) replaced a file made in between: chaos s80 seed 9250, c3's epsilon/sub/b.txt,
        // written right after its directory moved there, on no node.
        let moved: boolean;
        try {
          moved = moveNoReplace(abs, to);
        } catch (e) {
          // Moved or removed by a program a moment ago, capture a moment behind: the record comes again once it has journaled that.
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw IntersyncError.CONFLICT(d.path, 'moved or removed here since it was journaled; retried once capture has journaled it');
          throw e;
        }
        if (!moved) throw IntersyncError.CONFLICT(d.newPath!, 'an unjournaled file has this name here');
        after = to;
        break;
      }
      case 'unlink':
        rmIfThere(() => version?.moveIn(abs) === true || unlinkSync(abs));
        after = null;
        break;
      case 'rmdir':
        try {
          rmIfThere(() => rmdirSync(abs));
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOTEMPTY') throw e;
          if (s.deps.keepsIgnored?.(d.path) !== true) throw IntersyncError.CONFLICT(d.path, 'directory holds unjournaled files here');
          s.deps.log.info({ path: d.path }, 'directory removed by a peer kept here: it holds ignored names');
        }
        after = null;
        break;
      case 'setattr': {
        const st = lstatOrNull(abs);
        if (st === null) throw IntersyncError.CONFLICT(d.path, 'gone here');
        tryLchown(abs, d.uid, d.gid);
        if (st.type !== 'symlink') chmodSync(abs, d.mode);
        if (st.type === 'file') utimesSync(abs, d.mtimeMs / 1000, d.mtimeMs / 1000);
        else if (st.type === 'symlink') lutimesSync(abs, d.mtimeMs / 1000, d.mtimeMs / 1000);
        break;
      }
    }
    const st = after === null ? null : lstatOrNull(after);
    // The map of a large file assembled here is known for its next delta; not if a write here has already
    // moved its mtime off the record's (then capture reads it).
    if (consumed && staged?.map !== undefined && st !== null && staged.map.hash === d.hash && Math.abs(st.mtimeMs - d.mtimeMs) < 1) {
      s.blockMaps.setWritten(st, staged.map);
    }
    try {
      // The note goes in the same transaction as the record: one commit, and never a record without its note cleared.
      s.deps.db.batch(() => {
        commit(st === null ? null : { ...appliedIdentity(st), racy: unseen });
        if (inflight !== null) s.deps.db.clearInflight(inflight);
        renewNames(s.deps.db, s.deps.root, keptNames);
        // The inode's other names are the new file now: the commit changed their content, this their identity
        // (and the names removed here that the old inode had follow it, see FilesetDb#removedLinkIno).
        for (const x of swapped) {
          const now = lstatOrNull(join(s.deps.root, x.path));
          if (now !== null && st !== null && now.ino === st.ino) s.deps.db.setIdentity(x.fid, appliedIdentity(now));
        }
        if (replacedIno !== null && st !== null) s.deps.db.inodeReplaced(replacedIno, st.ino);
      });
      s.deps.metrics?.applied(1);
      version?.committed();
    } catch (e) {
      if (!merged) undo(s.deps.log, d, abs, after);
      if (inflight !== null) s.deps.db.clearInflight(inflight);
      throw e;
    }
  } finally {
    version?.end();
    if (staged !== null && !consumed) rmSync(staged.file, { force: true });
    for (const n of names) s.deps.guard.release(n);
    for (const x of swapped) s.deps.guard.release(x.path);
  }
  return into;
}

function sameAttrs(a: Attrs | undefined, d: Attrs): boolean {
  return a !== undefined && a.mode === d.mode && a.uid === d.uid && a.gid === d.gid && a.mtimeMs === d.mtimeMs;
}
