import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { setImmediate as yieldToIo } from 'node:timers/promises';
import { META_DIR } from '#core/format.js';
import { joinRel } from '#core/paths.js';
import type { FilesetDb } from '#journal/fileset-db.js';
import { lstatOrNull } from '#fsio/disk.js';
import type { DirWatcher } from './dir-watcher.js';
import type { IgnoreRules } from './ignore-rules.js';
import { unchanged } from './scan.js';

export interface UnwatchedRescanDeps {
  readonly db: FilesetDb;
  readonly root: string;
  readonly watcher: DirWatcher;
  /** A name whose stat differs from the journal (or that the journal has and the directory no longer): look at it. */
  readonly hint: (path: string) => void;
  /** A directory that had no watch has one now. */
  readonly onWatched?: (abs: string) => void;
  /** Names never looked at (ignored): see ignore-rules.ts. */
  readonly ignore?: IgnoreRules;
}

/** How long one slice runs before it yields to the event loop (inotify events, requests, the batches). */
const SLICE_MS = 20;

/**
 * The directories that could not be watched (the inotify limit), rescanned in turn on a bounded budget.
 * Invariants: a round compares each entry's stat with the journal as the start-up scan does and hints only
 * what differs, so an unchanged tree adds nothing to the pending set; the journal's view of a directory's
 * entries (for removals) is read only when the directory's own stat moved since its last rescan; one `run`
 * spends at most its budget, in slices that yield to the event loop, and goes on where it stopped at the next
 * run; a watch is retried for at most one directory per run until one succeeds (the limit was raised, or
 * watches were freed), then for the others in the same run.
 *
 * Before, every poll hinted every name of every unwatched directory and tried to watch each of them again:
 * with 8,000 directories unwatched, 80,000 hints every 2 s, a pending set that never drained, and a file in a
 * watched directory journaled after minutes (issue 19).
 */
export class UnwatchedRescan {
  readonly #d: UnwatchedRescanDeps;
  #round: string[] = [];
  #next = 0;
  /** Each directory's own stat at its last rescan (ctime moves when an entry is added, removed or renamed). */
  readonly #dirStamp = new Map<string, bigint>();
  #running = false;

  constructor(d: UnwatchedRescanDeps) {
    this.#d = d;
  }

  /** Rescan unwatched directories for at most `budgetMs`, from where the last run stopped; each at most once per run. */
  async run(budgetMs: number): Promise<void> {
    if (this.#running) return; // the last run still goes on: it has the budget
    this.#running = true;
    try {
      const t0 = performance.now();
      const turn = { tryWatch: true, newRound: false };
      while (performance.now() - t0 < budgetMs) {
        const sliceEnd = Math.min(performance.now() + SLICE_MS, t0 + budgetMs);
        while (performance.now() < sliceEnd) {
          const ino = this.#take(turn);
          if (ino === undefined) return;
          turn.tryWatch = this.#rescan(ino, turn.tryWatch);
        }
        await yieldToIo();
      }
    } finally {
      this.#running = false;
    }
  }

  /** The next unwatched directory; a new round takes the set as it is now, once per run. */
  #take(turn: { newRound: boolean }): string | undefined {
    const unwatched = this.#d.watcher.unwatched();
    for (;;) {
      if (this.#next >= this.#round.length) {
        if (turn.newRound) return undefined;
        turn.newRound = true;
        this.#round = [...unwatched.keys()];
        this.#next = 0;
        for (const ino of this.#dirStamp.keys()) if (!unwatched.has(ino)) this.#dirStamp.delete(ino);
        if (this.#round.length === 0) return undefined;
      }
      const ino = this.#round[this.#next++]!;
      if (unwatched.has(ino)) return ino;
    }
  }

  /** Rescan one directory; returns whether the next one may try a watch. */
  #rescan(ino: string, tryWatch: boolean): boolean {
    const d = this.#d;
    const row = d.db.objectsByIno(ino).find((r) => r.type === 'dir');
    // Not journaled yet (the root, or a directory capture has not come to): at the path its watch failed for.
    const abs = row === undefined ? (d.watcher.unwatched().get(ino) ?? d.root) : join(d.root, row.path);
    const rel = row?.path ?? relative(d.root, abs);
    if (rel.startsWith('..')) {
      d.watcher.unwatch(ino);
      return tryWatch;
    }
    const st = lstatOrNull(abs);
    if (st?.ino !== ino || st.type !== 'dir') {
      d.watcher.unwatch(ino); // gone or replaced: its parent's rescan or events find what holds the name now
      this.#dirStamp.delete(ino);
      return tryWatch;
    }
    let watched = false;
    if (tryWatch) {
      watched = d.watcher.watch(ino, abs);
      if (watched) d.onWatched?.(abs);
    }
    let names: string[];
    try {
      names = readdirSync(abs);
    } catch {
      return tryWatch && watched;
    }
    for (const n of names) {
      if (rel === '' && n === META_DIR) continue;
      const p = joinRel(rel, n);
      const o = d.db.objectByPath(p);
      const est = lstatOrNull(join(abs, n));
      if (est === null) continue; // removed meanwhile: the directory's stamp moved, the next rescan sees it
      if (d.ignore?.ignores(p, est.type === 'dir') === true) continue;
      if (o === undefined || !unchanged(o, est)) d.hint(p);
    }
    const stamp = st.ctimeNs > st.mtimeNs ? st.ctimeNs : st.mtimeNs;
    if (this.#dirStamp.get(ino) !== stamp) {
      // Entries added, removed or renamed since the last rescan: what the journal holds and the disk does not.
      const present = new Set(names);
      const cut = rel === '' ? 0 : rel.length + 1;
      for (const p of d.db.childPaths(rel)) if (!present.has(p.slice(cut))) d.hint(p);
      this.#dirStamp.set(ino, stamp);
    }
    return tryWatch && watched;
  }
}
