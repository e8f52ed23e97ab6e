import { mkdirSync, rmSync } from 'node:fs';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import type { IntersyncError } from '#core/errors.js';
import type { Tid } from '#core/ids.js';
import type { RecordDraft } from '#core/record.js';
import type { ObjectRow, StatIdentity } from '#journal/fileset-db.js';
import type { DiskStat, HashMany, StatMany } from '#fsio/disk.js';
import { BlockMapCache } from '#fsio/blocks.js';
import { SAFE_ATTRS, type AttrPolicy } from '#policy/attr-policy.js';
import type { ApplyDeps, ApplyState } from './apply-deps.js';
import { confine } from './confine.js';
import { applyChange } from './disk-change.js';
import { failureError } from './fs-thread.js';
import { localize } from './local-attrs.js';
import { writeNewFile } from './new-file.js';
import { attrsAbove, baseOf, checkRecord, needsContent } from './record-check.js';
import { SharedFsThread } from './shared-fs-thread.js';
import { stage, stageBytes, stageOrPlaceholder, type ContentSource, type Staged } from './staging.js';
import { appliedIdentity } from './stat-identity.js';
import { cleanTmp, stagedPath, tmpName } from './tmp-folder.js';
import { undo } from './undo.js';

export type { ApplyDeps } from './apply-deps.js';
export type { ContentSource, Staged } from './staging.js';

/** The hash asked for when any content of the object will do: no object holds it, so it is always fetched. */
const ANY_CONTENT = '0'.repeat(64);

/**
 * THE apply path: every change that comes from another node (reintegration on
 * a server, forwarding on a client, the first copy) goes through here. It
 * checks the version, stages content in a temp file, changes the backing
 * directory with the path held in the echo guard, and hands the new stat
 * identity to the caller's commit, which journals the record in the same tick.
 * One peer's record takes these steps in one order through applyRecord (record-applier.ts), which each
 * direction calls with its Journaler; a first copy's new files go straight in (createDirect).
 *
 * Its parts: record-check.ts (the check of a record against the journal and the disk), staging.ts (content
 * staged in the temp folder: inline, a local copy by hash, a block delta, an empty stand-in), disk-change.ts
 * (the change of the disk for one record and its one commit), shared-fs-thread.ts (the file-system thread),
 * with the helpers they share in tmp-folder.ts, stat-identity.ts, undo.ts, new-file.ts, other-names.ts and
 * late-write.ts. They share one ApplyState: the dependencies and `blockMaps`.
 */
export class ApplyPath {
  readonly #d: ApplyDeps;
  /** Block maps of this node's large files, shared with the content reads a peer asks for. */
  readonly blockMaps = new BlockMapCache();
  readonly #s: ApplyState;
  readonly #fs = new SharedFsThread();

  constructor(d: ApplyDeps) {
    this.#d = d;
    this.#s = { deps: d, blockMaps: this.blockMaps };
    mkdirSync(d.tmpDir, { recursive: true, mode: 0o700 });
  }

  /**
   * The version `d` applies on here although its pre-version is not the object's current one (the origin's
   * chain of changes, a change accepted after it, another name of a hard link), or null: `baseOf` in record-check.ts.
   */
  baseOf(d: RecordDraft): Tid | null {
    return baseOf(this.#d, d);
  }

  /** The row whose attributes a peer's write or truncate takes here instead of its own, or null: `attrsAbove` in record-check.ts. */
  attrsAbove(d: RecordDraft): ObjectRow | null {
    return attrsAbove(this.#d.db, d);
  }

  check(d: RecordDraft): IntersyncError | null {
    return checkRecord(this.#d, d);
  }

  /** The policy this node applies peers' modes, owners and symlinks under. */
  get attrs(): AttrPolicy {
    return this.#d.attrs?.() ?? SAFE_ATTRS;
  }

  /**
   * A peer's record as this node applies and journals it: set-id bits and owners only where the
   * fileset's policy allows them (`local-attrs.ts`); UNSAFE_LINK for an escaping symlink under safe-links.
   */
  localize<T extends RecordDraft>(d: T, policy: AttrPolicy = this.attrs): T {
    return localize(this.#d.db, policy, d);
  }

  needsContent(d: RecordDraft): boolean {
    return needsContent(d);
  }

  /**
   * Stage the content of a create, write or truncate: from inline bytes, from
   * an object here with the same hash (identical content is never sent twice),
   * or from the source, as a block delta against this node's old version.
   */
  stage(d: RecordDraft, inline: Buffer | null, source: ContentSource | null): Promise<Staged> {
    return stage(this.#s, d, inline, source);
  }

  /**
   * Stage `d`'s content; when the peer holds it no longer (changed again or removed since), an empty
   * placeholder instead, which a later record of the peer replaces or removes (`placeholder` says which).
   */
  stageOrPlaceholder(d: RecordDraft, inline: Buffer | null, source: ContentSource | null): Promise<{ staged: Staged; placeholder: boolean }> {
    return stageOrPlaceholder(this.#s, d, inline, source);
  }

  /**
   * Stage the peer's current content of object `d.fid`, whatever its hash now (a conflict step, or a
   * client whose copy is behind the server's): `d` gives the name and attributes; an empty stand-in when
   * the peer holds none at the object's name.
   */
  stageCurrent(d: RecordDraft, source: ContentSource | null): Promise<{ staged: Staged; placeholder: boolean }> {
    // Through the method, as before the split: a test wraps stageOrPlaceholder on the instance (written-while-fetched).
    return this.stageOrPlaceholder({ ...d, kind: 'write', newPath: null, target: null, hash: ANY_CONTENT, size: null }, null, source);
  }

  /**
   * Stage content that came with its record (inline bytes), checked against
   * the record's hash and size, and already carrying the record's owner,
   * mode and mtime so that applying it is a rename.
   */
  stageBytes(d: RecordDraft, buf: Buffer): Staged {
    return stageBytes(this.#d.tmpDir, d, buf);
  }

  /**
   * Change the disk for `d` and commit it through `commit` in the same tick,
   * with the touched names held in the echo guard so capture does not see the
   * change as a local one. `staged` is consumed.
   */
  apply(d: RecordDraft, staged: Staged | null, commit: (identity: StatIdentity | null) => void, intent: string | number | null = null): void {
    applyChange(this.#s, d, staged, commit, intent);
  }

  /** Remove content staged for a record that will not be applied. */
  discard(staged: Staged | null): void {
    if (staged !== null) rmSync(staged.file, { force: true });
  }

  /** A run applied (record-applier.ts applyRun): its records and its time, into the node's metrics. */
  observeRun(records: number, seconds: number): void {
    this.#d.metrics?.count('apply_run_records', {}, records);
    this.#d.metrics?.observe('apply_run_seconds', seconds);
  }

  /** `fn`'s commits in one transaction (FilesetDb#batch): all of them land or none does. */
  batch(fn: () => void): void {
    this.#d.db.batch(fn);
  }

  /** In-flight notes for a run of changes, in one transaction, before any of them reaches the disk; their ids in order. */
  noteMany(intents: readonly string[]): number[] {
    const db = this.#d.db;
    const ids: number[] = [];
    db.batch(() => {
      for (const i of intents) ids.push(db.markInflight(i));
    });
    return ids;
  }

  /** Clear in-flight notes (of changes that never reached the disk, or were journaled), in one transaction. */
  clearMany(ids: readonly number[]): void {
    const db = this.#d.db;
    db.batch(() => {
      for (const id of ids) db.clearInflight(id);
    });
  }

  /** Take back a new name a run placed and the journal then refused (a file, a symlink or a directory it made: see undo.ts). */
  undoNew(d: RecordDraft): void {
    const abs = confine(this.#d.root, d.path);
    undo(this.#d.log, d, abs, abs);
  }

  /**
   * A create written straight at its name, without a temp file: for a first
   * copy into an empty directory, where nobody reads half-written files and
   * every file is new (the caller notes the names first, so that a start after
   * a crash removes what it did not journal). Throws CONFLICT when the name
   * is taken; otherwise the file is complete, journaled through `commit`, or
   * not there at all.
   */
  createDirect(d: RecordDraft, buf: Buffer, commit: (identity: StatIdentity) => void, checkedDirs?: Set<string>): void {
    if (d.kind !== 'create') throw new Error(`createDirect of a ${d.kind}`);
    const abs = confine(this.#d.root, d.path, checkedDirs);
    this.#d.guard.hold(d.path);
    try {
      const identity = appliedIdentity(writeNewFile(abs, d, buf));
      try {
        commit(identity);
      } catch (e) {
        undo(this.#d.log, d, abs, abs);
        throw e;
      }
    } finally {
      this.#d.guard.release(d.path);
    }
  }

  /**
   * A peer's new file of a run (record-applier.ts applyRun) written straight at its name with its checked content
   * `buf` (no temp file, no link into place), then journaled through `commit` with its in-flight note `note`
   * cleared, in the run's transaction. The file has no permission bits until it is whole (writeNewFile's
   * `marked`), which tells a start after a crash that a file left at the name of such a note is half-written by
   * this process (recovery.ts). Throws CONFLICT when the name is taken (a program's file made a moment ago stays);
   * a commit that fails takes the file back. `checkedDirs`: the directories of the run found real so far (confine).
   */
  createInRun(d: RecordDraft, buf: Uint8Array, commit: (identity: StatIdentity) => void, note: number | null, checkedDirs?: Set<string>): void {
    if (d.kind !== 'create') throw new Error(`createInRun of a ${d.kind}`);
    const abs = confine(this.#d.root, d.path, checkedDirs);
    this.#d.guard.hold(d.path);
    try {
      const identity = appliedIdentity(writeNewFile(abs, d, buf, true));
      try {
        this.#d.db.batch(() => {
          commit(identity);
          if (note !== null) this.#d.db.clearInflight(note);
        });
      } catch (e) {
        undo(this.#d.log, d, abs, abs);
        throw e;
      }
      this.#d.metrics?.applied(1);
    } finally {
      this.#d.guard.release(d.path);
    }
  }

  /**
   * createDirect for many new files at once, written by the file-system
   * thread while this thread goes on (acquireThread() first). `commit` gets
   * each file's identity, or the error that left nothing at its name, in
   * order, and journals them in one transaction; if it throws, the files are
   * removed.
   */
  async createDirectMany(
    files: ReadonlyArray<{ readonly d: RecordDraft; readonly buf: Uint8Array }>, commit: (done: Array<StatIdentity | Error>) => void,
    checkedDirs?: Set<string>,
  ): Promise<void> {
    const thread = this.#fs.running();
    const jobs = files.map(({ d }) => {
      if (d.kind !== 'create') throw new Error(`createDirect of a ${d.kind}`);
      const abs = confine(this.#d.root, d.path, checkedDirs);
      return { abs, d: { path: d.path, mode: d.mode, uid: d.uid, gid: d.gid, mtimeMs: d.mtimeMs, hash: d.hash, size: d.size } };
    });
    for (const { d } of files) this.#d.guard.hold(d.path);
    try {
      const done = (await thread.write(jobs, files.map((f) => f.buf))).map((r) => ('failed' in r ? failureError(r) : r));
      try {
        commit(done);
      } catch (e) {
        files.forEach(({ d }, i) => {
          if (!(done[i] instanceof Error)) undo(this.#d.log, d, jobs[i]!.abs, jobs[i]!.abs);
        });
        throw e;
      }
    } finally {
      for (const { d } of files) this.#d.guard.release(d.path);
    }
  }

  /** lstat of many names on the file-system thread (acquireThread() first), for a start-up scan to share. */
  lstatMany(abs: readonly string[]): Promise<Array<DiskStat | null>> {
    return this.#fs.running().lstat(abs);
  }

  /**
   * The file-system thread's reads for a first journaling (presto/bulk-journal.ts): `get` starts the thread when
   * first called (a small tree never does), `release` stops it again if it did.
   */
  hashThread(): { readonly get: () => HashMany; readonly release: () => Promise<void> } {
    let taken = false;
    return {
      get: () => {
        if (!taken) this.acquireThread();
        taken = true;
        return (abs) => this.#fs.running().hash(abs);
      },
      release: async () => {
        if (!taken) return;
        taken = false;
        await this.releaseThread();
      },
    };
  }

  /** Start the file-system thread, or count one more user of it (it boots while the caller prepares its work). */
  acquireThread(): void {
    this.#fs.acquire();
  }

  /** One user fewer; the last one stops the thread. */
  releaseThread(): Promise<void> {
    return this.#fs.release();
  }

  /** `fn` with the file-system thread running when `use` (given its lstat, for a start-up scan to share), stopped after. */
  async withThread<T>(use: boolean, fn: (statMany: StatMany | undefined, hashMany: () => HashMany) => Promise<T>): Promise<T> {
    const reads = this.hashThread();
    if (use) this.acquireThread();
    try {
      return await fn(use ? (abs) => this.lstatMany(abs) : undefined, reads.get);
    } finally {
      if (use) await this.releaseThread();
      await reads.release();
    }
  }

  #writeback: ChildProcess | null = null;

  /**
   * Start writing back what was applied so far, in the background (a long
   * copy overlaps its disk writes with its work, and the flush that follows
   * has less left to do). Makes nothing durable by itself: flush() does.
   */
  startWriteback(): void {
    if (this.#writeback !== null) return;
    try {
      const child = spawn('sync', ['-f', this.#d.root], { stdio: 'ignore' });
      child.unref(); // a stop does not wait for it
      this.#writeback = child;
      const done = (): void => {
        if (this.#writeback === child) this.#writeback = null;
      };
      child.once('exit', done);
      child.once('error', done); // no coreutils sync: flush() says what it can
    } catch {
      this.#writeback = null;
    }
  }

  /** Make everything applied so far durable: file data and names, then the journal. */
  flush(): void {
    const t0 = performance.now();
    try {
      execFileSync('sync', ['-f', this.#d.root], { stdio: 'ignore' });
    } catch {
      // Without coreutils' syncfs, fall back to syncing the journal only; the start-up scan re-checks.
    }
    this.#d.db.sync();
    this.#d.metrics?.observe('flush_seconds', (performance.now() - t0) / 1000);
  }

  /**
   * flush(), without blocking this thread while the file system writes back: what was applied before the call
   * is durable when it resolves (the syncfs starts after it).
   */
  async flushAsync(): Promise<void> {
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      try {
        const child = spawn('sync', ['-f', this.#d.root], { stdio: 'ignore' });
        child.once('exit', () => resolve());
        child.once('error', () => resolve()); // no coreutils sync: the journal only, as flush() does
      } catch {
        resolve();
      }
    });
    this.#d.db.sync();
    this.#d.metrics?.observe('flush_seconds', (performance.now() - t0) / 1000);
  }

  /** Where uploaded content waits for the record that names it. */
  stagedPath(hash: string): string {
    return stagedPath(this.#d.tmpDir, hash);
  }

  /** A fresh temp path in the fileset's temp folder, on the same file system as the tree. */
  tmpName(): string {
    return tmpName(this.#d.tmpDir);
  }

  /** Remove temp files a killed process left behind. */
  static cleanTmp(tmpDir: string): void {
    cleanTmp(tmpDir);
  }
}
