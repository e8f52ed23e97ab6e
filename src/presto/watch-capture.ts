import { join } from 'node:path';
import type { Logger } from 'pino';
import type { BlockMapCache } from '#fsio/blocks.js';
import type { Clock } from '#core/clock.js';
import { D_UPCALL } from '#core/debug.js';
import { IntersyncError } from '#core/errors.js';
import type { NodeId } from '#core/ids.js';
import { parentOf } from '#core/paths.js';
import type { Change, FilesetDb } from '#journal/fileset-db.js';
import { lstatOrNull } from '#fsio/disk.js';
import { DirWatcher, type WatchFn } from './dir-watcher.js';
import type { EchoGuard } from '#fsio/echo-guard.js';
import type { Capture, CaptureStatus, NameJournal, StartProgress } from './capture.js';
import type { IgnoreRules } from './ignore-rules.js';
import { Reconciler, dirNotAsJournaled, type DirtyItem } from './reconciler.js';
import type { HashMany, StatMany } from '#fsio/disk.js';
import { SPLIT_SCAN_MIN, startupScan, unchanged } from './scan.js';
import { journalFresh } from './bulk-journal.js';
import { SubtreeSettle } from './subtree-settle.js';
import { UnwatchedRescan } from './unwatched-rescan.js';
import { WatchLimit } from './watch-limit.js';

export interface WatchCaptureOptions {
  readonly db: FilesetDb;
  readonly root: string;
  readonly nodeId: NodeId;
  readonly clock: Clock;
  readonly log: Logger;
  readonly debug: number;
  readonly guard: EchoGuard;
  /** Quiet time after the last event before a batch is journaled (a file being written is journaled once). */
  readonly settleMs?: number;
  /** Quiet times of subtrees (path -> ms, longest path wins) for the files below them: see SubtreeSettle. */
  readonly subtreeSettleMs?: Readonly<Record<string, number>>;
  /** The fileset's ignore patterns: ignored names are not watched, listed nor journaled. */
  readonly ignore?: IgnoreRules;
  /** A batch waits at most this long under a steady stream of events. */
  readonly maxDelayMs?: number;
  /** How often directories that could not be watched are rescanned (each time for at most an eighth of it). */
  readonly pollMs?: number;
  /**
   * How often the whole tree is walked again, as at start, for what capture missed: an event the kernel dropped,
   * a change in a directory between its creation and its watch that nothing looked at. Never when absent or 0.
   */
  readonly rescanMs?: number;
  /** Pending hints kept before falling back to one rescan of the whole tree. */
  readonly maxPending?: number;
  readonly watchFn?: WatchFn;
  /** Journal captured changes: the server's KML (default) or a client's LML. */
  readonly journal?: (changes: Change[]) => number;
  /** Where the block map of a large file read for its hash is kept, for the peers that will ask for it. */
  readonly blockMaps?: BlockMapCache;
  /** A condition a person must hear about at once (printed by the daemon). */
  readonly onWarning?: (err: IntersyncError) => void;
  /**
   * The status changed while the event loop may be held (more directories left unwatched during the start-up
   * scan): publish it now. Called at most once a second.
   */
  readonly onStatusChange?: () => void;
  /** Test hook: awaited before each run of the first journaling (bulk-journal.ts), to hold a start half-way. */
  readonly beforeRun?: () => Promise<void>;
}

/**
 * Presto, watch kind: captures changes to a plain backing directory with one
 * inotify watch per directory and journals them through the reconciler. On
 * start it scans for what changed while it was down. Hints are batched until
 * the tree is quiet for `settleMs`, so a file being written is journaled once.
 */
export class WatchCapture implements Capture, NameJournal {
  readonly kind = 'watch';
  readonly #o: WatchCaptureOptions;
  readonly #log: Logger;
  readonly #watcher: DirWatcher;
  readonly #reconciler: Reconciler;
  readonly #rescan: UnwatchedRescan;
  readonly #limit: WatchLimit;
  readonly #pending = new Map<string, DirtyItem>();
  /** Hints of files below a subtree with its own quiet time, until it has passed (then they are pending). */
  readonly #subtree: SubtreeSettle<DirtyItem> | null;
  #fullRescan = false;
  #firstPendingAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #hintSinceArmed = false; // a hint came while the timer was armed (see #schedule), the last one at #lastHintAt
  #lastHintAt = 0;
  #poll: NodeJS.Timeout | undefined;
  #periodic: NodeJS.Timeout | undefined;
  #periodicDue = false; // the next full rescan is the periodic one (rescanMs), logged with what it found
  #running: Promise<void> | undefined;
  #state: CaptureStatus['state'] = 'starting';
  #scanning = false;
  #records = 0;
  #lastScan: CaptureStatus['lastScan'] = null;
  #lastError: string | null = null;
  /** What the start is doing, for the status (null once it is done). */
  #progress: StartProgress | null = { phase: 'scanning', done: 0, about: null };
  readonly #scanCount = { entries: 0 };
  /** Settles when start() is done: names asked for (syncPaths) wait until then. */
  readonly #started: Promise<void>;
  #startDone!: () => void;
  readonly #idle: Array<() => void> = [];

  constructor(o: WatchCaptureOptions) {
    this.#o = o;
    this.#log = o.log.child({ component: 'presto' });
    const rootSt = lstatOrNull(o.root);
    if (rootSt === null || rootSt.type !== 'dir') throw IntersyncError.NOT_A_DIRECTORY(o.root);
    this.#watcher = new DirWatcher(
      {
        onEntry: (dirIno, name) => this.#hint({ dirIno, name }),
        onLimit: (path, limit) => this.#limit.reached(path, limit),
        onError: (path, err) => {
          this.#lastError = `watch ${path}: ${err.message}`;
          this.#log.error({ path, err: err.message }, 'cannot watch directory');
        },
      },
      o.watchFn,
    );
    this.#limit = new WatchLimit(o, this.#log, this.#watcher);
    this.#reconciler = new Reconciler({
      db: o.db, root: o.root, rootIno: rootSt.ino, nodeId: o.nodeId, clock: o.clock, log: this.#log, guard: o.guard,
      watcher: this.#watcher,
      ...(o.blockMaps === undefined ? {} : { blockMaps: o.blockMaps }),
      ...(o.ignore === undefined ? {} : { ignore: o.ignore }),
      journal: (changes) => this.#journal(changes),
    });
    this.#rescan = new UnwatchedRescan({
      db: o.db, root: o.root, watcher: this.#watcher, hint: (path) => this.#hint({ path }),
      onWatched: (abs) => this.#log.info({ path: abs }, 'directory watched again'),
      ...(o.ignore === undefined ? {} : { ignore: o.ignore }),
    });
    const subtrees = new SubtreeSettle<DirtyItem>(o.subtreeSettleMs ?? {}, o.root, o.db, o.clock, (items) => {
      for (const it of items) this.#enqueue(it);
    });
    this.#subtree = subtrees.empty ? null : subtrees;
    o.guard.onRelease((path) => this.#hint({ path }));
    this.#started = new Promise((r) => {
      this.#startDone = r;
    });
  }

  /**
   * Scan what changed while the daemon was down, journal it, and start
   * watching. With `statMany` (another thread's lstat), a large tree's scan
   * shares its lstats with that thread.
   */
  async start(statMany?: StatMany, hashMany?: () => HashMany | null): Promise<void> {
    try {
      await this.#start(statMany, hashMany);
    } finally {
      this.#progress = null;
      this.#startDone();
    }
  }

  async #start(statMany: StatMany | undefined, hashMany: (() => HashMany | null) | undefined): Promise<void> {
    // From here on a hint counts: a split scan yields while its watches are already up.
    this.#scanning = true;
    const split = statMany !== undefined && this.#o.db.objectCount() >= SPLIT_SCAN_MIN;
    this.#o.ignore?.refresh(); // a first copy may have brought .intersyncignore
    const scan = await startupScan(this.#o.root, this.#o.db, this.#watcher, split ? statMany : undefined, this.#o.ignore, { fresh: true, progress: this.#scanCount });
    this.#lastScan = { entries: scan.entries, dirty: scan.dirty.length, durMs: Math.round(scan.durMs) };
    this.#log.info({ entries: scan.entries, dirty: scan.dirty.length, fresh: scan.fresh.length, durMs: Math.round(scan.durMs), split }, 'start-up scan');
    for (const p of scan.dirty) this.#pending.set(`p:${p}`, { path: p });
    this.#state = 'watching';
    this.#progress = { phase: 'journaling', done: 0, about: scan.dirty.length + scan.fresh.length };
    await this.#flush();
    if (scan.fresh.length > 0) await this.#journalFresh(scan.fresh, hashMany);
    this.#progress = null;
    await this.#flush(); // what the first journaling left to the reconciler, and the events meanwhile
    const pollMs = this.#o.pollMs ?? 2000;
    this.#poll = setInterval(() => this.#pollUnwatched(), pollMs);
    this.#poll.unref();
    const rescanMs = this.#o.rescanMs ?? 0;
    if (rescanMs > 0) {
      this.#periodic = setInterval(() => {
        this.#periodicDue = true;
        this.rescan();
      }, rescanMs);
      this.#periodic.unref();
    }
  }

  /**
   * Journal the directories nobody journaled yet (bulk-journal.ts), batches waiting meanwhile. A failure (a full
   * disk) leaves the rest to one walk of the whole tree, retried as any failed batch: nothing is lost.
   */
  async #journalFresh(dirs: readonly string[], hashMany: (() => HashMany | null) | undefined): Promise<void> {
    while (this.#running !== undefined) await this.#running;
    const t0 = performance.now();
    const before = this.#records;
    let lastCheckpoint = 0;
    const run = journalFresh({
      db: this.#o.db, root: this.#o.root, nodeId: this.#o.nodeId, clock: this.#o.clock, guard: this.#o.guard, watcher: this.#watcher,
      ...(this.#o.ignore === undefined ? {} : { ignore: this.#o.ignore }),
      journal: (changes) => this.#journal(changes),
      hashMany: hashMany ?? null,
      hint: (path) => this.#hint({ path }),
      progress: (done, about) => {
        this.#progress = { phase: 'journaling', done: this.#records - before, about: Math.max(about, done) };
      },
      afterRun: () => {
        // The WAL stays small: a checkpoint every 16 MiB of records or so, whatever SQLite's own ones managed.
        if (this.#records - lastCheckpoint < 40_000) return;
        lastCheckpoint = this.#records;
        this.#o.db.checkpoint();
      },
      ...(this.#o.beforeRun === undefined ? {} : { beforeRun: this.#o.beforeRun }),
    }, dirs).then(() => undefined, (e: unknown) => {
      const err = e instanceof IntersyncError ? e : IntersyncError.IO('journal', this.#o.root, e);
      this.#lastError = err.message;
      this.#log.error({ err: err.message, code: err.code }, 'first journaling failed; the tree is walked again');
      this.#fullRescan = true;
    });
    this.#running = run;
    try {
      await run;
    } finally {
      if (this.#running === run) this.#running = undefined;
    }
    const mem = process.memoryUsage();
    this.#log.info({
      records: this.#records - before, dirs: dirs.length, durMs: Math.round(performance.now() - t0),
      rssMb: Math.round(mem.rss / 2 ** 20), heapMb: Math.round(mem.heapUsed / 2 ** 20),
    }, 'first journaling of new directories');
  }

  #journal(changes: Change[]): number {
    const n = this.#o.journal === undefined ? this.#o.db.commit(changes).length : this.#o.journal(changes);
    this.#records += n;
    return n;
  }

  async stop(): Promise<void> {
    this.#state = 'stopped';
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    if (this.#poll !== undefined) clearInterval(this.#poll);
    if (this.#periodic !== undefined) clearInterval(this.#periodic);
    this.#subtree?.stop();
    this.#watcher.close();
    await this.#running;
  }

  status(): CaptureStatus {
    return {
      kind: this.kind, state: this.#state, watchedDirs: this.#watcher.watchCount, pending: this.#pending.size + (this.#subtree?.size ?? 0),
      records: this.#records, lastScan: this.#lastScan, lastError: this.#lastError, ignored: this.#o.ignore?.status() ?? null,
      progress: this.#progress === null ? null : this.#progress.phase === 'scanning' ? { ...this.#progress, done: this.#scanCount.entries } : { ...this.#progress },
      watchLimit: this.#limit.status(), // counted now (see WatchLimit)
    };
  }

  /**
   * Journal now whatever changed at `paths` and is not journaled yet: the
   * apply path calls this before it changes those names, so a peer's change
   * never overwrites a local one that capture has not seen yet (it becomes a
   * journaled change, and the version check or the conflict step handles it).
   * A journaled name gone from disk, or one below a directory moved or removed a moment ago, first has the
   * pending hints journaled: the caller then finds the object at the name a move gave it, and places its change
   * again.
   */
  async syncPaths(paths: readonly string[]): Promise<void> {
    // What changed at such a name is a move (or a removal), of its object or of a directory above it, and only
    // the pending hints say which and where to (the destination's directory saw it), not the name alone. Before,
    // the name alone was looked at and its file, alive at e/f after `mv d e`, journaled as removed: the client
    // lost the object and resynced (chaos seed 9203).
    const gone = (p: string): boolean => this.#o.db.objectByPath(p) !== undefined && lstatOrNull(join(this.#o.root, p)) === null;
    await this.#started; // a big tree's first journaling first: the names it has not come to yet are not journaled
    if (this.#state === 'watching' && paths.some((p) => gone(p) || this.#belowMovedDir(p))) await this.#journalPending();
    await this.#journalNames(paths);
  }

  /**
   * Journal what changed at `paths`, from these names alone: for the filter mount (fuse-capture.ts), which names
   * every name an operation touched (both of a rename), right after the operation. Pending hints are not
   * journaled first, as syncPaths does: one of them may name the old name of a directory moved a moment ago,
   * whose new name no hint holds yet, and a batch of it alone journals the move as a removal (and the tree
   * made again under the new name).
   */
  async journalNames(paths: readonly string[]): Promise<void> {
    await this.#journalNames(paths);
  }

  async #journalNames(paths: readonly string[]): Promise<void> {
    const changed = paths.filter((p) => {
      const row = this.#o.db.objectByPath(p);
      const st = lstatOrNull(join(this.#o.root, p));
      if (row === undefined) return st !== null;
      return st === null || !unchanged(row, st);
    });
    if (changed.length === 0) return;
    while (this.#running !== undefined) await this.#running;
    // Its retries too: files being written, and the other names of a file's inode that a link, a move or a
    // removal journaled here changed under them (no event says so; before, they were dropped here).
    const run = this.#reconciler.run(changed.map((path) => ({ path })), { unfinished: (ps) => this.#requeue(ps) })
      .then((res) => this.#retryLater(res.retry));
    this.#running = run;
    try {
      await run;
    } finally {
      if (this.#running === run) this.#running = undefined;
      if (this.#pending.size > 0 || this.#fullRescan) this.#schedule(); // hints that arrived meanwhile
      else this.#notifyIdle();
    }
  }

  /** A directory above `p` is journaled and not at its name on disk now (see dirNotAsJournaled). */
  #belowMovedDir(p: string): boolean {
    for (let d = parentOf(p); d !== ''; d = parentOf(d)) if (dirNotAsJournaled(this.#o.db, this.#o.root, d)) return true;
    return false;
  }

  /** Journal the pending hints now, without waiting for the quiet time: the events inotify holds so far included. */
  async #journalPending(): Promise<void> {
    await new Promise((r) => setImmediate(r)); // the poll phase first: events read now become hints
    while (this.#running !== undefined) await this.#running;
    if (this.#pending.size === 0 && !this.#fullRescan) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#flush();
  }

  /** Walk the whole tree again soon, as at start (after a resync rebuilt the journal under it). */
  rescan(): void {
    this.#fullRescan = true;
    this.#schedule();
  }

  /**
   * The ignore patterns changed (.intersyncignore, seen before a batch, or the config): the tree is scanned
   * again under the new ones. Newly ignored names stop being journaled, and keep their watch no more; names
   * no longer ignored are journaled as found (nothing is removed on the peers either way).
   */
  ignoreChanged(): void {
    this.#log.info({ patterns: this.#o.ignore?.status().patterns ?? 0 }, 'ignore patterns changed; rescanning the tree');
    this.rescan();
  }

  /** Resolves when no hint is pending and no batch runs (tests and orderly shutdown). */
  idle(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #isIdle(): boolean {
    return this.#pending.size === 0 && (this.#subtree?.size ?? 0) === 0 && this.#running === undefined && this.#timer === undefined && !this.#fullRescan;
  }

  #hint(item: DirtyItem): void {
    // Before start() (a first copy releasing every name it wrote), the start-up scan covers whatever changed.
    if (this.#state === 'stopped' || (this.#state === 'starting' && !this.#scanning)) return;
    if ((this.#o.debug & D_UPCALL) !== 0) this.#log.debug({ item }, 'event');
    // Bounded as the pending set: past that many held files, hints are batched as elsewhere in the tree.
    const sub = this.#subtree !== null && !this.#fullRescan && this.#subtree.size < (this.#o.maxPending ?? 200_000) ? this.#subtree : null;
    const p = sub === null ? null : this.#reconciler.resolve(item);
    if (p === null || sub?.offer(keyOf(item), item, p) !== true) this.#enqueue(item);
  }

  #enqueue(item: DirtyItem): void {
    if (this.#state === 'stopped') return;
    const key = keyOf(item);
    if (this.#pending.size === 0) this.#firstPendingAt = this.#o.clock.monotonic();
    if (this.#pending.size >= (this.#o.maxPending ?? 200_000)) {
      // Bounded: past this many hints one rescan of the tree is cheaper and loses nothing.
      if (!this.#fullRescan) this.#log.warn({ pending: this.#pending.size }, 'too many pending events, rescanning the tree');
      this.#fullRescan = true;
      this.#pending.clear();
    } else if (!this.#fullRescan) {
      this.#pending.set(key, item);
    }
    this.#schedule();
  }

  /**
   * The batch runs once the tree was quiet for `settleMs`, or once the first pending hint waited `maxDelayMs`. The
   * timer armed is not moved per hint (a burst's thousands of hints each cleared and set it): a hint while it runs
   * is noted with its time, and when the timer fires after one, it is armed once more for what is left of the
   * quiet time since that hint. A lone change (its few events within a moment) still goes after one quiet time.
   */
  #schedule(): void {
    if (this.#state !== 'watching') return;
    if (this.#timer !== undefined) {
      this.#hintSinceArmed = true;
      this.#lastHintAt = this.#o.clock.monotonic();
      return;
    }
    this.#arm(this.#waitedTooLong() ? 0 : (this.#o.settleMs ?? 20));
  }

  #arm(delay: number): void {
    this.#hintSinceArmed = false;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const settle = this.#o.settleMs ?? 20;
      // Armed again only after a hint came meanwhile, so a clock that does not move (a test's) cannot hold it for ever.
      if (this.#hintSinceArmed && !this.#waitedTooLong()) this.#arm(Math.max(0, Math.min(settle, this.#lastHintAt + settle - this.#o.clock.monotonic())));
      else void this.#flush();
    }, delay);
  }

  #waitedTooLong(): boolean {
    return this.#o.clock.monotonic() - this.#firstPendingAt >= (this.#o.maxDelayMs ?? 500);
  }

  async #flush(): Promise<void> {
    if (this.#running !== undefined) return; // the running batch flushes again when done
    if (this.#pending.size === 0 && !this.#fullRescan) {
      this.#notifyIdle();
      return;
    }
    const run = this.#batch();
    this.#running = run;
    try {
      await run;
    } finally {
      if (this.#running === run) this.#running = undefined; // syncPaths may have started its own batch since
    }
    if (this.#pending.size > 0 || this.#fullRescan) this.#schedule();
    else this.#notifyIdle();
  }

  /** Look at `paths` again once the tree is quiet: files still being written, names whose inode changed under them. */
  #retryLater(paths: readonly string[]): void {
    if (paths.length === 0) return;
    setTimeout(() => {
      for (const path of paths) this.#hint({ path });
    }, this.#o.settleMs ?? 20).unref();
  }

  async #batch(): Promise<void> {
    if (this.#o.ignore?.refresh() === true) this.ignoreChanged();
    let items: DirtyItem[];
    let periodic = false;
    if (this.#fullRescan) {
      periodic = this.#periodicDue;
      this.#periodicDue = false;
      this.#fullRescan = false;
      this.#pending.clear();
      this.#o.ignore?.resetCount();
      items = (await startupScan(this.#o.root, this.#o.db, this.#watcher, undefined, this.#o.ignore)).dirty.map((path) => ({ path }));
    } else {
      items = [...this.#pending.values()];
      this.#pending.clear();
    }
    try {
      const res = await this.#reconciler.run(items, { settle: true, unfinished: (ps) => this.#requeue(ps) });
      this.#retryLater(res.retry);
      // What the walk journaled: changes no event brought, or whose events were still on their way (a busy tree).
      if (periodic) this.#log.info({ records: res.records, looked: items.length }, 'periodic rescan of the tree');
    } catch (e) {
      const err = e instanceof IntersyncError ? e : IntersyncError.IO('journal', this.#o.root, e);
      this.#lastError = err.message;
      this.#log.error({ err: err.message, code: err.code }, 'journaling failed; will retry');
      for (const it of items) this.#pending.set(keyOf(it), it);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  /** A failed batch's names, hinted again for the next one (bounded as every hint is: see #enqueue). */
  #requeue(paths: readonly string[]): void {
    for (const path of paths) this.#enqueue({ path });
  }

  #notifyIdle(): void {
    if (!this.#isIdle()) return;
    for (const cb of this.#idle.splice(0)) cb();
  }

  /**
   * Watches that may be of a removed directory (see DirWatcher), left after their event was looked at: a
   * directory journaled with that inode number and still on disk is looked at again (watched anew, what it
   * holds compared); a watch no such directory has is dropped (the apply path removed it: no leak).
   */
  #sweepSuspects(): void {
    for (const ino of this.#watcher.suspects()) {
      const live = this.#o.db.objectsByIno(ino).find((r) => r.type === 'dir' && lstatOrNull(join(this.#o.root, r.path))?.ino === ino);
      if (live === undefined) this.#watcher.unwatch(ino);
      else this.#hint({ path: live.path });
    }
  }

  /**
   * Rescan the directories that have no watch (on a budget: an eighth of the poll interval, in slices that
   * yield), and try to watch them again (the limit may have been raised): see UnwatchedRescan.
   */
  #pollUnwatched(): void {
    this.#sweepSuspects();
    if (this.#watcher.unwatched().size === 0) {
      this.#limit.allWatched();
      return;
    }
    const pollMs = this.#o.pollMs ?? 2000;
    this.#rescan.run(Math.max(5, Math.min(250, pollMs / 8))).catch((e: unknown) => {
      this.#log.error({ err: (e as Error).message }, 'rescan of unwatched directories failed; retried at the next poll');
    });
  }
}

/** The key of a hint in the pending set: one per path, or per directory inode and name. */
function keyOf(item: DirtyItem): string {
  return 'path' in item ? `p:${item.path}` : `e:${item.dirIno}/${item.name ?? ''}`;
}
