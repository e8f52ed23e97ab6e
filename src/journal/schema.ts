import type { Database } from 'better-sqlite3';
import { STORE_FORMAT } from '#core/format.js';

/**
 * The fileset database schema and its migrations. `migrations[i]` takes a
 * store from format i to format i + 1; a store newer than STORE_FORMAT is
 * refused, an older one is migrated in one transaction when opened for writing.
 */
const migrations: ReadonlyArray<(db: Database) => void> = [
  // 0 -> 1: the first format.
  (db) => {
    db.exec(`
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;

      -- One row per name: hard links are rows sharing an inode.
      CREATE TABLE objects (
        fid      TEXT PRIMARY KEY,
        path     TEXT NOT NULL UNIQUE,
        type     TEXT NOT NULL CHECK (type IN ('file', 'dir', 'symlink')),
        version  INTEGER NOT NULL,
        mode     INTEGER NOT NULL,
        uid      INTEGER NOT NULL,
        gid      INTEGER NOT NULL,
        mtime_ms REAL NOT NULL,
        size     INTEGER,
        hash     TEXT,
        target   TEXT,
        -- stat identity used to notice changes without reading files
        ino      TEXT,
        mtime_ns INTEGER,
        ctime_ns INTEGER,
        racy     INTEGER NOT NULL DEFAULT 0
      ) STRICT;
      CREATE INDEX objects_ino ON objects (ino);

      CREATE TABLE kml (
        tid          INTEGER PRIMARY KEY,
        kind         TEXT NOT NULL,
        fid          TEXT NOT NULL,
        path         TEXT NOT NULL,
        new_path     TEXT,
        target       TEXT,
        pre_version  INTEGER NOT NULL,
        post_version INTEGER NOT NULL,
        mode         INTEGER NOT NULL,
        uid          INTEGER NOT NULL,
        gid          INTEGER NOT NULL,
        mtime_ms     REAL NOT NULL,
        size         INTEGER,
        hash         TEXT,
        origin       TEXT NOT NULL,
        time         INTEGER NOT NULL,
        digest       TEXT NOT NULL
      ) STRICT;

      CREATE TABLE last_rcvd (
        peer    TEXT PRIMARY KEY,
        tid     INTEGER NOT NULL,
        updated INTEGER NOT NULL
      ) STRICT;
    `);
  },
  // 1 -> 2: replication.
  (db) => {
    db.exec(`
      ALTER TABLE kml ADD COLUMN origin_seq INTEGER;
      CREATE UNIQUE INDEX kml_origin_seq ON kml (origin, origin_seq) WHERE origin_seq IS NOT NULL;

      -- A client's local records that the server has not accepted yet.
      CREATE TABLE lml (
        seq         INTEGER PRIMARY KEY,
        kind        TEXT NOT NULL,
        fid         TEXT NOT NULL,
        path        TEXT NOT NULL,
        new_path    TEXT,
        target      TEXT,
        pre_version INTEGER NOT NULL,
        mode        INTEGER NOT NULL,
        uid         INTEGER NOT NULL,
        gid         INTEGER NOT NULL,
        mtime_ms    REAL NOT NULL,
        size        INTEGER,
        hash        TEXT,
        origin      TEXT NOT NULL,
        time        INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX lml_fid ON lml (fid);
      CREATE INDEX lml_renames ON lml (seq) WHERE kind = 'rename';
      CREATE INDEX objects_hash ON objects (hash);

      -- Nodes that registered with this server.
      CREATE TABLE peers (
        node       TEXT PRIMARY KEY,
        replicate  INTEGER NOT NULL DEFAULT 0,
        first_seen INTEGER NOT NULL,
        last_seen  INTEGER NOT NULL,
        address    TEXT
      ) STRICT;
    `);
  },
  // 2 -> 3: conflicts.
  (db) => {
    db.exec(`
      CREATE TABLE conflicts (
        id          INTEGER PRIMARY KEY,
        time        INTEGER NOT NULL,
        path        TEXT NOT NULL,
        kind        TEXT NOT NULL,
        policy      TEXT NOT NULL,
        decision    TEXT NOT NULL,
        remote_tid  INTEGER,
        remote_node TEXT,
        kept        TEXT,   -- where the losing version is: a path in the tree, or a file in the conflicts folder
        status      TEXT NOT NULL CHECK (status IN ('open', 'resolved')),
        resolution  TEXT,
        resolved_at INTEGER
      ) STRICT;

      -- A peer's change the apply path is writing to the disk: present from just before the disk change
      -- until the commit that journals it, so a start after a crash finds what was in flight.
      CREATE TABLE inflight (
        id     INTEGER PRIMARY KEY,
        intent TEXT NOT NULL
      ) STRICT;
    `);
  },
  // 3 -> 4: the names of a hard-linked inode a change gave its version.
  (db) => {
    db.exec('ALTER TABLE kml ADD COLUMN links TEXT');
  },
  // 4 -> 5: the directory a record's new name is in, and a link's existing name, by fid.
  (db) => {
    db.exec(`
      ALTER TABLE kml ADD COLUMN parent TEXT; ALTER TABLE lml ADD COLUMN parent TEXT;
      ALTER TABLE kml ADD COLUMN target_fid TEXT; ALTER TABLE lml ADD COLUMN target_fid TEXT;
    `);
  },
];

if (migrations.length !== STORE_FORMAT) throw new Error('schema: one migration per store format');

/** Bring `db` from format `from` to STORE_FORMAT (caller holds a transaction). */
export function migrate(db: Database, from: number): void {
  for (let v = from; v < STORE_FORMAT; v++) {
    const step = migrations[v];
    if (step === undefined) throw new Error(`schema: no migration from format ${v}`);
    step(db);
  }
  db.pragma(`user_version = ${STORE_FORMAT}`);
}

/**
 * The pending renames of the LML (FilesetTables#pendingRenames: read for every own record back on the stream), in
 * order without a scan of the whole LML; made at open in a store made before it (a partial index: older releases
 * read and write the store as before).
 */
export const LML_RENAMES_INDEX = "CREATE INDEX IF NOT EXISTS lml_renames ON lml (seq) WHERE kind = 'rename'";

/** The content-hash index of the object table (a fresh first copy drops it while it fills the table). */
export const HASH_INDEX = 'CREATE INDEX IF NOT EXISTS objects_hash ON objects (hash)';
