import { closeSync, fchmodSync, fchownSync, fstatSync, futimesSync, lchownSync, linkSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { IntersyncError } from '#core/errors.js';
import type { RecordDraft } from '#core/record.js';
import { fromStats, lstatOrNull, type DiskStat } from '#fsio/disk.js';
import { sha256Hex } from '#core/sha256.js';

/** What a new file is made from: its record's name, attributes and content hash. */
export type NewFile = Pick<RecordDraft, 'path' | 'mode' | 'uid' | 'gid' | 'mtimeMs' | 'hash' | 'size'>;

/** A peer's bytes for record `d`: they must be what the record says (hash and size). Returns the hash. */
export function checkBytes(d: Pick<NewFile, 'path' | 'hash' | 'size'>, buf: Uint8Array): string {
  const got = sha256Hex(buf);
  if (got !== d.hash) throw IntersyncError.BAD_REQUEST(`content of ${d.path} does not match its hash`);
  if (buf.length !== d.size) throw IntersyncError.BAD_REQUEST(`content of ${d.path} has ${buf.length} bytes, the record says ${d.size ?? 'none'}`);
  return got;
}

export const isRoot = process.getuid?.() === 0; // only root can give files away; others keep their own

/** The mode a file written straight at its name has until it is whole (writeNewFile's `marked`): no permission at all. */
export const UNFINISHED_MODE = 0o000;

/**
 * Create `abs` (nothing may be there) with the checked content `buf` and the
 * record's mtime, owner and mode; return its stat. Nothing is left at the
 * name when it fails. The one way a new file is written straight into place:
 * by the apply path, on this thread or on its file-system thread.
 * `marked`: the file has UNFINISHED_MODE until its content and mtime are in, so that a start after a crash
 * tells a file this process left half-written at its name (in a run of a peer's records: recovery.ts) from one
 * a program wrote; its mode is then set in any case (one fchmod more).
 */
export function writeNewFile(abs: string, d: NewFile, buf: Uint8Array, marked = false): DiskStat {
  checkBytes(d, buf);
  // Created with its mode (no set-id bits before the owner is right): usually the umask keeps it, and the
  // owner is this process's, so the fstat the identity needs anyway shows that no chown or chmod is due.
  const plain = (d.mode & 0o7000) === 0 && !marked;
  let fd: number;
  try {
    fd = openSync(abs, 'wx', marked ? UNFINISHED_MODE : plain ? d.mode : 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw IntersyncError.CONFLICT(d.path, 'an unjournaled file has this name here');
    throw e;
  }
  let st: DiskStat | null = null;
  try {
    writeSync(fd, buf);
    futimesSync(fd, d.mtimeMs / 1000, d.mtimeMs / 1000);
    if (plain) st = fromStats(fstatSync(fd, { bigint: true }));
    if (st === null || st.mode !== d.mode || ((st.uid !== d.uid || st.gid !== d.gid) && isRoot)) {
      tryChown(fd, d.uid, d.gid); // before the mode: a change of owner clears set-id bits
      fchmodSync(fd, d.mode);
      st = fromStats(fstatSync(fd, { bigint: true }));
    }
  } catch (e) {
    closeSync(fd);
    try {
      unlinkSync(abs);
    } catch {
      // gone already
    }
    throw e;
  }
  closeSync(fd);
  return st;
}

export function tryChown(fd: number, uid: number, gid: number): void {
  if (!isRoot) return;
  try {
    fchownSync(fd, uid, gid);
  } catch {
    // a uid this system lacks: keep the file with its current owner
  }
}

/** tryChown of the name `abs` itself (a symlink's own owner). */
export function tryLchown(abs: string, uid: number, gid: number): void {
  if (!isRoot) return;
  try {
    lchownSync(abs, uid, gid);
  } catch {
    // a uid this system lacks: keep the file with its current owner
  }
}

/**
 * A new file at `abs`: linked there (a link never replaces a name), then its staging name removed. A local file
 * made at the name after the check (a program's create or rename-over a moment ago, not journaled yet) stays,
 * and the record is refused as it is at the check. Before, the staged file was renamed over it: the local file
 * was on no node (chaos s70 seed 9245: c2's `replace delta/deep/f.json`, within milliseconds of the server's
 * create of the same name).
 */
export function placeNew(staged: string, abs: string, path: string): void {
  try {
    linkSync(staged, abs);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw IntersyncError.CONFLICT(path, 'an unjournaled file has this name here');
    // A file system without hard links: the rename, after a last look at the name.
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw e;
    if (lstatOrNull(abs) !== null) throw IntersyncError.CONFLICT(path, 'an unjournaled file has this name here');
    renameSync(staged, abs);
    return;
  }
  unlinkSync(staged);
}
