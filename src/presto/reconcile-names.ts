import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { isUnder, joinRel, parentOf } from '#core/paths.js';
import type { FilesetDb, ObjectRow } from '#journal/fileset-db.js';
import { lstatOrNull, readTargetOrNull, type DiskStat } from '#fsio/disk.js';
import { compare, create, draftOf, removal } from './reconcile-changes.js';
import type { BatchState } from './reconcile-state.js';

// Working out names and parents, and moves by inode: which object a dirty name holds now, in which journaled
// parent, and where it came from. What is then journaled at the name is in reconcile-changes.ts.

/**
 * `dir` is journaled as a directory that is not at its name on disk now: moved, removed or replaced a moment ago,
 * and not journaled so yet. A name below it that is gone from disk says nothing of its own object then (see
 * runBatch in reconciler.ts). The root is always as journaled.
 */
export function dirNotAsJournaled(db: Pick<FilesetDb, 'objectByPath'>, root: string, dir: string): boolean {
  if (dir === '') return false;
  const row = db.objectByPath(dir);
  if (row?.type !== 'dir') return false;
  const st = lstatOrNull(join(root, dir));
  return st === null || st.type !== 'dir' || (row.ino !== null && st.ino !== row.ino);
}

/** What processUnguarded returns for a name that waits for its parent: it is processed again later in the batch. */
const LATER = Symbol('later');
const MAX_LATER = 4;

/** Work out what is at `p` now and journal it, its parent first (see processUnguarded); once per batch. */
export async function processName(s: BatchState, p: string): Promise<void> {
  if (s.done.has(p) || s.visiting.has(p)) return;
  if (s.d.guard.isHeld(p)) return; // the apply path is writing it; its release brings it back
  s.visiting.add(p);
  let later = false;
  try {
    later = (await processUnguarded(s, p)) === LATER;
  } finally {
    s.visiting.delete(p);
    if (later) {
      // Looked at again once the directory being worked out above it is journaled (a few times at most: a name
      // is never put off for ever).
      s.later.set(p, (s.later.get(p) ?? 0) + 1);
      s.queue.push(p);
    } else {
      s.later.delete(p);
      s.done.add(p);
    }
  }
}

async function processUnguarded(s: BatchState, p: string): Promise<void | typeof LATER> {
  const db = s.d.db;
  const st = lstatOrNull(s.abs(p));
  if (ignored(s, p, st)) return;
  if (st === null) {
    s.deletes.push(p);
    return;
  }
  if (st.type === 'other') {
    s.d.log.warn({ path: p }, 'not journaled: only files, directories and symlinks are replicated');
    const obj = db.objectByPath(p);
    if (obj !== undefined) s.commit(removal(s, obj));
    return;
  }
  const parent = parentOf(p);
  // The parent first, unless it is journaled as the directory on disk at its name: a move or a creation here
  // goes into the directory the journal has there. When the parent is being worked out already (a cycle of
  // moves), the name waits for it. Before, the start-up scan journaled each move of a directory swap into the
  // wrong parent (`mv beta delta/sub; mkdir beta; mv epsilon/deep beta/sub; mv delta/sub epsilon/deep`: the
  // journal had epsilon/deep/sub/sub, the disk did not), for good (chaos s67 seed 9242).
  if (parent !== '' && !s.parentsOk.has(parent)) {
    if (db.objectByPath(parent)?.type !== 'dir' || dirNotAsJournaled(db, s.d.root, parent)) {
      const mayWait = (s.later.get(p) ?? 0) < MAX_LATER;
      if (mayWait && s.visiting.has(parent)) return LATER;
      await processName(s, parent);
      if (db.objectByPath(parent)?.type !== 'dir') return; // the parent is gone again
      // Still not the disk's directory: it waits for its own parent (put back in the queue), and this name after it.
      // (Not for a parent the apply path holds: its release brings it back, and this name is journaled as before.)
      if (mayWait && s.later.has(parent) && dirNotAsJournaled(db, s.d.root, parent)) return LATER;
    } else {
      s.parentsOk.add(parent);
    }
  }
  let obj = db.objectByPath(p);
  // A symlink made again with another target may have the freed inode back: it is another object all the same.
  const retargeted = obj?.type === 'symlink' && st.type === 'symlink' && readTargetOrNull(s.abs(p)) !== obj.target;
  if (obj !== undefined && obj.ino === st.ino && obj.type === st.type && !retargeted) {
    await compare(s, obj, st, p);
    return;
  }
  if (obj !== undefined) {
    // The name holds another object now. If the old one moved to another dirty path, move it first: the same
    // kind of object with its inode number (a freed number is handed to the next file made: a directory
    // replaced by `mv -T` gives its number to a file made in the new one at once).
    const q = obj.ino === null ? undefined : s.inoAt.get(obj.ino) ?? inNewDirs(s, obj.ino);
    const qst = q === undefined || q === p ? null : lstatOrNull(s.abs(q));
    const movedTo = q !== undefined && qst !== null && qst.ino === obj.ino && qst.type === obj.type ? q : undefined;
    if (movedTo !== undefined) await processName(s, movedTo);
    const fid = obj.fid;
    obj = db.objectByPath(p);
    if (obj !== undefined) {
      // Still here while it lives at q: q waits for a move that needs this name (a swap or a longer cycle, or a
      // directory moved into the one made at its old name). It steps aside to a free name and q takes it from
      // there, the object kept whole rather than removed and made again. Not when q is journaled with this
      // inode already: another name of a hard-linked file, which lives on there while this name goes (chaos
      // s69 seed 9244: a rename-over of one name of two stepped aside, and nothing ever took it from there).
      const movedObject = movedTo !== undefined && obj.fid === fid && qst !== null && lstatOrNull(s.abs(movedTo))?.ino === obj.ino && db.objectByPath(movedTo)?.ino !== obj.ino;
      if (movedObject) stepAside(s, obj, qst, movedTo);
      else s.commit(removal(s, obj));
      // What this batch journaled below the name went with the old object: looked at again under the new one.
      if (obj.type === 'dir') {
        for (const d of [...s.done]) {
          if (!isUnder(d, p) || d === p) continue;
          s.done.delete(d);
          s.queue.push(d);
        }
      }
    }
  }
  const src = renameSource(s, p, st);
  if (src !== undefined) {
    // The identity stays as it was: the compare below must still see a content change made before the move.
    s.commit([{ draft: draftOf(s, 'rename', src, st, { newPath: p }), identity: null }]);
    if (st.type === 'dir') {
      // Not watched until now (made by the apply path or the conflict step, and moved before capture came to
      // it): nothing raised an event for what was written in it, so every entry is compared, as a new
      // directory's are. Chaos seed 9203: `mv delta/sub gamma/sub; echo > gamma/sub/g.txt` just after the
      // conflict step made delta/sub: g.txt's new content was journaled nowhere, for good.
      const unseen = s.d.watcher !== null && !s.d.watcher.isWatched(st.ino);
      s.d.watcher?.watch(st.ino, s.abs(p));
      // An entry made in it just after the move may have raised its event at the old name, resolved before
      // the move was journaled, and dropped: its names are looked at again now (known ones cost a stat).
      s.addEntriesOf(p, unseen);
    }
    const moved = db.objectByPath(p);
    if (moved !== undefined) await compare(s, moved, st, p);
    // The move changed the inode's change time under its other names too, and inotify says nothing of them:
    // each is looked at again (read once, its identity renewed), as after a link or a removal of one name.
    // Before, they looked written here since journaled and the apply path refused a server change naming
    // them until the client resynced (chaos seed 9220: `mv gamma/g.txt beta/deep/f.json`, then epsilon/e).
    if (st.type === 'file' && st.nlink > 1) for (const x of db.objectsByIno(st.ino)) if (x.fid !== src.fid && x.type === 'file') s.retry.push(x.path);
    return;
  }
  await create(s, p, st);
}

/**
 * A dirty path holding `ino` among the entries of the directories made or moved a moment ago (listed once per
 * batch): a directory moved into one made at the same moment has no event of its own there yet (`mv a a2;
 * mkdir a; mv a2 a/x` while running: a/x is in an unwatched directory), and is found there as moved, not gone.
 */
function inNewDirs(s: BatchState, ino: string): string | undefined {
  if (!s.newDirsListed) {
    s.newDirsListed = true;
    for (const d of s.newDirs) {
      let names: string[];
      try {
        names = readdirSync(s.abs(d));
      } catch {
        continue; // gone again
      }
      for (const name of names) {
        const q = joinRel(d, name);
        const st = lstatOrNull(s.abs(q));
        if (st !== null && !s.inoAt.has(st.ino)) s.inoAt.set(st.ino, q);
      }
    }
  }
  return s.inoAt.get(ino);
}

/** Journal the move of `obj` (its stat `st`, on disk at `to`) to a free name beside it; `to` is looked at again. */
function stepAside(s: BatchState, obj: ObjectRow, st: DiskStat, to: string): void {
  const taken = (n: string): boolean => s.d.db.objectByPath(n) !== undefined || lstatOrNull(s.abs(n)) !== null;
  let aside = '';
  for (let n = 1; aside === '' || taken(aside); n++) aside = joinRel(parentOf(obj.path), `.intersync-moving-${n}`);
  s.commit([{ draft: draftOf(s, 'rename', obj, st, { newPath: aside }), identity: null }]);
  s.deletes.push(aside); // removed at the end of the batch if nothing took it from there: nothing is on disk at it
  if (!s.visiting.has(to)) {
    s.done.delete(to);
    s.queue.push(to);
  }
}

/** An ignored name: left as it is, journaled or not (a pattern added later stops its journaling, it removes nothing). */
function ignored(s: BatchState, p: string, st: DiskStat | null): boolean {
  const rules = s.d.ignore;
  if (rules === undefined || rules.empty) return false;
  if (!rules.ignores(p, st === null ? s.d.db.objectByPath(p)?.type === 'dir' : st.type === 'dir')) return false;
  if (!rules.ignores(parentOf(p), true)) rules.note(p, st !== null); // counted once, at the top of an ignored tree
  return true;
}

/** The journaled object that `st` is, moved here from a name that no longer holds it. */
function renameSource(s: BatchState, p: string, st: DiskStat): ObjectRow | undefined {
  for (const c of s.d.db.objectsByIno(st.ino)) {
    if (c.type !== st.type || c.path === p || isUnder(p, c.path)) continue;
    if (s.d.guard.isHeld(c.path)) continue;
    if (lstatOrNull(s.abs(c.path))?.ino === st.ino) continue; // still there: a hard link, not a move
    // A symlink's target never changes in place: one with another target is a new symlink that took the freed
    // inode number (chaos s58 seed 9278: `rm epsilon/e; ln -s ../alpha delta/f.json` journaled as a move of e
    // with e's target, for good; test/symlink-reuse.test.ts).
    if (c.type === 'symlink' && readTargetOrNull(s.abs(p)) !== c.target) continue;
    return c;
  }
  return undefined;
}
