/**
 * The look at a fileset database before it is opened, and the reading of what SQLite says when it opens
 * one. A store is refused only when it is damaged, never for a state SQLite reads whole: the main file
 * may be shorter than its header's page count while a checkpoint runs (page 1 is copied from the WAL
 * first), or after a kill or a full disk stopped one half-way; the WAL then still holds the pages.
 */
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import Database from 'better-sqlite3';
import { IntersyncError } from '#core/errors.js';

const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1');
/** A WAL file starts with a 32-byte header whose magic is one of these two (big- or little-endian checksums). */
const WAL_MAGIC = [0x377f0682, 0x377f0683];
const WAL_HEADER_BYTES = 32;

/** What the look at the header found: nothing wrong, or a short main file that only SQLite can judge (its WAL may hold the pages). */
export type Precheck = 'ok' | 'ask-sqlite';

/**
 * Refuse what is not an SQLite database at all, and a main file shorter than its header's page count
 * with no WAL to hold the missing pages (truncated): both before SQLite opens it, so a refused store is
 * not touched. A short main file beside a WAL is left to `judgeStore`.
 */
export function precheckStore(file: string): Precheck {
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const head = Buffer.alloc(100);
    const n = readSync(fd, head, 0, 100, 0);
    if (n < 16 || !head.subarray(0, 16).equals(SQLITE_HEADER)) {
      throw IntersyncError.DB_CORRUPT(file, new Error(n < 16 ? 'file too short' : 'not an SQLite database'));
    }
    if (n < 100) throw IntersyncError.DB_CORRUPT(file, new Error('header truncated'));
    const raw = head.readUInt16BE(16);
    const pageSize = raw === 1 ? 65536 : raw;
    const pages = head.readUInt32BE(28);
    // The header's page count is meant only when its two change counters agree.
    const valid = head.readUInt32BE(24) === head.readUInt32BE(92);
    const size = fstatSync(fd).size;
    if (!valid || pageSize < 512 || size >= pages * pageSize) return 'ok';
    if (walHoldsFrames(`${file}-wal`)) return 'ask-sqlite';
    throw IntersyncError.DB_CORRUPT(file, new Error(`file holds ${size} bytes, its header says ${pages * pageSize}, and there is no WAL`));
  } catch (e) {
    if (e instanceof IntersyncError) throw e;
    throw IntersyncError.IO('read', file, e);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function walHoldsFrames(wal: string): boolean {
  let fd: number | undefined;
  try {
    if (statSync(wal).size <= WAL_HEADER_BYTES) return false;
    fd = openSync(wal, 'r');
    const head = Buffer.alloc(4);
    return readSync(fd, head, 0, 4, 0) === 4 && WAL_MAGIC.includes(head.readUInt32BE(0));
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Let SQLite judge a store the header check could not: open it read-only (a read-only connection never
 * checkpoints, so a refused store keeps its WAL as it was) and run `PRAGMA quick_check`.
 */
export function judgeStore(file: string): void {
  let db: Database.Database | undefined;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
    db.pragma('busy_timeout = 5000');
    const rows = db.pragma('quick_check') as Array<{ quick_check: string }>;
    const bad = rows.map((r) => r.quick_check).filter((r) => r !== 'ok');
    if (bad.length > 0) throw IntersyncError.DB_CORRUPT(file, new Error(bad.slice(0, 3).join('; ')));
  } catch (e) {
    throw storeError(file, e);
  } finally {
    db?.close();
  }
}

/**
 * What an error of SQLite while opening or checking a store means for the user: damage is DB_CORRUPT;
 * a busy store, a full disk or an I/O failure are not (the data may be fine), and say so.
 */
export function storeError(file: string, e: unknown): IntersyncError {
  if (e instanceof IntersyncError) return e;
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    if (code === 'SQLITE_FULL' || code === 'ENOSPC') return IntersyncError.DISK_FULL(`open ${file}`, e);
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return IntersyncError.IO('open (busy: another process holds it)', file, e);
    if (code.startsWith('SQLITE_IOERR') || code.startsWith('SQLITE_CANTOPEN') || code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_PERM')) {
      return IntersyncError.IO('open', file, e);
    }
  }
  return IntersyncError.DB_CORRUPT(file, e);
}
