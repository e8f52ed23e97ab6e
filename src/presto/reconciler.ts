import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { META_DIR } from '#core/format.js';
import { depthOf, joinRel, parentOf } from '#core/paths.js';
import { lstatOrNull } from '#fsio/disk.js';
import { removal } from './reconcile-changes.js';
import { dirNotAsJournaled, processName } from './reconcile-names.js';
import { BatchState } from './reconcile-state.js';
import type { BatchResult, DirtyItem, ReconcilerDeps } from './reconcile-types.js';

// The parts of a batch: its state (reconcile-state.ts), names, parents and moves by inode (reconcile-names.ts),
// what a name holds journaled (reconcile-changes.ts). The types and dirNotAsJournaled are re-exported from here.
export type { BatchResult, DirtyItem, ReconcilerDeps, WatchSink } from './reconcile-types.js';
export { dirNotAsJournaled } from './reconcile-names.js';

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

  /**
   * Path of an item now, or null when it is gone, outside the fileset or inside the metadata folder. `dirs`: the
   * journaled directories by inode found so far, for many items resolved while the journal does not change (a
   * burst's thousands of hints in a hundred directories: one lookup per directory, not one per hint).
   */
  resolve(item: DirtyItem, dirs?: Map<string, string | null>): string | null {
    if ('path' in item) return item.path === '' || item.path.split('/')[0] === META_DIR ? null : item.path;
    let dir: string | null | undefined;
    if (item.dirIno === this.#d.rootIno) dir = '';
    else {
      dir = dirs?.get(item.dirIno);
      if (dir === undefined) {
        dir = this.#d.db.objectsByIno(item.dirIno).find((r) => r.type === 'dir')?.path ?? null;
        dirs?.set(item.dirIno, dir);
      }
      if (dir === null) return null; // a directory not journaled yet: its creation walks it
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
  async run(items: Iterable<DirtyItem>, opts: RunOptions = {}): Promise<BatchResult> {
    const batch = new BatchState(this.#d, opts.settle === true);
    const byIno: DirtyItem[] = [];
    const dirs = new Map<string, string | null>(); // nothing is journaled while the hints are resolved here
    for (const item of items) {
      if (!('path' in item)) byIno.push(item);
      const p = this.resolve(item, dirs);
      if (p !== null) batch.add(p);
    }
    try {
      return await runBatch(batch, byIno, (item, dirs) => this.resolve(item, dirs));
    } catch (e) {
      // The names this batch found to look at besides its hints (a new directory's entries, walked once it
      // is journaled and watched): no event brings them again, and the next try finds the directory
      // journaled and walks it no more. Before, a batch that failed half-way (a full disk) lost them.
      opts.unfinished?.(batch.queue);
      throw e;
    }
  }
}

type Resolve = (item: DirtyItem, dirs: Map<string, string | null>) => string | null;

/** How a batch runs: `settle` (see Reconciler#run), and where a failed batch hands the names it had queued. */
export interface RunOptions {
  readonly settle?: boolean;
  /** Called before a failed run throws, with every name it had queued (hints and what it found): try them again. */
  readonly unfinished?: (paths: readonly string[]) => void;
}

/**
 * Process the queued paths. `byIno` are the hints named by their directory's inode: each is resolved again
 * once the queue is done, since a rename of that directory (or of an ancestor) journaled in this batch moves
 * the name (`mv d1 d2; echo x > d2/f` hints `f` in d1's inode, first resolved to the old path `d1/f`).
 */
async function runBatch(s: BatchState, byIno: readonly DirtyItem[], resolve: Resolve): Promise<BatchResult> {
  for (const p of s.queue) {
    const st = lstatOrNull(s.abs(p));
    if (st === null) continue;
    s.inoAt.set(st.ino, p);
    if (st.type !== 'dir') continue;
    const row = s.d.db.objectByPath(p);
    if (row?.type !== 'dir' || (row.ino !== null && row.ino !== st.ino)) s.newDirs.push(p);
  }
  try {
    return await runQueue(s, byIno, resolve);
  } finally {
    s.d.db.closeGroup(); // the last slice's names (BatchState#commit)
  }
}

async function runQueue(s: BatchState, byIno: readonly DirtyItem[], resolve: Resolve): Promise<BatchResult> {
  let sliceStart = performance.now();
  // Parents before children (processName also handles a parent first); walks of new directories append deeper paths.
  s.queue.sort((a, b) => depthOf(a) - depthOf(b));
  for (let i = 0; ; i++) {
    if (i === s.queue.length) {
      // Hints resolved at the moment they are processed: a directory moved meanwhile brings its names along.
      const before = s.queue.length;
      const dirs = new Map<string, string | null>(); // nothing is journaled in this loop
      for (const item of byIno) {
        const p = resolve(item, dirs);
        if (p !== null && !s.done.has(p)) s.add(p);
      }
      if (s.queue.length === before) break;
    }
    await processName(s, s.queue[i]!);
    if (performance.now() - sliceStart > 8) {
      s.d.db.closeGroup(); // the slice's names in one transaction, before anything else runs
      await yieldToLoop(); // let libuv drain inotify so its queue never overflows
      sliceStart = performance.now();
    }
  }
  s.deletes.sort((a, b) => depthOf(b) - depthOf(a));
  for (const p of s.deletes) {
    const obj = s.d.db.objectByPath(p);
    if (obj === undefined || lstatOrNull(s.abs(p)) !== null) continue;
    // Gone with its directory, which moved (or went) a moment ago and is not journaled so yet: not a removal of
    // this name alone. The directory's own hint (in its parent's watch) journals its move, which takes the name
    // along, or its removal, which removes everything below it. Before, a batch without that hint (syncPaths
    // before a peer's change of the file) journaled "unlink d/f" for a file alive at e/f after `mv d e`: the
    // client lost the object and resynced (chaos seed 9203).
    if (dirNotAsJournaled(s.d.db, s.d.root, parentOf(p))) continue;
    s.commit(removal(s, obj));
  }
  return { records: s.records, retry: s.retry };
}
