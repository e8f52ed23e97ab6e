import { readdirSync, type Dirent } from 'node:fs';
import { join } from 'node:path';
import { EMPTY_DIGEST, digestAdd } from '#core/digest.js';
import { META_DIR } from '#core/format.js';
import { joinRel } from '#core/paths.js';
import type { FilesetDb, StatRow } from '#journal/fileset-db.js';
import { hashFile, lstatOrNull, readTargetOrNull, type DiskStat, type StatMany } from '#fsio/disk.js';
import type { IgnoreRules } from './ignore-rules.js';
import type { WatchSink } from './reconciler.js';

export interface ScanResult {
  /** Paths whose stat data differ from the object table, and table paths missing from disk. */
  readonly dirty: string[];
  readonly entries: number;
  readonly durMs: number;
  /**
   * With `opts.fresh`: the directories met that the journal has neither at their name nor by their inode (a first
   * start's tree, or what a killed one left), parents first. Not walked, not watched, not in `dirty`: bulk-journal.ts
   * journals them, and no path below them is held here.
   */
  readonly fresh: string[];
}

export interface ScanOptions {
  /** Leave the fresh directories to the bulk journaling (ScanResult#fresh) rather than walk them. */
  readonly fresh?: boolean;
  /** Counted as the walk goes (for the status while a big tree is scanned). */
  readonly progress?: { entries: number };
}

/** True when the table's row still describes what is on disk, judged by stat data alone. */
export function unchanged(row: StatRow, st: DiskStat): boolean {
  if (row.type !== st.type || row.ino !== st.ino) return false;
  if (row.type === 'dir') return row.mode === st.mode && row.uid === st.uid && row.gid === st.gid;
  // A symlink replaced by another (a new target) may get the freed inode back: its ctime tells.
  if (row.type === 'symlink') return !row.racy && row.uid === st.uid && row.gid === st.gid && (row.ctimeNs === null || row.ctimeNs === st.ctimeNs);
  return !row.racy && row.size === st.size && row.mtimeNs === st.mtimeNs && row.ctimeNs === st.ctimeNs &&
    row.mode === st.mode && row.uid === st.uid && row.gid === st.gid;
}

/**
 * From this many journaled objects the start-up scan is worth sharing with another thread: split, it
 * ran slower for a 20,000-file tree (215-330 ms against 145-220 ms, its code still cold), faster for
 * 100,000 files (about 1,000 ms against 1,100).
 */
export const SPLIT_SCAN_MIN = 50_000;

/** Names listed as files or symlinks, lstat'd in chunks (three quarters on the other thread) when split. */
const LATER_CHUNK = 4096;

/**
 * The start-up scan: walk the backing directory once, compare stat data with
 * the object table, and return what changed while the daemon was down. It
 * reads no file; the reconciler reads only what this returns. With a watcher,
 * each directory is watched before it is listed, so nothing changed during
 * the scan is missed.
 *
 * The table is read one directory at a time, as the walk lists it (its direct
 * entries: FilesetDb#childStatRows): memory stays bounded by the largest
 * directory, not the tree. A journaled name missing from its directory's
 * listing is dirty; what was journaled below a directory gone from disk is not
 * looked at one by one (the reconciler's removal, or move, of the directory
 * takes it all).
 *
 * With `statMany` (another thread's lstat) it is split: the walk lstats only
 * what its listing does not show to be a file or a symlink; those are lstat'd
 * in chunks, three quarters on the other thread while this one does the rest.
 * A name that became a directory between its listing and its lstat is dirty
 * (the reconciler looks inside).
 */
export async function startupScan(
  root: string, db: FilesetDb, watcher: WatchSink | null, statMany?: StatMany, ignore?: IgnoreRules, opts: ScanOptions = {},
): Promise<ScanResult> {
  const t0 = performance.now();
  const dirty: string[] = [];
  let entries = 0;
  const fresh: string[] = [];
  const check = (p: string, row: StatRow | undefined, st: DiskStat | null, walked: boolean): void => {
    if (st === null) {
      if (row !== undefined) dirty.push(p); // gone between the listing and the lstat
      return;
    }
    entries++;
    if (row === undefined || !unchanged(row, st) || (st.type === 'dir' && !walked)) dirty.push(p);
  };
  let later: Array<{ readonly p: string; readonly row: StatRow | undefined }> = []; // files and symlinks by their listing, split
  const lstatLater = async (): Promise<void> => {
    const batch = later;
    later = [];
    const cut = Math.floor(batch.length * 0.75);
    const theirs = statMany!(batch.slice(0, cut).map((x) => join(root, x.p)));
    try {
      for (let i = cut; i < batch.length; i++) check(batch[i]!.p, batch[i]!.row, lstatOrNull(join(root, batch[i]!.p)), false);
    } finally {
      await theirs.catch(() => undefined); // not left running on a failure here
    }
    (await theirs).forEach((st, i) => check(batch[i]!.p, batch[i]!.row, st, false));
  };
  const rootSt = lstatOrNull(root);
  if (rootSt !== null) watcher?.watch(rootSt.ino, root);
  const stack: string[] = [''];
  while (stack.length > 0) {
    const rel = stack.pop()!;
    let list: Dirent[];
    try {
      list = readdirSync(rel === '' ? root : join(root, rel), { withFileTypes: true });
    } catch {
      continue; // removed meanwhile: its parent's entry is dirty already
    }
    if (opts.progress !== undefined) opts.progress.entries += list.length;
    const rows = db.childStatRows(rel);
    for (const de of list) {
      if (rel === '' && de.name === META_DIR) continue;
      const p = joinRel(rel, de.name);
      const row = rows.get(p);
      rows.delete(p);
      if (ignore !== undefined && !ignore.empty && ignore.ignores(p, de.isDirectory())) {
        skipIgnored(root, db, watcher, ignore, p, de.isDirectory());
        continue;
      }
      if (statMany !== undefined && (de.isFile() || de.isSymbolicLink())) {
        later.push({ p, row });
        continue;
      }
      const abs = join(root, p);
      const st = lstatOrNull(abs);
      if (st?.type === 'dir' && opts.fresh === true && row === undefined && !db.objectsByIno(st.ino).some((r) => r.type === 'dir')) {
        fresh.push(p);
        entries++;
        continue;
      }
      if (st?.type === 'dir') {
        watcher?.watch(st.ino, abs);
        stack.push(p);
      }
      check(p, row, st, true);
    }
    // Journaled, no longer on disk (or moved); an ignored name stays as journaled (not walked, never dirty).
    for (const [p, row] of rows) if (ignore === undefined || !ignore.ignores(p, row.type === 'dir')) dirty.push(p);
    if (statMany !== undefined && later.length >= LATER_CHUNK) await lstatLater();
  }
  if (statMany !== undefined && later.length > 0) await lstatLater();
  return { dirty, entries, durMs: performance.now() - t0, fresh };
}

/**
 * An ignored name met by a scan: counted, not walked; an ignored directory keeps no watch (one it had before
 * a pattern change is dropped, with those of the journaled directories below it).
 */
function skipIgnored(root: string, db: FilesetDb, watcher: WatchSink | null, ignore: IgnoreRules, p: string, isDir: boolean): void {
  ignore.note(p, true);
  if (!isDir || watcher === null) return;
  const st = lstatOrNull(join(root, p));
  if (st?.type === 'dir' && watcher.isWatched(st.ino)) watcher.unwatch(st.ino);
  if (db.objectByPath(p)?.type !== 'dir') return;
  for (const r of db.objectsBelow(p)) if (r.type === 'dir' && r.ino !== null && watcher.isWatched(r.ino)) watcher.unwatch(r.ino);
}

export interface DiskDigest {
  readonly digest: bigint;
  readonly objects: number;
  readonly bytes: number;
}

/**
 * Recompute the state digest from the files on disk (reads every file), for `intersync digest --scan`; with
 * `ignore`, the names it matches are left out, as capture leaves them out of the journal.
 */
export async function digestOfDisk(root: string, ignore?: IgnoreRules): Promise<DiskDigest> {
  let digest = EMPTY_DIGEST;
  let objects = 0;
  let bytes = 0;
  const stack: string[] = [''];
  while (stack.length > 0) {
    const rel = stack.pop()!;
    const names = readdirSync(rel === '' ? root : join(root, rel)).sort();
    for (const name of names) {
      if (rel === '' && name === META_DIR) continue;
      const p = joinRel(rel, name);
      const abs = join(root, p);
      const st = lstatOrNull(abs);
      if (st === null || st.type === 'other' || ignore?.ignores(p, st.type === 'dir') === true) continue;
      if (st.type === 'dir') {
        digest = digestAdd(digest, { path: p, type: 'dir', mode: st.mode, hash: null, target: null });
        stack.push(p);
      } else if (st.type === 'symlink') {
        digest = digestAdd(digest, { path: p, type: 'symlink', mode: st.mode, hash: null, target: readTargetOrNull(abs) });
      } else {
        const hash = await hashFile(abs, st.size);
        if (hash === null) continue;
        bytes += st.size;
        digest = digestAdd(digest, { path: p, type: 'file', mode: st.mode, hash, target: null });
      }
      objects++;
    }
  }
  return { digest, objects, bytes };
}
