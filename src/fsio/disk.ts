import { createHash } from 'node:crypto';
import { closeSync, createReadStream, linkSync, lstatSync, openSync, readFileSync, readSync, readlinkSync, renameSync, unlinkSync, type BigIntStats } from 'node:fs';
import type { ObjectType } from '#core/record.js';
import { sha256Hex } from '#core/sha256.js';

/** The stat data the journal keeps of a file, to tell a change of it without reading it (FilesetDb). */
export interface StatIdentity {
  readonly ino: string;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
  /** The stat was taken so close to the change that a later write may not move it: re-read next time. */
  readonly racy: boolean;
}

/** lstat of many names (absolute), on another thread: each one's stat, or null where nothing is. */
export type StatMany = (abs: readonly string[]) => Promise<Array<DiskStat | null>>;
/** Reads and hashes many small files on another thread, each with its lstat after the read (FsThread#hash). */
export type HashMany = (abs: readonly string[]) => Promise<Array<{ hash: string | null; after: DiskStat | null }>>;

/** What capture needs of one lstat, with nanosecond times and the inode as text (it may not fit a double). */
export interface DiskStat {
  readonly type: ObjectType | 'other';
  readonly ino: string;
  readonly mode: number; // permission bits
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly nlink: number;
  readonly mtimeMs: number;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
}

/**
 * File timestamps tick coarsely (a jiffy), so a write that lands within this
 * window of our read may leave size and times unchanged: such a stat is
 * "racy" and the file is read again next time it is looked at (as git does).
 */
export const RACY_WINDOW_NS = 50_000_000n;

export function lstatOrNull(abs: string): DiskStat | null {
  let st: BigIntStats | undefined;
  try {
    st = lstatSync(abs, { bigint: true, throwIfNoEntry: false });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR' || code === 'ENOENT') return null;
    throw e;
  }
  return st === undefined ? null : fromStats(st);
}

export function fromStats(st: BigIntStats): DiskStat {
  const type: DiskStat['type'] = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other';
  return {
    type,
    ino: st.ino.toString(),
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: Number(st.size),
    nlink: Number(st.nlink),
    mtimeMs: Number(st.mtimeNs / 1000n) / 1000,
    mtimeNs: clampNs(st.mtimeNs),
    ctimeNs: clampNs(st.ctimeNs),
  };
}

const INT64_MAX = (1n << 63n) - 1n;

/** Times past 2262 (or before 1677) do not fit the journal's 64-bit nanoseconds: they are stored clamped. */
function clampNs(ns: bigint): bigint {
  return ns > INT64_MAX ? INT64_MAX : ns < -INT64_MAX ? -INT64_MAX : ns;
}

export function identityOf(st: DiskStat, nowNs: bigint): StatIdentity {
  const newest = st.mtimeNs > st.ctimeNs ? st.mtimeNs : st.ctimeNs;
  return { ino: st.ino, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, racy: nowNs - newest < RACY_WINDOW_NS };
}

export function nowNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}

/** Same stat data as recorded: the object has not changed since (unless the record was racy). */
export function sameStat(a: DiskStat, b: DiskStat): boolean {
  return a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.type === b.type;
}

/** Files up to this size are hashed in one synchronous read (hashFile awaits no I/O for them). */
export const SMALL_FILE = 1 << 20;

/** SHA-256 of a file's content, or null when it vanished meanwhile. Large files are streamed, never read whole. */
export async function hashFile(abs: string, size: number): Promise<string | null> {
  try {
    if (size <= SMALL_FILE) return sha256Hex(readFileSync(abs));
    const h = createHash('sha256');
    for await (const chunk of createReadStream(abs, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
    return h.digest('hex');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EISDIR' || code === 'ENOTDIR') return null;
    throw e;
  }
}

/**
 * The same, blocking: for the first copy's rare check of a file found at a
 * snapshot name (inside one of its transactions, which cannot await).
 */
export function hashFileSync(abs: string): string | null {
  let fd: number;
  try {
    fd = openSync(abs, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EISDIR' || code === 'ENOTDIR') return null;
    throw e;
  }
  try {
    const h = createHash('sha256');
    const buf = Buffer.allocUnsafe(SMALL_FILE);
    for (let n = readSync(fd, buf); n > 0; n = readSync(fd, buf)) h.update(buf.subarray(0, n));
    return h.digest('hex');
  } finally {
    closeSync(fd);
  }
}

export function readTargetOrNull(abs: string): string | null {
  try {
    return readlinkSync(abs);
  } catch {
    return null;
  }
}

export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/**
 * Move `from` to `to` without ever replacing what is at `to`: returns false, and changes nothing, when `to`
 * exists. A file or symlink moves by link(2), which fails when the name exists, then unlink(2) of the old name:
 * atomic against a program that makes `to` at any moment (a check then rename(2) is not: a file made between
 * the two was replaced, and gone). A directory moves by rename(2) after a check (Linux has no other way from
 * Node): at worst it replaces an empty directory made in between. Where hard links are not supported (EPERM,
 * EOPNOTSUPP, EMLINK), so does a file. Cut between the link and the unlink, both names are the one inode:
 * see finishMove. `between` runs after the link, before the unlink (a test's program acting in that moment).
 */
export function moveNoReplace(from: string, to: string, between?: () => void): boolean {
  const st = lstatOrNull(from);
  if (st !== null && st.type !== 'dir') {
    try {
      linkSync(from, to);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return false;
      if (code !== 'EPERM' && code !== 'EOPNOTSUPP' && code !== 'ENOTSUP' && code !== 'EMLINK') throw e;
      if (lstatOrNull(to) !== null) return false;
      renameSync(from, to);
      return true;
    }
    between?.();
    try {
      unlinkSync(from);
    } catch (e) {
      // The old name went in between (a program moved or removed it): the new name is this move's own link, and
      // goes too; else the object had two names, one the journal knows nothing of (chaos s86 seed 9327: a
      // server's move of a symlink applied as a program moved it elsewhere; capture journaled the link made
      // here as a new symlink, which brought back what another node removed: the likely path of that run).
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        try {
          unlinkSync(to);
        } catch {
          // gone already
        }
      }
      throw e;
    }
    return true;
  }
  if (lstatOrNull(to) !== null) return false;
  renameSync(from, to);
  return true;
}

/**
 * A moveNoReplace cut between its link and its unlink (the process died): both names are one inode, and the
 * old one goes now. True when that was so (the move is done), false when the two names are not one inode.
 */
export function finishMove(from: string, to: string): boolean {
  const a = lstatOrNull(from);
  const b = lstatOrNull(to);
  if (a === null || b === null || a.type === 'dir' || a.ino !== b.ino) return false;
  unlinkSync(from);
  return true;
}
