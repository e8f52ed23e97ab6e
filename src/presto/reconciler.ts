import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as yieldToLoop, setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Clock } from '#core/clock.js';
import { META_DIR, isInlineSize } from '#core/format.js';
import { NO_VERSION, type NodeId } from '#core/ids.js';
import { depthOf, isUnder, joinRel, parentOf } from '#core/paths.js';
import type { RecordDraft, RecordKind } from '#core/record.js';
import type { BlockMapCache } from '#fsio/blocks.js';
import type { Change, FilesetDb, ObjectRow } from '#journal/fileset-db.js';
import { RACY_WINDOW_NS, hashFile, identityOf, lstatOrNull, nowNs, readTargetOrNull, sameStat, type DiskStat } from '#fsio/disk.js';
import type { EchoGuard } from '#fsio/echo-guard.js';
import type { IgnoreRules } from './ignore-rules.js';

/** A hint that something may have changed: a path, or an entry of a directory known by its inode. */
export type DirtyItem = { readonly path: string } | { readonly dirIno: string; readonly name: string | null };

/** The part of the watcher the reconciler drives: new and moved directories get a watch, removed ones lose it. */
export interface WatchSink {
  watch(ino: string, absPath: string): boolean;
  unwatch(ino: string): void;
  isWatched(ino: string): boolean;
}

export interface ReconcilerDeps {
  readonly db: FilesetDb;
  readonly root: string;
  readonly rootIno: string;
  readonly nodeId: NodeId;
  readonly clock: Clock;
  readonly log: Logger;
  readonly guard: EchoGuard;
  readonly watcher: WatchSink | null;
  /** Journal the changes (a server gives them TIDs, a client puts them in its LML); returns how many. */
  readonly journal: (changes: Change[]) => number;
  /** Large files are read for their block map, kept here, rather than for their hash alone. */
  readonly blockMaps?: BlockMapCache;
  /** Names matched here are never journaled: not made, changed nor removed (see ignore-rules.ts). */
  readonly ignore?: IgnoreRules;
}

export interface BatchResult {
  readonly records: number;
  /** Paths to look at again shortly: a file changed while it was being read. */
  readonly retry: string[];
}

/**
 * `dir` is journaled as a directory that is not at its name on disk now: moved, removed or replaced a moment ago,
 * and not journaled so yet. A name below it that is gone from disk says nothing of its own object then (see
 * Batch#run). The root is always as journaled.
 */
export function dirNotAsJournaled(db: Pick<FilesetDb, 'objectByPath'>, root: string, dir: string): boolean {
  if (dir === '') return false;
  const row = db.objectByPath(dir);
  if (row?.type !== 'dir') return false;
  const st = lstatOrNull(join(root, dir));
  return st === null || st.type !== 'dir' || (row.ino !== null && st.ino !== row.ino);
}

/**
 * Turns hints into journal records by comparing the disk with the object
 * table. Events are only hints: every decision is made from a fresh lstat and
 * the table, so a duplicate or stale hint makes no record and a missed one is
 * caught by the next hint or scan on the same path. A rename is recognised by
 * inode (one record, whatever the size of a renamed directory), a new
 * directory is walked after it is watched (nothing created inside it before
 * the watch is lost), and a file is read only when its stat data changed.
 */
export class Reconciler {
  readonly #d: ReconcilerDeps;

  constructor(deps: ReconcilerDeps) {
    this.#d = deps;
  }

  /** Path of an item now, or null when it is gone, outside the fileset or inside the metadata folder. */
  resolve(item: DirtyItem): string | null {
    if ('path' in item) return item.path === '' || item.path.split('/')[0] === META_DIR ? null : item.path;
    let dir: string;
    if (item.dirIno === this.#d.rootIno) dir = '';
    else {
      const o = this.#d.db.objectsByIno(item.dirIno).find((r) => r.type === 'dir');
      if (o === undefined) return null; // a directory not journaled yet: its creation walks it
      dir = o.path;
    }
    if (item.name === null) return dir === '' ? null : dir;
    if (dir === '' && item.name === META_DIR) return null;
    if (item.name.includes('/') || item.name === '.' || item.name === '..') return null;
    return joinRel(dir, item.name);
  }

  /**
   * Journal what changed at `items`. With `settle`, a file emptied a moment ago (opened with O_TRUNC, its data
   * still to come) is looked at again once quiet instead of journaled empty: peers never serve that empty
   * version. `syncPaths` (before a peer's change) journals what is there at once.
   */
  async run(items: Iterable<DirtyItem>, opts: { settle?: boolean } = {}): Promise<BatchResult> {
    const batch = new Batch(this.#d, opts.settle === true, (item) => this.resolve(item));
    const byIno: DirtyItem[] = [];
    for (const item of items) {
      if (!('path' in item)) byIno.push(item);
      const p = this.resolve(item);
      if (p !== null) batch.add(p);
    }
    return batch.run(byIno);
  }
}

/** What #processUnguarded returns for a name that waits for its parent: it is processed again later in the batch. */
const LATER = Symbol('later');
const MAX_LATER = 4;

class Batch {
  readonly #d: ReconcilerDeps;
  readonly #queue: string[] = [];
  readonly #queued = new Set<string>();
  readonly #done = new Set<string>();
  readonly #visiting = new Set<string>();
  readonly #deletes: string[] = [];
  readonly #retry: string[] = [];
  readonly #inoAt = new Map<string, string>(); // inode -> a dirty path holding it (from the first stat)
  readonly #newDirs: string[] = []; // dirty directories the journal does not have at their name (made or moved a moment ago)
  #newDirsListed = false;
  readonly #parentsOk = new Set<string>(); // directories journaled as on disk, until the next move or removal
  readonly #later = new Map<string, number>(); // names put back in the queue to wait for a parent, and how often
  #records = 0;

  readonly #settle: boolean;
  readonly #resolve: (item: DirtyItem) => string | null;

  constructor(d: ReconcilerDeps, settle: boolean, resolve: (item: DirtyItem) => string | null) {
    this.#d = d;
    this.#settle = settle;
    this.#resolve = resolve;
  }

  add(p: string): void {
    if (this.#queued.has(p)) return;
    this.#queued.add(p);
    this.#queue.push(p);
  }

  /**
   * Process the queued paths. `byIno` are the hints named by their directory's inode: each is resolved again
   * once the queue is done, since a rename of that directory (or of an ancestor) journaled in this batch moves
   * the name (`mv d1 d2; echo x > d2/f` hints `f` in d1's inode, first resolved to the old path `d1/f`).
   */
  async run(byIno: readonly DirtyItem[] = []): Promise<BatchResult> {
    for (const p of this.#queue) {
      const st = lstatOrNull(this.#abs(p));
      if (st === null) continue;
      this.#inoAt.set(st.ino, p);
      if (st.type !== 'dir') continue;
      const row = this.#d.db.objectByPath(p);
      if (row?.type !== 'dir' || (row.ino !== null && row.ino !== st.ino)) this.#newDirs.push(p);
    }
    let sliceStart = performance.now();
    // Parents before children (#process also handles a parent first); walks of new directories append deeper paths.
    this.#queue.sort((a, b) => depthOf(a) - depthOf(b));
    for (let i = 0; ; i++) {
      if (i === this.#queue.length) {
        // Hints resolved at the moment they are processed: a directory moved meanwhile brings its names along.
        const before = this.#queue.length;
        for (const item of byIno) {
          const p = this.#resolve(item);
          if (p !== null && !this.#done.has(p)) this.add(p);
        }
        if (this.#queue.length === before) break;
      }
      await this.#process(this.#queue[i]!);
      if (performance.now() - sliceStart > 8) {
        await yieldToLoop(); // let libuv drain inotify so its queue never overflows
        sliceStart = performance.now();
      }
    }
    this.#deletes.sort((a, b) => depthOf(b) - depthOf(a));
    for (const p of this.#deletes) {
      const obj = this.#d.db.objectByPath(p);
      if (obj === undefined || lstatOrNull(this.#abs(p)) !== null) continue;
      // Gone with its directory, which moved (or went) a moment ago and is not journaled so yet: not a removal of
      // this name alone. The directory's own hint (in its parent's watch) journals its move, which takes the name
      // along, or its removal, which removes everything below it. Before, a batch without that hint (syncPaths
      // before a peer's change of the file) journaled "unlink d/f" for a file alive at e/f after `mv d e`: the
      // client lost the object and resynced (chaos seed 9203).
      if (dirNotAsJournaled(this.#d.db, this.#d.root, parentOf(p))) continue;
      this.#commit(this.#removal(obj));
    }
    return { records: this.#records, retry: this.#retry };
  }

  #abs(p: string): string {
    return join(this.#d.root, p);
  }

  async #process(p: string): Promise<void> {
    if (this.#done.has(p) || this.#visiting.has(p)) return;
    if (this.#d.guard.isHeld(p)) return; // the apply path is writing it; its release brings it back
    this.#visiting.add(p);
    let later = false;
    try {
      later = (await this.#processUnguarded(p)) === LATER;
    } finally {
      this.#visiting.delete(p);
      if (later) {
        // Looked at again once the directory being worked out above it is journaled (a few times at most: a name
        // is never put off for ever).
        this.#later.set(p, (this.#later.get(p) ?? 0) + 1);
        this.#queue.push(p);
      } else {
        this.#later.delete(p);
        this.#done.add(p);
      }
    }
  }

  async #processUnguarded(p: string): Promise<void | typeof LATER> {
    const db = this.#d.db;
    const st = lstatOrNull(this.#abs(p));
    if (this.#ignored(p, st)) return;
    if (st === null) {
      this.#deletes.push(p);
      return;
    }
    if (st.type === 'other') {
      this.#d.log.warn({ path: p }, 'not journaled: only files, directories and symlinks are replicated');
      const obj = db.objectByPath(p);
      if (obj !== undefined) this.#commit(this.#removal(obj));
      return;
    }
    const parent = parentOf(p);
    // The parent first, unless it is journaled as the directory on disk at its name: a move or a creation here
    // goes into the directory the journal has there. When the parent is being worked out already (a cycle of
    // moves), the name waits for it. Before, the start-up scan journaled each move of a directory swap into the
    // wrong parent (`mv beta delta/sub; mkdir beta; mv epsilon/deep beta/sub; mv delta/sub epsilon/deep`: the
    // journal had epsilon/deep/sub/sub, the disk did not), for good (chaos s67 seed 9242).
    if (parent !== '' && !this.#parentsOk.has(parent)) {
      if (db.objectByPath(parent)?.type !== 'dir' || dirNotAsJournaled(db, this.#d.root, parent)) {
        const mayWait = (this.#later.get(p) ?? 0) < MAX_LATER;
        if (mayWait && this.#visiting.has(parent)) return LATER;
        await this.#process(parent);
        if (db.objectByPath(parent)?.type !== 'dir') return; // the parent is gone again
        // Still not the disk's directory: it waits for its own parent (put back in the queue), and this name after it.
        // (Not for a parent the apply path holds: its release brings it back, and this name is journaled as before.)
        if (mayWait && this.#later.has(parent) && dirNotAsJournaled(db, this.#d.root, parent)) return LATER;
      } else {
        this.#parentsOk.add(parent);
      }
    }
    let obj = db.objectByPath(p);
    // A symlink made again with another target may have the freed inode back: it is another object all the same.
    const retargeted = obj?.type === 'symlink' && st.type === 'symlink' && readTargetOrNull(this.#abs(p)) !== obj.target;
    if (obj !== undefined && obj.ino === st.ino && obj.type === st.type && !retargeted) {
      await this.#compare(obj, st, p);
      return;
    }
    if (obj !== undefined) {
      // The name holds another object now. If the old one moved to another dirty path, move it first: the same
      // kind of object with its inode number (a freed number is handed to the next file made: a directory
      // replaced by `mv -T` gives its number to a file made in the new one at once).
      const q = obj.ino === null ? undefined : this.#inoAt.get(obj.ino) ?? this.#inNewDirs(obj.ino);
      const qst = q === undefined || q === p ? null : lstatOrNull(this.#abs(q));
      const movedTo = q !== undefined && qst !== null && qst.ino === obj.ino && qst.type === obj.type ? q : undefined;
      if (movedTo !== undefined) await this.#process(movedTo);
      const fid = obj.fid;
      obj = db.objectByPath(p);
      if (obj !== undefined) {
        // Still here while it lives at q: q waits for a move that needs this name (a swap or a longer cycle, or a
        // directory moved into the one made at its old name). It steps aside to a free name and q takes it from
        // there, the object kept whole rather than removed and made again. Not when q is journaled with this
        // inode already: another name of a hard-linked file, which lives on there while this name goes (chaos
        // s69 seed 9244: a rename-over of one name of two stepped aside, and nothing ever took it from there).
        const movedObject = movedTo !== undefined && obj.fid === fid && qst !== null && lstatOrNull(this.#abs(movedTo))?.ino === obj.ino && db.objectByPath(movedTo)?.ino !== obj.ino;
        if (movedObject) this.#stepAside(obj, qst, movedTo);
        else this.#commit(this.#removal(obj));
        // What this batch journaled below the name went with the old object: looked at again under the new one.
        if (obj.type === 'dir') {
          for (const d of [...this.#done]) {
            if (!isUnder(d, p) || d === p) continue;
            this.#done.delete(d);
            this.#queue.push(d);
          }
        }
      }
    }
    const src = this.#renameSource(p, st);
    if (src !== undefined) {
      // The identity stays as it was: the compare below must still see a content change made before the move.
      this.#commit([{ draft: this.#draft('rename', src, st, { newPath: p }), identity: null }]);
      if (st.type === 'dir') {
        // Not watched until now (made by the apply path or the conflict step, and moved before capture came to
        // it): nothing raised an event for what was written in it, so every entry is compared, as a new
        // directory's are. Chaos seed 9203: `mv delta/sub gamma/sub; echo > gamma/sub/g.txt` just after the
        // conflict step made delta/sub: g.txt's new content was journaled nowhere, for good.
        const unseen = this.#d.watcher !== null && !this.#d.watcher.isWatched(st.ino);
        this.#d.watcher?.watch(st.ino, this.#abs(p));
        // An entry made in it just after the move may have raised its event at the old name, resolved before
        // the move was journaled, and dropped: its names are looked at again now (known ones cost a stat).
        this.#addEntriesOf(p, unseen);
      }
      const moved = db.objectByPath(p);
      if (moved !== undefined) await this.#compare(moved, st, p);
      // The move changed the inode's change time under its other names too, and inotify says nothing of them:
      // each is looked at again (read once, its identity renewed), as after a link or a removal of one name.
      // Before, they looked written here since journaled and the apply path refused a server change naming
      // them until the client resynced (chaos seed 9220: `mv gamma/g.txt beta/deep/f.json`, then epsilon/e).
      if (st.type === 'file' && st.nlink > 1) for (const x of db.objectsByIno(st.ino)) if (x.fid !== src.fid && x.type === 'file') this.#retry.push(x.path);
      return;
    }
    await this.#create(p, st);
  }

  /**
   * A dirty path holding `ino` among the entries of the directories made or moved a moment ago (listed once per
   * batch): a directory moved into one made at the same moment has no event of its own there yet (`mv a a2;
   * mkdir a; mv a2 a/x` while running: a/x is in an unwatched directory), and is found there as moved, not gone.
   */
  #inNewDirs(ino: string): string | undefined {
    if (!this.#newDirsListed) {
      this.#newDirsListed = true;
      for (const d of this.#newDirs) {
        let names: string[];
        try {
          names = readdirSync(this.#abs(d));
        } catch {
          continue; // gone again
        }
        for (const name of names) {
          const q = joinRel(d, name);
          const st = lstatOrNull(this.#abs(q));
          if (st !== null && !this.#inoAt.has(st.ino)) this.#inoAt.set(st.ino, q);
        }
      }
    }
    return this.#inoAt.get(ino);
  }

  /** Journal the move of `obj` (its stat `st`, on disk at `to`) to a free name beside it; `to` is looked at again. */
  #stepAside(obj: ObjectRow, st: DiskStat, to: string): void {
    const taken = (n: string): boolean => this.#d.db.objectByPath(n) !== undefined || lstatOrNull(this.#abs(n)) !== null;
    let aside = '';
    for (let n = 1; aside === '' || taken(aside); n++) aside = joinRel(parentOf(obj.path), `.intersync-moving-${n}`);
    this.#commit([{ draft: this.#draft('rename', obj, st, { newPath: aside }), identity: null }]);
    this.#deletes.push(aside); // removed at the end of the batch if nothing took it from there: nothing is on disk at it
    if (!this.#visiting.has(to)) {
      this.#done.delete(to);
      this.#queue.push(to);
    }
  }

  /** An ignored name: left as it is, journaled or not (a pattern added later stops its journaling, it removes nothing). */
  #ignored(p: string, st: DiskStat | null): boolean {
    const rules = this.#d.ignore;
    if (rules === undefined || rules.empty) return false;
    if (!rules.ignores(p, st === null ? this.#d.db.objectByPath(p)?.type === 'dir' : st.type === 'dir')) return false;
    if (!rules.ignores(parentOf(p), true)) rules.note(p, st !== null); // counted once, at the top of an ignored tree
    return true;
  }

  #addEntriesOf(dir: string, all = false): void {
    let names: string[];
    try {
      names = readdirSync(this.#abs(dir));
    } catch {
      return; // gone again: its own event follows
    }
    for (const name of names) {
      const q = joinRel(dir, name);
      const row = this.#d.db.objectByPath(q);
      if (all || row === undefined || row.ino !== lstatOrNull(this.#abs(q))?.ino) this.add(q);
    }
    // And what the move brought along in the journal but is no longer there (removed after the move, while
    // the daemon was stopped or in the same batch): its removal was looked for at its old name, and missed.
    const present = new Set(names.map((n) => joinRel(dir, n)));
    for (const row of this.#d.db.objectsBelow(dir)) {
      if (present.has(row.path)) continue;
      if (lstatOrNull(this.#abs(row.path)) === null) this.add(row.path);
    }
  }

  /** The journaled object that `st` is, moved here from a name that no longer holds it. */
  #renameSource(p: string, st: DiskStat): ObjectRow | undefined {
    for (const c of this.#d.db.objectsByIno(st.ino)) {
      if (c.type !== st.type || c.path === p || isUnder(p, c.path)) continue;
      if (this.#d.guard.isHeld(c.path)) continue;
      if (lstatOrNull(this.#abs(c.path))?.ino === st.ino) continue; // still there: a hard link, not a move
      // A symlink's target never changes in place: one with another target is a new symlink that took the freed
      // inode number (chaos s58 seed 9278: `rm epsilon/e; ln -s ../alpha delta/f.json` journaled as a move of e
      // with e's target, for good; test/symlink-reuse.test.ts).
      if (c.type === 'symlink' && readTargetOrNull(this.#abs(p)) !== c.target) continue;
      return c;
    }
    return undefined;
  }

  async #create(p: string, st: DiskStat): Promise<void> {
    const db = this.#d.db;
    const fid = db.newFid();
    const base = { fid, path: p, type: st.type } as const;
    if (st.type === 'dir') {
      this.#commit([{ draft: this.#draft('mkdir', { ...base, version: NO_VERSION }, st), identity: identityOf(st, nowNs()) }]);
      // Watch first, then list: whatever is created inside from now on raises an event.
      this.#d.watcher?.watch(st.ino, this.#abs(p));
      let names: string[];
      try {
        names = readdirSync(this.#abs(p));
      } catch {
        return; // removed meanwhile: its own event follows
      }
      for (const name of names) this.add(joinRel(p, name));
      return;
    }
    if (st.type === 'symlink') {
      const target = readTargetOrNull(this.#abs(p));
      if (target === null) return;
      this.#commit([{ draft: this.#draft('symlink', { ...base, version: NO_VERSION }, st, { target }), identity: identityOf(st, nowNs()) }]);
      return;
    }
    if (st.nlink > 1) {
      const sib = db.objectsByIno(st.ino).find((o) => o.type === 'file' && lstatOrNull(this.#abs(o.path))?.ino === st.ino);
      if (sib !== undefined) {
        const draft = this.#draft('link', { ...base, version: NO_VERSION }, st, { target: sib.path, size: sib.size, hash: sib.hash });
        // The new name takes the sibling's recorded identity, so the compare below still sees a content change.
        this.#commit([{ draft, identity: sib.ino === null || sib.mtimeNs === null || sib.ctimeNs === null ? null : { ino: sib.ino, mtimeNs: sib.mtimeNs, ctimeNs: sib.ctimeNs, racy: sib.racy } }]);
        const linked = db.objectByPath(p);
        if (linked !== undefined) await this.#compare(linked, st, p);
        // The link moved the inode's change time under its other names too, and inotify says nothing of them: each
        // is looked at again (read once, its identity renewed), as after a removal of one name. Before, they looked
        // written here since journaled, and the split of the names the server holds apart, when it accepted a write
        // through one of them, skipped the inode: a name kept a write the server gave another name only ("state
        // differs", a resync; chaos seed 9202, c2).
        for (const x of db.objectsByIno(st.ino)) if (x.fid !== linked?.fid && x.type === 'file') this.#retry.push(x.path);
        return;
      }
    }
    const content = await this.#readStable(p, st);
    if (content === null) return;
    const draft = this.#draft('create', { ...base, version: NO_VERSION }, content.st, { size: content.st.size, hash: content.hash });
    this.#commit([{ draft, identity: identityOf(content.st, content.readAt) }]);
  }

  /** Compare a journaled object with its stat now and journal the difference, if any. */
  async #compare(obj: ObjectRow, st: DiskStat, p: string): Promise<void> {
    const db = this.#d.db;
    const attrsDiffer = obj.mode !== st.mode || obj.uid !== st.uid || obj.gid !== st.gid;
    if (obj.type === 'dir' && this.#d.watcher !== null && !this.#d.watcher.isWatched(st.ino)) {
      // A directory the apply path made (or one that lost its watch): watch it, then look at what it holds, and
      // at what the journal holds in it that is gone: an entry removed before the watch raised no event (chaos
      // seed 9209: `rmdir alpha/d/e` just after the apply path made both; e stayed journaled for good).
      if (this.#d.watcher.watch(st.ino, this.#abs(p))) this.#addEntriesOf(p, true);
    }
    if (obj.type !== 'file') {
      if (attrsDiffer) this.#commit([{ draft: this.#draft('setattr', obj, st), identity: identityOf(st, nowNs()) }]);
      return;
    }
    const statSame = !obj.racy && obj.size === st.size && obj.mtimeNs === st.mtimeNs && obj.ctimeNs === st.ctimeNs;
    if (statSame && !attrsDiffer) return;
    // Any moved stamp means the file is read, ctime included, as git does: a program can put size and mtime
    // back (`touch -r`, `rsync -a`, `tar x` over the same size), never the change time. A chmod costs a read.
    if (this.#settle && st.size === 0 && (obj.size ?? 0) > 0 && nowNs() - st.mtimeNs < RACY_WINDOW_NS) {
      this.#retry.push(p); // emptied just now: its new content is probably on its way
      return;
    }
    const content = await this.#readStable(p, st);
    if (content === null) return;
    const now = content.st;
    const id = identityOf(now, content.readAt);
    if (content.hash !== obj.hash) {
      const kind: RecordKind = now.size === 0 && (obj.size ?? 0) > 0 ? 'truncate' : 'write';
      this.#commit([{ draft: this.#draft(kind, obj, now, { size: now.size, hash: content.hash }), identity: id }]);
    } else if (attrsDiffer || Math.abs(obj.mtimeMs - now.mtimeMs) >= 1) { // utimes rounds through a double: sub-ms noise
      this.#commit([{ draft: this.#draft('setattr', obj, now), identity: id }]);
    } else {
      db.setIdentity(obj.fid, id);
    }
  }

  /** Hash a file and check that it did not change while it was read; null when it is busy (retried) or gone. */
  async #readStable(p: string, st: DiskStat): Promise<{ hash: string; st: DiskStat; readAt: bigint } | null> {
    const readAt = nowNs();
    let hash: string | null;
    if (!isInlineSize(st.size) && this.#d.blockMaps !== undefined) {
      // One read gives the hash and the block map peers ask for next. It is kept only when read past the racy
      // window of the file's times: a large file is worth that short wait (its read takes far longer).
      const young = RACY_WINDOW_NS - (nowNs() - (st.mtimeNs > st.ctimeNs ? st.mtimeNs : st.ctimeNs));
      if (young > 0n) await sleep(Number(young / 1_000_000n) + 1);
      let got: Awaited<ReturnType<BlockMapCache['of']>>;
      try {
        got = await this.#d.blockMaps.of(this.#abs(p));
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code; // as hashFile: gone is null, anything else is an error
        if (code !== 'ENOENT' && code !== 'EISDIR' && code !== 'ENOTDIR') throw e;
        got = null;
      }
      hash = got?.map.hash ?? null;
      if (got === null && lstatOrNull(this.#abs(p)) !== null) {
        this.#retry.push(p); // changed while read
        return null;
      }
    } else {
      hash = await hashFile(this.#abs(p), st.size);
    }
    if (hash === null) return null;
    const after = lstatOrNull(this.#abs(p));
    if (after === null) return null;
    if (!sameStat(st, after)) {
      this.#retry.push(p);
      return null;
    }
    return { hash, st: after, readAt };
  }

  /** Records that remove an object and, for a directory, everything journaled below it (deepest first). */
  #removal(obj: ObjectRow): Change[] {
    const out: Change[] = [];
    if (obj.type === 'dir') {
      const below = this.#d.db.objectsBelow(obj.path).sort((a, b) => depthOf(b.path) - depthOf(a.path));
      const carried = new Set<string>();
      for (const o of below) {
        // A file written here whose inode lives on outside: as for a file removed alone (see #carrierOf). Before, a
        // directory's removal took none, and once the server removed the other name too the write was on no node
        // (chaos s63 seed 9229; test/long/link-written-removed-both.test.ts).
        const carrier = this.#carrierOf(o);
        if (carrier !== undefined && !carried.has(carrier.fid)) {
          carried.add(carrier.fid);
          out.push(this.#carrierWrite(carrier));
        }
        out.push({ draft: this.#draftGone(o), identity: null });
        if (o.type === 'dir' && o.ino !== null) this.#d.watcher?.unwatch(o.ino);
      }
      if (obj.ino !== null) this.#d.watcher?.unwatch(obj.ino);
    }
    if (obj.type === 'file' && obj.ino !== null) {
      // The removal moved the inode's change time under its other names, and inotify says nothing of them: each
      // is looked at again (read once, its identity renewed) rather than left looking written here since it was
      // journaled (the link steps and the apply path's checks skipped or refused it: a resync).
      for (const x of this.#d.db.objectsByIno(obj.ino)) if (x.fid !== obj.fid && x.type === 'file') this.#retry.push(x.path);
    }
    const carrier = this.#carrierOf(obj);
    if (carrier !== undefined) out.push(this.#carrierWrite(carrier));
    out.push({ draft: this.#draftGone(obj), identity: null });
    return out;
  }

  /**
   * A hard-linked name written here (not accepted yet) and now leaving its inode (removed, or replaced by
   * another file): what was written through it lives on in the inode's other name here, and only a record of
   * that name can carry it to the server (the removed name's write may be refused, or dropped with it). Before,
   * nothing pending said so and the write was on no node once the server's version came back.
   */
  #carrierOf(obj: ObjectRow): ObjectRow | undefined {
    const db = this.#d.db;
    if (obj.type !== 'file' || obj.ino === null) return undefined;
    if (!db.localRecordsOf(obj.fid).some((x) => x.kind === 'write' || x.kind === 'truncate')) return undefined;
    return db.objectsByIno(obj.ino).find((x) => x.fid !== obj.fid && x.type === 'file' && lstatOrNull(this.#abs(x.path))?.ino === obj.ino);
  }

  /** The write of a carrier (see #carrierOf): what its inode holds, as journaled. */
  #carrierWrite(carrier: ObjectRow): Change {
    return { draft: { ...this.#draftGone(carrier), kind: 'write', size: carrier.size, hash: carrier.hash }, identity: null };
  }

  #draftGone(o: ObjectRow): RecordDraft {
    return {
      // A symlink's removal names its target: a conflict step that brings it back makes a symlink again.
      kind: o.type === 'dir' ? 'rmdir' : 'unlink', fid: o.fid, path: o.path, newPath: null, target: o.type === 'symlink' ? o.target : null,
      preVersion: o.version, size: null, hash: null, mode: o.mode, uid: o.uid, gid: o.gid, mtimeMs: o.mtimeMs,
      origin: this.#d.nodeId, time: this.#d.clock.now(),
    };
  }

  #draft(
    kind: RecordKind,
    obj: Pick<ObjectRow, 'fid' | 'path' | 'version'> & Partial<Pick<ObjectRow, 'size' | 'hash' | 'target'>>,
    st: DiskStat,
    extra: { newPath?: string; target?: string; size?: number | null; hash?: string | null } = {},
  ): RecordDraft {
    const isFile = st.type === 'file';
    return {
      kind, fid: obj.fid, path: obj.path,
      newPath: extra.newPath ?? null,
      target: extra.target ?? (st.type === 'symlink' ? obj.target ?? null : null),
      preVersion: obj.version,
      size: isFile ? (extra.size !== undefined ? extra.size : obj.size ?? null) : null,
      hash: isFile ? (extra.hash !== undefined ? extra.hash : obj.hash ?? null) : null,
      mode: st.mode, uid: st.uid, gid: st.gid, mtimeMs: st.mtimeMs,
      origin: this.#d.nodeId, time: this.#d.clock.now(),
    };
  }

  #commit(changes: Change[]): void {
    if (changes.length === 0) return;
    if (changes.some((c) => c.draft.kind === 'rename' || c.draft.kind === 'rmdir')) this.#parentsOk.clear();
    this.#records += this.#d.journal(changes);
  }
}
