import { readdirSync, type Dirent } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Clock } from '#core/clock.js';
import { META_DIR, isInlineSize } from '#core/format.js';
import { NO_VERSION, type NodeId } from '#core/ids.js';
import { joinRel, parentOf } from '#core/paths.js';
import type { RecordDraft, RecordKind } from '#core/record.js';
import type { Change, FilesetDb } from '#journal/fileset-db.js';
import { hashFile, identityOf, lstatOrNull, nowNs, readTargetOrNull, sameStat, type DiskStat, type HashMany } from '#fsio/disk.js';
import type { EchoGuard } from '#fsio/echo-guard.js';
import type { IgnoreRules } from './ignore-rules.js';
import type { WatchSink } from './reconcile-types.js';


export interface BulkDeps {
  readonly db: FilesetDb;
  readonly root: string;
  readonly nodeId: NodeId;
  readonly clock: Clock;
  readonly guard: EchoGuard;
  readonly watcher: WatchSink | null;
  readonly ignore?: IgnoreRules;
  /** Journal a run of changes in one transaction; returns how many records. */
  readonly journal: (changes: Change[]) => number;
  /** The file-system thread's reads, taken once the walk has met enough files to be worth it; null: read here. */
  readonly hashMany: (() => HashMany | null) | null;
  /** A name this walk leaves to the reconciler (a hard link, a large file, one moved from a journaled name...). */
  readonly hint: (path: string) => void;
  /** Records journaled so far and about how many in all (an estimate from the directories left). */
  readonly progress: (done: number, about: number) => void;
  /** After each run's commit (a WAL checkpoint when it grew). */
  readonly afterRun?: () => void;
  /** Test hook: awaited before each run is committed (holds a first journaling half-way). */
  readonly beforeRun?: () => Promise<void>;
}

/** Files read per job of the file-system thread, and records per transaction (about). */
const FILES_PER_JOB = 1024;
/** From this many files met, the reads go to the file-system thread (below it, its start costs more than it saves). */
const THREAD_FROM = 4096;

interface FileItem {
  readonly path: string;
  readonly st: DiskStat;
}

interface Run {
  /** Records whose drafts are ready, in journal order, before `files`. */
  readonly before: Change[];
  readonly files: FileItem[];
  readonly readAt: bigint;
  readonly hashes: Promise<Array<{ hash: string | null; after: DiskStat | null }>>;
}

/**
 * The first journaling of directories nobody journaled yet (a first start on a populated tree, or the part a
 * killed first start left): each directory is watched, then listed, and what it holds is journaled in runs, one
 * transaction each, the files read and hashed on the file-system thread meanwhile. The records are those the
 * reconciler makes for a new directory's names (`create` in reconcile-changes.ts: mkdir, create, symlink); what
 * needs its judgement is handed to it as a hint instead: a name the journal knows, an inode it knows (a move, a
 * hard link), a file too large to read whole (its block map), a name that changed while read. Nothing is kept per
 * object: the walk holds the directories still to list and one or two runs in flight.
 *
 * `dirs` are the fresh directories the start-up scan met (not journaled, their inode unknown), parents first.
 */
export async function journalFresh(d: BulkDeps, dirs: readonly string[]): Promise<number> {
  // The directories to list; `made`: its parent was made by this walk (in a run committed before its own).
  const stack: Array<{ readonly path: string; readonly made: boolean }> = [...dirs].reverse().map((path) => ({ path, made: false }));
  let records = 0;
  let listed = 0;
  let entries = 0;
  let filesMet = 0;
  let pending: Change[] = [];
  let files: FileItem[] = [];
  const inFlight: Run[] = [];
  let hashMany: HashMany | null = null;
  const about = (): number => records + Math.round(stack.length * (listed === 0 ? 10 : entries / listed + 1)) + pending.length + files.length;

  const commit = async (changes: Change[]): Promise<void> => {
    if (changes.length === 0) return;
    await d.beforeRun?.();
    records += d.journal(changes);
    d.afterRun?.();
    d.progress(records, about());
  };
  const land = async (run: Run): Promise<void> => {
    const got = await run.hashes;
    const out = run.before;
    run.files.forEach((f, i) => {
      const { hash, after } = got[i]!;
      if (hash === null || after === null || !sameStat(f.st, after)) {
        if (after !== null) d.hint(f.path); // changed while read (or became something else): the reconciler's
        return;
      }
      out.push({ draft: draftOf(d, 'create', f.path, after, { size: after.size, hash }), identity: identityOf(after, run.readAt) });
    });
    await commit(out);
  };
  const send = async (): Promise<void> => {
    if (files.length === 0) {
      if (pending.length >= FILES_PER_JOB) {
        // Directories and symlinks only, so far: they need no read.
        for (const r of inFlight.splice(0)) await land(r);
        await commit(pending);
        pending = [];
      }
      return;
    }
    if (hashMany === null && filesMet >= THREAD_FROM) hashMany = d.hashMany?.() ?? null;
    const readAt = nowNs(); // before the read: a file written within the racy window of it is read again later
    const batch = files;
    const hashes = hashMany !== null ? hashMany(batch.map((f) => join(d.root, f.path))) : hashHere(d.root, batch);
    inFlight.push({ before: pending, files: batch, readAt, hashes });
    pending = [];
    files = [];
    // One run read on the other thread while this one lists and commits the one before it.
    while (inFlight.length > 1) await land(inFlight.shift()!);
    if (hashMany === null) await yieldToLoop(); // status, the listener and inotify get their turn
  };

  while (stack.length > 0) {
    const { path: dir, made } = stack.pop()!;
    const abs = join(d.root, dir);
    const st = lstatOrNull(abs);
    if (st === null) continue; // gone again: nothing was journaled of it
    // Journaled meanwhile, or no longer the directory the scan met: the reconciler decides, as for any name.
    if (st.type !== 'dir' || !fresh(d, dir, st) || (!made && d.db.objectByPath(parentOf(dir))?.type !== 'dir' && parentOf(dir) !== '')) {
      d.hint(dir);
      continue;
    }
    pending.push({ draft: draftOf(d, 'mkdir', dir, st, {}), identity: identityOf(st, nowNs()) });
    d.watcher?.watch(st.ino, abs); // watched first, then listed: what is made in it from now on raises an event
    let list: Dirent[];
    try {
      list = readdirSync(abs, { withFileTypes: true });
    } catch {
      d.hint(dir); // removed meanwhile: its own event follows, and the reconciler looks
      continue;
    }
    listed++;
    entries += list.length;
    for (const de of list) {
      if (dir === '' && de.name === META_DIR) continue;
      const p = joinRel(dir, de.name);
      if (d.ignore !== undefined && !d.ignore.empty && d.ignore.ignores(p, de.isDirectory())) {
        d.ignore.note(p, true);
        continue;
      }
      if (de.isDirectory()) {
        stack.push({ path: p, made: true });
        continue;
      }
      const est = lstatOrNull(join(d.root, p));
      if (est === null) continue; // gone: nothing to journal
      if (est.type === 'symlink' && fresh(d, p, est)) {
        const target = readTargetOrNull(join(d.root, p));
        if (target !== null) pending.push({ draft: draftOf(d, 'symlink', p, est, { target }), identity: identityOf(est, nowNs()) });
      } else if (est.type === 'file' && est.nlink === 1 && isInlineSize(est.size) && fresh(d, p, est)) {
        files.push({ path: p, st: est });
        filesMet++;
        if (files.length >= FILES_PER_JOB) await send();
      } else if (est.type !== 'other') {
        d.hint(p); // a hard link, a large file, a name or inode the journal knows, a directory now
      }
    }
    if (files.length + pending.length >= FILES_PER_JOB) await send();
  }
  await send();
  for (const r of inFlight.splice(0)) await land(r);
  await commit(pending);
  return records;
}

/** Not journaled at its name, and its inode not journaled anywhere (no move, no other name), nor held by the apply path. */
function fresh(d: BulkDeps, p: string, st: DiskStat): boolean {
  return !d.guard.isHeld(p) && d.db.objectByPath(p) === undefined && d.db.objectsByIno(st.ino).length === 0;
}

async function hashHere(root: string, files: readonly FileItem[]): Promise<Array<{ hash: string | null; after: DiskStat | null }>> {
  const out: Array<{ hash: string | null; after: DiskStat | null }> = [];
  for (const f of files) {
    const abs = join(root, f.path);
    const hash = await hashFile(abs, f.st.size);
    out.push({ hash, after: lstatOrNull(abs) });
  }
  return out;
}

/** The draft the reconciler makes for a new name (reconcile-changes.ts draftOf, for a new object). */
function draftOf(d: BulkDeps, kind: RecordKind, path: string, st: DiskStat, extra: { target?: string; size?: number; hash?: string }): RecordDraft {
  const isFile = st.type === 'file';
  return {
    kind, fid: d.db.newFid(), path, newPath: null,
    target: extra.target ?? null,
    preVersion: NO_VERSION,
    size: isFile ? extra.size ?? null : null,
    hash: isFile ? extra.hash ?? null : null,
    mode: st.mode, uid: st.uid, gid: st.gid, mtimeMs: st.mtimeMs,
    origin: d.nodeId, time: d.clock.now(),
  };
}
