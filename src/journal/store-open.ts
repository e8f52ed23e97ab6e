/**
 * Making and opening a fileset database's SQLite file: the checks and pragmas before FilesetDb takes the
 * connection, and the state FilesetDb keeps in meta, read back when it does.
 */
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { Database as Db } from 'better-sqlite3';
import { EMPTY_DIGEST, formatDigest, parseDigest } from '#core/digest.js';
import { IntersyncError } from '#core/errors.js';
import { RECORD_FORMAT, STORE_FORMAT } from '#core/format.js';
import { asTid, type NodeId, type Tid } from '#core/ids.js';
import { HASH_INDEX, LML_RENAMES_INDEX, migrate } from './schema.js';
import { judgeStore, precheckStore, storeError } from './store-check.js';

export interface FilesetMeta {
  readonly fileset: string;
  readonly uuid: string;
  readonly nodeId: NodeId;
  readonly created: number;
}

export interface OpenOptions {
  readonly readonly?: boolean;
  /** Run PRAGMA quick_check and refuse a damaged store (default true). */
  readonly check?: boolean;
}

/** What a store's meta says when FilesetDb takes it: who it is, and the counters its commits move. */
export interface StoredState {
  readonly meta: FilesetMeta;
  readonly lastTid: Tid;
  readonly digest: bigint;
  readonly fidSeq: bigint;
  readonly lmlSeq: bigint;
}

/** Create a new store at `file` (which must not exist), returning its connection. */
export function createStore(file: string, meta: FilesetMeta): Db {
  const db = new Database(file);
  db.defaultSafeIntegers(true);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.transaction(() => {
    migrate(db, 0);
    const put = db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)');
    put.run('fileset', meta.fileset);
    put.run('uuid', meta.uuid);
    put.run('node_id', meta.nodeId);
    put.run('created', String(meta.created));
    put.run('record_format', String(RECORD_FORMAT));
    put.run('last_tid', '0');
    put.run('digest', formatDigest(EMPTY_DIGEST));
    put.run('fid_seq', '0');
    put.run('lml_seq', '0');
  })();
  return db;
}

/**
 * Open an existing store, refusing a damaged one or one of a format this release does not read, and hand
 * the connection to `take`; a failure there closes it too, and is reported as the store's (storeError).
 */
export function openStore<T>(file: string, opts: OpenOptions, take: (db: Db) => T): T {
  if (!existsSync(file)) throw IntersyncError.NO_FILESET(file);
  // A short main file beside a WAL is judged by SQLite (read-only, so a refused store keeps its WAL).
  const judged = precheckStore(file) === 'ask-sqlite';
  if (judged) judgeStore(file);
  let db: Db | undefined;
  try {
    db = new Database(file, { fileMustExist: true, readonly: opts.readonly === true });
    db.defaultSafeIntegers(true);
    // Before the check: a store a running daemon is checkpointing answers BUSY for a moment, which is no damage.
    db.pragma('busy_timeout = 5000');
    if (opts.check !== false && !judged) {
      const rows = db.pragma('quick_check') as Array<{ quick_check: string }>;
      const bad = rows.map((r) => r.quick_check).filter((r) => r !== 'ok');
      if (bad.length > 0) throw IntersyncError.DB_CORRUPT(file, new Error(bad.slice(0, 3).join('; ')));
    }
    const version = Number(db.pragma('user_version', { simple: true }));
    if (version > STORE_FORMAT || version < 1) {
      if (version === 0) throw IntersyncError.DB_CORRUPT(file, new Error('no intersync schema'));
      throw IntersyncError.DB_FORMAT(file, version, STORE_FORMAT);
    }
    if (version < STORE_FORMAT) {
      if (opts.readonly === true) throw IntersyncError.DB_FORMAT(file, version, STORE_FORMAT);
      const from = version;
      const d = db;
      d.transaction(() => migrate(d, from))();
    }
    if (opts.readonly !== true) {
      db.pragma('journal_mode = WAL');
      // Commits survive a killed process as they are; sync() makes them survive power loss too, and
      // is called before anything is acknowledged to a peer.
      db.pragma('synchronous = NORMAL');
    }
    if (opts.readonly !== true) db.exec(HASH_INDEX); // dropped by a fresh first copy that did not finish
    if (opts.readonly !== true) db.exec(LML_RENAMES_INDEX);
    const rf = db.prepare("SELECT value FROM meta WHERE key = 'record_format'").pluck().get() as string | undefined;
    if (rf !== undefined && Number(rf) > RECORD_FORMAT) throw IntersyncError.DB_FORMAT(file, Number(rf), RECORD_FORMAT);
    return take(db);
  } catch (e) {
    db?.close();
    throw storeError(file, e);
  }
}

/** Set the connection's pragmas for commits and read the state kept in meta (a missing key: DB_CORRUPT). */
export function loadStore(file: string, db: Db): StoredState {
  // Nested commits (a batch of them) are savepoints: their undo journal stays in memory, not in /var/tmp files.
  db.pragma('temp_store = MEMORY');
  // The object table and its indexes stay in memory (up to 64 MiB, taken as needed): SQLite's 2 MiB default
  // makes every insert into a large fileset's indexes read pages back.
  db.pragma('cache_size = -65536');
  // A WAL that grew (a long read held checkpoints back) is cut back to 64 MiB once a checkpoint has emptied it.
  db.pragma('journal_size_limit = 67108864');
  const m = (k: string): string => {
    const row = db.prepare('SELECT value FROM meta WHERE key = ?').get(k) as { value: string } | undefined;
    if (row === undefined) throw IntersyncError.DB_CORRUPT(file, new Error(`meta key '${k}' missing`));
    return row.value;
  };
  const meta: FilesetMeta = { fileset: m('fileset'), uuid: m('uuid'), nodeId: m('node_id') as NodeId, created: Number(m('created')) };
  const lastTid = asTid(BigInt(m('last_tid')));
  const digest = parseDigest(m('digest'));
  const fidSeq = BigInt(m('fid_seq'));
  const lmlSeq = db.prepare("SELECT value FROM meta WHERE key = 'lml_seq'").pluck().get() as string | undefined;
  return { meta, lastTid, digest, fidSeq, lmlSeq: BigInt(lmlSeq ?? '0') };
}
