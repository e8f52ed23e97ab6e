import Database from 'better-sqlite3';
import type { Database as Db, Statement } from 'better-sqlite3';
import { EMPTY_DIGEST, formatDigest, parseDigest } from '#core/digest.js';
import { asTid, type Tid } from '#core/ids.js';
import type { SnapshotRow } from './rows.js';

/** See FilesetDb.snapshotReader(). */
export class SnapshotReader {
  readonly tid: Tid;
  readonly digest: bigint;
  /** Objects in the table, and bytes in its files. */
  readonly entries: number;
  readonly bytes: number;
  readonly #db: Db;
  readonly #page: Statement;
  #after = '';
  #done = false;

  constructor(file: string) {
    const db = new Database(file, { fileMustExist: true, readonly: true });
    try {
      db.pragma('busy_timeout = 5000');
      db.exec('BEGIN');
      const meta = db.prepare("SELECT key, value FROM meta WHERE key IN ('last_tid', 'digest')").all() as Array<{ key: string; value: string }>;
      const m = new Map(meta.map((r) => [r.key, r.value]));
      this.tid = asTid(BigInt(m.get('last_tid') ?? '0'));
      this.digest = parseDigest(m.get('digest') ?? formatDigest(EMPTY_DIGEST));
      const n = db.prepare("SELECT count(*) AS entries, total(CASE WHEN type = 'file' THEN size END) AS bytes FROM objects").get() as { entries: number; bytes: number };
      this.entries = n.entries;
      this.bytes = n.bytes;
      this.#page = db.prepare(`SELECT fid, path, type, printf('0x%016x', version) AS version, mode, uid, gid, mtime_ms AS mtimeMs, size, hash, target, ino
                               FROM objects WHERE path > ? ORDER BY path LIMIT ?`);
    } catch (e) {
      db.close();
      throw e;
    }
    this.#db = db;
  }

  /**
   * The next `limit` rows in path order (a directory before what is in it), as
   * plain values: the version printed as a TID, numbers as numbers; empty at the end.
   */
  next(limit: number): SnapshotRow[] {
    if (this.#done) return [];
    const rows = this.#page.all(this.#after, limit) as SnapshotRow[];
    if (rows.length < limit) this.#done = true;
    if (rows.length > 0) this.#after = rows[rows.length - 1]!.path;
    return rows;
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }
}
