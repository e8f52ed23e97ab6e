import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { Database as Db, Statement } from 'better-sqlite3';
import { EMPTY_DIGEST, digestAdd, digestSub, formatDigest, parseDigest, type DigestEntry } from '#core/digest.js';
import { IntersyncError } from '#core/errors.js';
import { RECORD_FORMAT, STORE_FORMAT } from '#core/format.js';
import { NO_VERSION, ROOT_FID, asTid, formatTid, type Fid, type NodeId, type Tid, makeFid } from '#core/ids.js';
import type { KmlRecord, LmlRecord, ObjectState, ObjectType, RecordDraft, RecordKind } from '#core/record.js';
import { parentOf } from '#core/paths.js';
import type { StatIdentity } from '#fsio/disk.js';
import { HASH_INDEX, migrate } from './schema.js';
import { judgeStore, precheckStore, storeError } from './store-check.js';

/** Record kinds that make an object at their path. */
const CREATE_KINDS: ReadonlySet<string> = new Set(['create', 'mkdir', 'symlink', 'link']);
/** How a node last saw an object on its disk: enough to notice a change without reading the file. */
export type { StatIdentity };

/** A conflict met on reconnection: what happened, what was decided, where the losing version is. */
export interface ConflictRow {
  readonly id: number;
  readonly time: number;
  readonly path: string;
  readonly kind: string;
  readonly policy: string;
  readonly decision: string;
  readonly remoteTid: Tid | null;
  readonly remoteNode: string | null;
  readonly kept: string | null;
  readonly status: 'open' | 'resolved';
  readonly resolution: string | null;
  readonly resolvedAt: number | null;
}

/** What the start-up scan compares with the disk. */
/** A row of a SnapshotReader: an object's state with its version printed as a TID, and its inode. */
export type SnapshotRow = Omit<ObjectState, 'version'> & { readonly version: string; readonly ino: string | null };

/** A row of contentRows(). */
export type ContentRow = Pick<SnapshotRow, 'fid' | 'path' | 'type' | 'version' | 'size' | 'hash'>;

export type StatRow = Pick<ObjectRow, 'type' | 'ino' | 'mode' | 'uid' | 'gid' | 'size' | 'mtimeNs' | 'ctimeNs' | 'racy'>;

export interface ObjectRow extends ObjectState {
  readonly ino: string | null;
  readonly mtimeNs: bigint | null;
  readonly ctimeNs: bigint | null;
  readonly racy: boolean;
}

/** One change to commit: the record and the object's stat identity on this node after it. */
export interface Change {
  readonly draft: RecordDraft;
  readonly identity: StatIdentity | null;
  /** For a reintegrated record: its LML sequence number at its origin. */
  readonly originSeq?: bigint;
}

/** A record from the fileset's server, applied here with the server's TID. */
export interface RemoteChange {
  readonly record: KmlRecord;
  readonly identity: StatIdentity | null;
  /**
   * The content placed on disk when it is not the record's (the peer no longer held that content, or held
   * newer content): the object row says what the disk holds, so capture never takes the difference for a
   * local change. The KML keeps the record as the peer sent it.
   */
  readonly content?: { readonly hash: string; readonly size: number };
}

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

type Row = Record<string, unknown>;

/** Meta key of the names of hard-linked files removed here, their removal not back from the stream yet (see removedLinksOf). */
const REMOVED_LINKS = 'removed_links';

/**
 * The fileset database: KML, object table and last_rcvd in one SQLite file
 * (WAL). Invariant: a record, the object's new state, the state digest and the
 * last TID change in one transaction, so they never disagree after a crash.
 */
export class FilesetDb {
  readonly file: string;
  readonly meta: FilesetMeta;
  readonly #db: Db;
  readonly #st: Statements;
  #lastTid: Tid;
  #digest: bigint;
  #relocations = 0;
  #fidSeq: bigint;
  #lmlSeq: bigint;
  #batching = false;
  #batchFailed = false;
  #savedFidSeq = -1n;
  readonly #listeners: Array<() => void> = [];

  private constructor(file: string, db: Db) {
    this.file = file;
    this.#db = db;
    // Nested commits (a batch of them) are savepoints: their undo journal stays in memory, not in /var/tmp files.
    db.pragma('temp_store = MEMORY');
    // The object table and its indexes stay in memory (up to 64 MiB, taken as needed): SQLite's 2 MiB default
    // makes every insert into a large fileset's indexes read pages back.
    db.pragma('cache_size = -65536');
    const m = (k: string): string => {
      const row = db.prepare('SELECT value FROM meta WHERE key = ?').get(k) as { value: string } | undefined;
      if (row === undefined) throw IntersyncError.DB_CORRUPT(file, new Error(`meta key '${k}' missing`));
      return row.value;
    };
    this.meta = { fileset: m('fileset'), uuid: m('uuid'), nodeId: m('node_id') as NodeId, created: Number(m('created')) };
    this.#lastTid = asTid(BigInt(m('last_tid')));
    this.#digest = parseDigest(m('digest'));
    this.#fidSeq = BigInt(m('fid_seq'));
    const lmlSeq = db.prepare("SELECT value FROM meta WHERE key = 'lml_seq'").pluck().get() as string | undefined;
    this.#lmlSeq = BigInt(lmlSeq ?? '0');
    this.#st = prepareStatements(db);
  }

  /** Create a new store at `file` (which must not exist). */
  static create(file: string, meta: FilesetMeta): FilesetDb {
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
    return new FilesetDb(file, db);
  }

  /** Open an existing store, refusing a damaged one or one of a format this release does not read. */
  static open(file: string, opts: OpenOptions = {}): FilesetDb {
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
      const rf = db.prepare("SELECT value FROM meta WHERE key = 'record_format'").pluck().get() as string | undefined;
      if (rf !== undefined && Number(rf) > RECORD_FORMAT) throw IntersyncError.DB_FORMAT(file, Number(rf), RECORD_FORMAT);
      return new FilesetDb(file, db);
    } catch (e) {
      db?.close();
      throw storeError(file, e);
    }
  }

  close(): void {
    this.#db.close();
  }

  get lastTid(): Tid {
    return this.#lastTid;
  }

  /** The sequence number of the last local record journaled (0: none yet); a later one has a greater number. */
  get lmlSeq(): bigint {
    return this.#lmlSeq;
  }

  get digest(): bigint {
    return this.#digest;
  }

  /**
   * Counts the objects moved or forgotten by another hand than a record (relocateLocal, forget): a resync
   * that maps names through directories it moves as it goes knows when to look at them again.
   */
  get relocations(): number {
    return this.#relocations;
  }

  /** A new fid, unique across nodes; persisted with the next commit (an unused fid is harmless). */
  newFid(): Fid {
    this.#fidSeq += 1n;
    return makeFid(this.meta.nodeId, this.#fidSeq);
  }

  objectByPath(path: string): ObjectRow | undefined {
    const r = this.#st.byPath.get(path) as Row | undefined;
    return r === undefined ? undefined : toObject(r);
  }

  objectByFid(fid: Fid): ObjectRow | undefined {
    const r = this.#st.byFid.get(fid) as Row | undefined;
    return r === undefined ? undefined : toObject(r);
  }

  objectsByIno(ino: string): ObjectRow[] {
    return (this.#st.byIno.all(ino) as Row[]).map(toObject);
  }

  objectsByHash(hash: string): ObjectRow[] {
    return (this.#st.byHash.all(hash) as Row[]).map(toObject);
  }

  /** Make every commit so far durable (fsync of the WAL): call before acknowledging to a peer. */
  sync(): void {
    this.#db.pragma('wal_checkpoint(PASSIVE)');
  }

  /** Every object strictly below directory `dir`, in path order. */
  objectsBelow(dir: string): ObjectRow[] {
    return (this.#st.below.all(dir, dir) as Row[]).map(toObject);
  }

  /** The paths of the objects directly in directory `dir` ('' for the root), without building rows for what is deeper. */
  childPaths(dir: string): string[] {
    return (dir === '' ? this.#st.rootPaths.all() : this.#st.childPaths.all(dir, dir, dir.length + 2)) as string[];
  }

  /** Path and stat data of every object, as cheaply as SQLite gives them (the start-up scan reads 100,000s). */
  statRows(): Map<string, StatRow> {
    const out = new Map<string, StatRow>();
    for (const r of this.#st.statRows.iterate() as IterableIterator<unknown[]>) {
      out.set(r[0] as string, {
        type: r[1] as ObjectType, ino: r[2] as string | null, mode: Number(r[3]), uid: Number(r[4]), gid: Number(r[5]),
        size: r[6] === null ? null : Number(r[6]), mtimeNs: r[7] as bigint | null, ctimeNs: r[8] as bigint | null, racy: Number(r[9]) !== 0,
      });
    }
    return out;
  }

  *allObjects(): IterableIterator<ObjectRow> {
    for (const r of this.#st.all.iterate() as IterableIterator<Row>) yield toObject(r);
  }

  /**
   * The object table at this moment's TID, to read in pages while this
   * connection goes on committing: a second, read-only connection in a read
   * transaction (WAL keeps its view). A copy stream of a large table so never
   * stops the server. Close it when done (it holds back checkpoints).
   */
  snapshotReader(): SnapshotReader {
    return new SnapshotReader(this.file);
  }

  /** The rows of objects `fids` that a content request needs (one query for a whole batch), by fid; unknown fids are left out. */
  contentRows(fids: readonly string[]): Map<string, ContentRow> {
    const out = new Map<string, ContentRow>();
    for (const r of this.#st.contentRows.all(JSON.stringify(fids)) as ContentRow[]) out.set(r.fid, r);
    return out;
  }

  objectCount(): number {
    return Number((this.#st.count.get() as { n: bigint }).n);
  }

  recordCount(): number {
    return Number((this.#st.kmlCount.get() as { n: bigint }).n);
  }

  /** Records with TID > `since`, in TID order, at most `limit`. */
  readKml(since: Tid, limit = 1000): KmlRecord[] {
    return (this.#st.kmlSince.all(since, limit) as Row[]).map(toRecord);
  }

  /** The oldest TID the KML still holds records from (records before it were pruned). */
  get firstKeptTid(): Tid {
    return asTid(BigInt(this.getMeta('kml_first') ?? '1'));
  }

  /** Server side: drop records before `tid` (every replicator has them, or they are past retention). */
  pruneKml(tid: Tid): number {
    if (tid <= this.firstKeptTid) return 0;
    let n = 0;
    this.#db.transaction(() => {
      n = this.#st.kmlPrune.run(tid).changes;
      this.#st.setMeta.run('kml_first', tid.toString());
    })();
    return n;
  }

  kmlAt(tid: Tid): KmlRecord | undefined {
    const r = this.#st.kmlAt.get(tid) as Row | undefined;
    return r === undefined ? undefined : toRecord(r);
  }

  /** The record a reintegration from `origin` with LML sequence `seq` became, if it was accepted. */
  kmlByOrigin(origin: string, seq: bigint): KmlRecord | undefined {
    const r = this.#st.kmlByOrigin.get(origin, seq) as Row | undefined;
    return r === undefined ? undefined : toRecord(r);
  }

  /** LML records with seq > `after`, oldest first. */
  readLml(after = 0n, limit = 1000): LmlRecord[] {
    return (this.#st.lmlAll.all(after, limit) as Row[]).map(toLml);
  }

  /** Pending removals of `kind` at `path` (or of the object `fid`), oldest first: found by SQLite, not by reading the whole LML. */
  pendingRemovals(kind: 'rmdir' | 'unlink', path: string, fid: Fid | null = null): LmlRecord[] {
    return (this.#st.lmlRemovals.all({ kind, path, fid }) as Row[]).map(toLml);
  }

  lmlRecord(seq: bigint): LmlRecord | undefined {
    const r = this.#st.lmlGet.get(seq) as Row | undefined;
    return r === undefined ? undefined : toLml(r);
  }

  /** Drop one LML record without it reaching the server (a change the server refused for good). */
  dropLml(seq: bigint): void {
    this.#transaction(() => {
      this.#st.lmlDelete.run(seq);
    });
  }

  addConflict(c: Omit<ConflictRow, 'id' | 'resolvedAt'>): number {
    const r = this.#st.conflictAdd.run(c.time, c.path, c.kind, c.policy, c.decision, c.remoteTid, c.remoteNode, c.kept, c.status, c.resolution);
    return Number(r.lastInsertRowid);
  }

  conflicts(all: boolean): ConflictRow[] {
    return (this.#st.conflictList.all(all ? 1 : 0) as Row[]).map((r) => ({
      id: num(r.id), time: num(r.time), path: String(r.path), kind: String(r.kind), policy: String(r.policy), decision: String(r.decision),
      remoteTid: r.remote_tid === null ? null : asTid(r.remote_tid as bigint), remoteNode: strOrNull(r.remote_node), kept: strOrNull(r.kept),
      status: r.status as 'open' | 'resolved', resolution: strOrNull(r.resolution), resolvedAt: r.resolved_at === null ? null : num(r.resolved_at),
    }));
  }

  resolveConflict(id: number, resolution: string, now: number): void {
    this.#st.conflictResolve.run(resolution, now, id);
  }

  /** Note a peer's change about to reach the disk; returns its id for clearInflight. */
  markInflight(intent: string): number {
    return Number(this.#st.inflightAdd.run(intent).lastInsertRowid);
  }

  clearInflight(id: number): void {
    this.#st.inflightDel.run(id);
  }

  inflight(): Array<{ id: number; intent: string }> {
    return (this.#st.inflightAll.all() as Row[]).map((r) => ({ id: num(r.id), intent: String(r.intent) }));
  }

  /** Client side: drop an object's pending local records (a conflict resolution takes them over). */
  dropLocal(fid: Fid): void {
    this.#transaction(() => {
      const moves = this.localRecordsOf(fid).filter((x) => x.kind === 'rename' && x.newPath !== null);
      this.#st.lmlDropFid.run(fid);
      this.#unmoveLml(moves);
    });
  }

  /**
   * A directory's pending moves, dropped: the records of what is below it, made while a move had it at its
   * new name, name it at its name before the first of them (the LML no longer moves it). Before, a record
   * made between two moves of a directory kept the name only the dropped move gave it: a conflict step that
   * put the directory back at the server's name (its moves dropped) left a file made in it named where no
   * directory would be, and the server refused it for ever ("parent … does not exist here", a resync; chaos
   * seed 9206). Moves of directories above it are not followed: each era is its own moves'.
   */
  #unmoveLml(moves: readonly LmlRecord[]): void {
    if (moves.length === 0) return;
    const home = moves[0]!.path;
    for (const [i, x] of moves.entries()) {
      const from = x.newPath!;
      const until = moves[i + 1]?.seq ?? null;
      const below = (p: string | null): boolean => p !== null && p.startsWith(`${from}/`);
      const move = (p: string | null): string | null => (below(p) ? `${home}${p!.slice(from.length)}` : p);
      const naming = (this.#st.lmlNaming.all({ p: from }) as Row[]).map(toLml).filter((r) => r.seq > x.seq && (until === null || r.seq < until));
      for (const r of naming) {
        const np = move(r.path)!;
        const nn = move(r.newPath);
        if (np !== r.path || nn !== r.newPath) this.#st.lmlPaths.run(np, nn, r.seq);
        if (r.kind === 'link' && below(r.target)) this.#st.lmlTarget.run(move(r.target), r.seq);
      }
    }
  }

  /** Pending local records of one object, oldest first. */
  localRecordsOf(fid: Fid): LmlRecord[] {
    return (this.#st.lmlOfFid.all(fid) as Row[]).map(toLml);
  }

  /** Persist what the LML optimiser made of the LML: rewritten records and dropped ones, in one transaction. */
  rewriteLml(rewritten: readonly LmlRecord[], dropped: readonly bigint[]): void {
    if (rewritten.length === 0 && dropped.length === 0) return;
    this.#transaction(() => {
      for (const seq of dropped) this.#st.lmlDelete.run(seq);
      for (const r of rewritten) this.#st.lmlRewrite.run({ ...r, parent: r.parent ?? null, targetFid: r.targetFid ?? null });
    });
  }

  /** A pending record made against `version` from now on (Reintegrator#moveRebased). */
  rebaseLml(seq: bigint, version: Tid): void {
    this.#transaction(() => {
      this.#st.lmlPreVersion.run(version, seq);
    });
  }

  /**
   * The pending content and attribute changes of one name of a hard-linked file become another name's
   * (`heir`, made against its version): the server removes the first name, and what was written lives on in
   * the inode under the other. Each goes at the heir's name of its time (`names`: seq -> name), or at its
   * path when `names` has none for it.
   */
  moveChangesTo(fid: Fid, heir: ObjectRow, names: ReadonlyMap<bigint, string> = new Map()): void {
    this.#transaction(() => {
      for (const [seq, path] of names) this.#st.lmlToHeirAt.run({ seq, fid, heir: heir.fid, path, version: heir.version });
      this.#st.lmlToHeir.run({ fid, heir: heir.fid, path: heir.path, version: heir.version });
    });
  }

  /**
   * Client side, conflict: the server removes a name of a hard-linked file that was moved here (its pending
   * moves, `fid`'s). The inode lives on under its other names there, and here under the moved name too: that
   * name becomes a new name of the inode, a link to `heir` (named `target`, its name at the last move), made
   * where and when the last move put it (in its place in the LML, a name of its time); the moves are dropped,
   * and the object row takes the new name's fid, made here (no version of the server's). Returns that fid.
   */
  movesToLink(fid: Fid, heir: Fid, target: string): Fid {
    let made: Fid = fid;
    this.#transaction(() => {
      made = this.newFid();
      const o = this.objectByFid(fid);
      const moves = this.localRecordsOf(fid).filter((r) => r.kind === 'rename');
      const last = moves.at(-1);
      if (o?.type !== 'file' || last?.newPath === undefined || last.newPath === null) throw new Error(`movesToLink: ${fid} is not a moved file here`);
      for (const r of moves) this.#st.lmlDelete.run(r.seq);
      this.#st.objectFid.run(made, NO_VERSION, fid);
      this.#st.lmlInsert.run({
        seq: last.seq, kind: 'link', fid: made, path: last.newPath, newPath: null, target, preVersion: NO_VERSION,
        mode: o.mode, uid: o.uid, gid: o.gid, mtimeMs: o.mtimeMs, size: o.size, hash: o.hash, origin: last.origin, time: last.time,
        parent: last.parent ?? null, targetFid: heir,
      } satisfies LmlRecord);
    });
    return made;
  }

  /**
   * Client side: the pending record `seq` (refused, nothing after it sent since) goes last in the LML, under a
   * new sequence number (Reintegrator#emptiedLater). Refused records were never applied on the server, so a new
   * number is safe, as in recreateDir.
   */
  moveLmlToEnd(seq: bigint): void {
    this.#transaction(() => {
      const r = this.lmlRecord(seq);
      if (r === undefined) return;
      this.#st.lmlDelete.run(seq);
      this.#lmlSeq += 1n;
      this.#st.lmlInsert.run({ ...r, seq: this.#lmlSeq, parent: r.parent ?? null, targetFid: r.targetFid ?? null });
    });
  }

  /** Pending local renames, oldest first (a server record names things as they were before them). */
  pendingRenames(): LmlRecord[] {
    return (this.#st.lmlRenames.all() as Row[]).map(toLml);
  }

  /** Pending local records that make an object at `name` or move one onto it, oldest first. */
  pendingOnto(name: string): LmlRecord[] {
    return (this.#st.lmlOnto.all(name, name) as Row[]).map(toLml);
  }

  /** Pending local records that give a name in the directory `dir` (RecordDraft.parent), oldest first. */
  pendingInto(dir: Fid): LmlRecord[] {
    return (this.#st.lmlInto.all(dir) as Row[]).map(toLml);
  }

  /** True when a pending link names `fid` as the file it links to. */
  pendingLinkTo(fid: Fid): boolean {
    return this.#st.lmlLinksTo.get(fid) !== undefined;
  }

  /** `name` as the pending record `seq` knew it, at this node's names now: the pending renames after it applied. */
  nameAfter(name: string, seq: bigint): string {
    let p = name;
    for (const x of this.pendingRenames()) {
      if (x.seq > seq && x.newPath !== null && (p === x.path || p.startsWith(`${x.path}/`))) p = `${x.newPath}${p.slice(x.path.length)}`;
    }
    return p;
  }

  /** The directory a pending record gives its name in (RecordDraft.parent), set anew; null: by its path alone. */
  setLmlParent(seq: bigint, parent: Fid | null): void {
    this.#st.lmlParentOf.run(parent, seq);
  }

  /** Client side, conflict: the pending record `seq` is made against `version` (the server's, which a conflict step met). */
  setLmlPreVersion(seq: bigint, version: Tid): void {
    this.#st.lmlPreVersionOf.run(version, seq);
  }

  /**
   * Client side, conflict: the pending record `seq` of `fid` that makes or moves the object onto `from`
   * ships with `to` instead, and so do the object's later records at `from` (up to its next move).
   */
  renameInLml(fid: Fid, seq: bigint, from: string, to: string): void {
    this.#transaction(() => {
      let until: bigint | null = null; // the object's own move on from there, if pending
      for (const r of this.localRecordsOf(fid)) {
        if (r.seq < seq) continue;
        const np = r.path === from ? to : r.path;
        const nn = r.seq === seq && r.newPath === from ? to : r.newPath;
        if (np !== r.path || nn !== r.newPath) this.#st.lmlPaths.run(np, nn, r.seq);
        if (r.kind === 'rename' && r.path === from) {
          until = r.seq;
          break; // moved on from there
        }
      }
      // Meanwhile other records named it by that name too: entries made below it (a directory), hard links
      // made to it. They follow it, or they would name the server's object at `from`; up to the first record
      // after which `from` no longer names it (a directory above it moved, or another object took the name).
      // Only the pending renames and the records onto `from` can end that: not the whole LML.
      const ends = [
        ...this.pendingRenames().filter((r) => r.seq > seq && from.startsWith(`${r.path}/`)),
        ...this.pendingOnto(from).filter((r) => r.seq > seq && r.fid !== fid),
      ];
      for (const r of ends) if (until === null || r.seq < until) until = r.seq;
      const below = (p: string): string => (p.startsWith(`${from}/`) ? `${to}${p.slice(from.length)}` : p);
      for (const r of (this.#st.lmlNaming.all({ p: from }) as Row[]).map(toLml)) {
        if (r.fid === fid || r.seq <= seq || (until !== null && r.seq >= until)) continue;
        const np = below(r.path);
        const nn = r.newPath === null ? null : below(r.newPath);
        if (np !== r.path || nn !== r.newPath) this.#st.lmlPaths.run(np, nn, r.seq);
        if (r.kind === 'link' && r.target !== null) {
          const nt = r.target === from ? to : below(r.target);
          if (nt !== r.target) this.#st.lmlTarget.run(nt, r.seq);
        }
      }
    });
  }

  lmlCount(): number {
    return Number((this.#st.lmlCount.get() as { n: bigint }).n);
  }

  /**
   * Client side: the object takes a server version it missed (a change through a name the server links to it
   * and this node did not). Nothing else of the row changes: the record applied next sets content and names.
   */
  takeServerVersion(fid: Fid, version: Tid): void {
    this.#st.setVersion.run(version, fid);
  }

  /**
   * Client side: a name made a name of `from`'s inode here (as the server groups them, see apply/link-align.ts)
   * shows that inode's content and attributes. Its version stays: the record applied next gives it one.
   */
  joinInode(fid: Fid, from: ObjectRow, identity: StatIdentity): void {
    this.#transaction(() => {
      const x = this.objectByFid(fid);
      if (x === undefined) return;
      this.#replace(x, { ...x, mode: from.mode, uid: from.uid, gid: from.gid, mtimeMs: from.mtimeMs, size: from.size, hash: from.hash });
      this.setIdentity(fid, identity);
    });
  }

  /**
   * A record of the object itself (not through another name of its inode) later than `tid` is in the journal,
   * from another node than `notFrom` when given. Client side: an own change the server accepted, whose answer
   * came before the stream brought the server's older records. Server side: the object changed since a
   * removal's version (ApplyPath#oneNameOf), by another node than the one removing it.
   */
  hasLaterRecord(fid: Fid, tid: Tid, notFrom?: NodeId): boolean {
    return (notFrom === undefined ? this.#st.kmlLaterOfFid.get(tid, fid) : this.#st.kmlLaterOfFidFromOthers.get(tid, fid, notFrom)) !== undefined;
  }

  /**
   * The last record between `after` and `before` (both left out) that gave `fid` a version: one of the object,
   * or a change through another name of its inode that named it (KmlRecord.links). ApplyPath#baseOf.
   */
  lastVersionOf(fid: Fid, after: Tid, before: Tid): KmlRecord | undefined {
    const r = this.#st.kmlLastOfName.get(after, before, fid, `%"${fid}"%`) as Row | undefined;
    return r === undefined ? undefined : toRecord(r);
  }

  /**
   * Every record that gave `fid` a version after `after`, up to `upTo`, changed content or attributes only (of the
   * object, or through another name of its inode), and the journal still holds them all: a move made against
   * `after` meets none of them (Reintegrator, a pending move made against it).
   */
  onlyContentSince(fid: Fid, after: Tid, upTo: Tid): boolean {
    if (after < this.firstKeptTid - 1n || upTo <= after) return false;
    return this.#st.kmlNamingChange.get(after, upTo, fid, `%"${fid}"%`) === undefined;
  }

  /** Server side: the first change of `fid`'s content or attributes after `tid` that `origin` did not make. */
  foreignContentAfter(fid: Fid, tid: Tid, origin: string): KmlRecord | undefined {
    const r = this.#st.kmlForeignContent.get(tid, fid, origin) as Row | undefined;
    return r === undefined ? undefined : toRecord(r);
  }

  /**
   * Client side: this node's removal of directory `fid`, which the server accepted after `tid` (its record is
   * in the KML from the reintegration's answer, the stream has not brought it back yet).
   */
  ownRmdirAfter(fid: Fid, tid: Tid): KmlRecord | undefined {
    const r = this.#st.kmlLaterRmdir.get(tid, fid, this.meta.nodeId) as Row | undefined;
    return r === undefined ? undefined : toRecord(r);
  }

  /**
   * Client side: renames later than `tid` in the journal already, oldest first (this node's own changes the
   * server accepted after `tid`, whose answer came before the stream brought the server's older records).
   */
  renamesAfter(tid: Tid): KmlRecord[] {
    return (this.#st.kmlLaterRenames.all(tid) as Row[]).map(toRecord);
  }

  /** True when the client has local changes to this object that the server has not accepted. */
  hasPendingLocal(fid: Fid): boolean {
    return Number((this.#st.lmlForFid.get(fid) as { n: bigint }).n) > 0;
  }

  lastRcvdOf(peer: string): Tid {
    const v = this.#st.lastRcvdGet.pluck().get(peer) as bigint | undefined;
    return asTid(v ?? 0n);
  }

  /** Record that `peer` acknowledged (or we applied from it) every TID up to `tid`; never moves back. */
  setLastRcvd(peer: string, tid: Tid, now: number): void {
    this.#st.lastRcvdSet.run(peer, tid, now);
  }

  registerPeer(node: string, replicate: boolean, now: number, address: string | null): void {
    this.#st.peerUpsert.run(node, replicate ? 1 : 0, now, now, address);
  }

  peers(): Array<{ node: string; replicate: boolean; firstSeen: number; lastSeen: number; address: string | null }> {
    return (this.#st.peersAll.all() as Row[]).map((r) => ({
      node: String(r.node), replicate: num(r.replicate) !== 0, firstSeen: num(r.first_seen), lastSeen: num(r.last_seen),
      address: strOrNull(r.address),
    }));
  }

  getMeta(key: string): string | undefined {
    return this.#st.metaGet.pluck().get(key) as string | undefined;
  }

  setMeta(key: string, value: string): void {
    this.#st.setMeta.run(key, value);
  }

  /** Call `cb` after every commit that changed the KML or LML (forwarders and the reintegrator wake on it). */
  onCommit(cb: () => void): () => void {
    this.#listeners.push(cb);
    return () => {
      const i = this.#listeners.indexOf(cb);
      if (i >= 0) this.#listeners.splice(i, 1);
    };
  }

  #notify(): void {
    for (const cb of [...this.#listeners]) cb();
  }

  lastRcvd(): Array<{ peer: string; tid: Tid; updated: number }> {
    return (this.#st.lastRcvdAll.all() as Row[]).map((r) => ({
      peer: String(r.peer), tid: asTid(r.tid as bigint), updated: Number(r.updated),
    }));
  }

  /**
   * Client side: names of hard-linked files removed here whose removal the stream has not brought back yet
   * (pending, or accepted by the server's answer only), by the inode they had (kept in meta: the LML does not
   * say which inode a removed name was of). A change of that inode from the server reaches them too (see
   * #applyToObjects and the conflict step), and a server link to one joins the inode (ClientNode#applyResolved).
   */
  removedLinksOf(ino: string): Fid[] {
    const all = JSON.parse(this.getMeta(REMOVED_LINKS) ?? '{}') as Record<string, string>;
    return Object.entries(all).filter(([, i]) => i === ino).map(([fid]) => fid as Fid);
  }

  /** The inode a hard-linked name removed here had, until the stream brings its removal back (see removedLinksOf). */
  removedLinkIno(fid: Fid): string | null {
    const all = JSON.parse(this.getMeta(REMOVED_LINKS) ?? '{}') as Record<string, string>;
    return all[fid] ?? null;
  }

  /** The names of inode `from` that a new file took over with its content now hold inode `to` (ApplyPath, a peer's write): so do the names removed here that it had. */
  inodeReplaced(from: string, to: string): void {
    const all = JSON.parse(this.getMeta(REMOVED_LINKS) ?? '{}') as Record<string, string>;
    const moved = Object.keys(all).filter((fid) => all[fid] === from);
    if (moved.length === 0) return;
    for (const fid of moved) all[fid] = to;
    this.setMeta(REMOVED_LINKS, JSON.stringify(all));
  }

  /**
   * A name removed here (its removal pending) whose inode the server linked a new name to: that name, placed as
   * a file of its own here, holds the inode the removed name has there (ClientNode, a link to a removed name).
   */
  noteRemovedLinkAt(fid: Fid, ino: string): void {
    this.#noteRemovedLink(fid, ino);
  }

  /** A name removed here is back (a conflict step dropped its removal): it is no longer a removed name of any inode. */
  forgetRemovedLink(fid: Fid): void {
    this.#noteRemovedLink(fid, null);
  }

  /** The names removed here that were noted with inode `ino` are names of no inode here any more (see removedLinksOf). */
  #forgetRemovedLinksAt(ino: string): void {
    const noted = this.getMeta(REMOVED_LINKS);
    if (noted === undefined || !noted.includes(`"${ino}"`)) return;
    const all = JSON.parse(noted) as Record<string, string>;
    for (const fid of Object.keys(all)) if (all[fid] === ino) delete all[fid];
    this.setMeta(REMOVED_LINKS, JSON.stringify(all));
  }

  #noteRemovedLink(fid: Fid, ino: string | null): void {
    const all = JSON.parse(this.getMeta(REMOVED_LINKS) ?? '{}') as Record<string, string>;
    if (ino === null && !(fid in all)) return;
    if (ino === null) delete all[fid];
    else all[fid] = ino;
    this.setMeta(REMOVED_LINKS, JSON.stringify(all));
  }

  #insertKml(r: KmlRecord): void {
    this.#st.kmlInsert.run({ ...r, links: r.links === undefined || r.links === null ? null : JSON.stringify(r.links), parent: r.parent ?? null, targetFid: r.targetFid ?? null });
  }

  /** Record that the stat identity of an object changed without a change to its state (for example a touch of a directory). */
  setIdentity(fid: Fid, id: StatIdentity): void {
    this.#st.identity.run(id.ino, id.mtimeNs, id.ctimeNs, id.racy ? 1 : 0, fid);
  }

  /**
   * Give each draft the next TID and commit the records, the objects' new
   * states, their stat identities and the state digest in one transaction.
   * A draft whose pre-version is not the object's current version is a bug in
   * the caller (capture reads the version it changes, the apply path checks it
   * first): it throws and nothing commits.
   */
  commit(changes: readonly Change[]): KmlRecord[] {
    const out: KmlRecord[] = [];
    this.#transaction(() => {
      for (const c of changes) {
        const d = c.draft;
        const tid = asTid(this.#lastTid + 1n);
        const cur = this.#current(d);
        const placed = this.#placedOf(d);
        const links = this.#applyToObjects(d, cur, tid);
        this.#lastTid = tid;
        const rec: KmlRecord = { ...d, ...placed, tid, postVersion: tid, digest: formatDigest(this.#digest), originSeq: c.originSeq ?? null, ...(links === null ? {} : { links }) };
        this.#insertKml(rec);
        this.#setIdentity(d, c.identity, true);
        out.push(rec);
      }
    });
    return out;
  }

  /**
   * Client side: journal local changes to the LML. The object table follows
   * the disk, but each object keeps the server version it is based on until
   * the server accepts the change (acceptOwn).
   */
  commitLocal(changes: readonly Change[]): LmlRecord[] {
    const out: LmlRecord[] = [];
    this.#transaction(() => {
      for (const c of changes) {
        const d = c.draft;
        const cur = this.#current(d);
        if (d.kind === 'unlink' && cur?.type === 'file' && cur.ino !== null && this.objectsByIno(cur.ino).some((x) => x.fid !== cur.fid && x.type === 'file')) {
          this.#noteRemovedLink(cur.fid, cur.ino);
        }
        const placed = this.#placedOf(d);
        this.#applyToObjects(d, cur, cur?.version ?? NO_VERSION);
        this.#lmlSeq += 1n;
        const rec: LmlRecord = { ...d, ...placed, seq: this.#lmlSeq };
        this.#st.lmlInsert.run(rec);
        this.#setIdentity(d, c.identity, true);
        out.push(rec);
      }
    });
    return out;
  }

  /**
   * Client side: apply records from the server with the server's TIDs (after
   * the apply path changed the disk), in TID order, and move last_rcvd.
   */
  commitRemote(changes: readonly RemoteChange[], peer: string, now: number): void {
    this.#transaction(() => {
      for (const { record: r, identity, content } of changes) {
        if (this.#st.kmlHas.get(r.tid) !== undefined) {
          this.#st.lastRcvdSet.run(peer, r.tid, now); // applied already
          continue;
        }
        // A version newer than the record's is this node's own change, accepted after it (ApplyPath#baseOf):
        // the record applies under it, and the server's object has that version after both, as this node's.
        const o = CREATE_KINDS.has(r.kind) ? undefined : this.objectByFid(r.fid);
        const ahead = o !== undefined && o.version > r.tid;
        const cur = this.#current(ahead ? { ...r, preVersion: o.version } : r);
        const version = ahead ? o.version : r.tid;
        this.#applyToObjects(content === undefined ? r : { ...r, hash: content.hash, size: content.size }, cur, version);
        // The server moved it first: local records below (or of) it name it where it is now.
        if (r.kind === 'rename' && r.newPath !== null && cur !== undefined) this.#moveLml(r.fid, cur.path, r.newPath);
        this.#insertKml(r);
        this.#setIdentity(r, identity, true);
        if (r.tid > this.#lastTid) this.#lastTid = r.tid;
        this.#st.lastRcvdSet.run(peer, r.tid, now);
      }
    });
  }

  /**
   * Client side: a record from the server that this node refuses to apply (an escaping symlink under
   * safe-links, or a later change of one): kept in the KML as the server's history, last_rcvd moved,
   * the object table and the digest untouched (the disk holds nothing of it).
   */
  skipRemote(r: KmlRecord, peer: string, now: number): void {
    this.#transaction(() => {
      if (this.#st.kmlHas.get(r.tid) === undefined) {
        this.#insertKml(r);
        if (r.tid > this.#lastTid) this.#lastTid = r.tid;
      }
      this.#st.lastRcvdSet.run(peer, r.tid, now);
    });
  }

  /**
   * Client side: file `fid` now holds the peer's current content, placed without a record of its own (the
   * record that made it came when the peer no longer held that content; a later one named it again). The
   * version stays; hard links to it change with it, as with a write.
   */
  setContent(fid: Fid, hash: string, size: number, identity: StatIdentity | null): void {
    this.#transaction(() => {
      const o = this.objectByFid(fid);
      if (o === undefined || o.type !== 'file') throw new Error(`set content of ${fid}: no such file`);
      const d: RecordDraft = {
        kind: 'write', fid: o.fid, path: o.path, newPath: null, target: null, preVersion: o.version, mode: o.mode, uid: o.uid, gid: o.gid,
        mtimeMs: o.mtimeMs, size, hash, origin: this.meta.nodeId, time: 0,
      };
      this.#applyToObjects(d, o, o.version);
      this.#setIdentity(d, identity);
    });
  }

  /**
   * Client side: file `fid` now has the peer's attributes, set without a record of its own (a change the peer
   * made to another name of its inode, which is not one inode with this name here). The version stays.
   */
  setAttrs(fid: Fid, a: Pick<RecordDraft, 'mode' | 'uid' | 'gid' | 'mtimeMs'>, identity: StatIdentity | null): void {
    this.#transaction(() => {
      const o = this.objectByFid(fid);
      if (o === undefined || o.type !== 'file') throw new Error(`set attributes of ${fid}: no such file`);
      const d: RecordDraft = {
        kind: 'setattr', fid: o.fid, path: o.path, newPath: null, target: null, preVersion: o.version, mode: a.mode, uid: a.uid, gid: a.gid,
        mtimeMs: a.mtimeMs, size: o.size, hash: o.hash, origin: this.meta.nodeId, time: 0,
      };
      this.#applyToObjects(d, o, o.version);
      this.#setIdentity(d, identity);
    });
  }

  /**
   * Client side: the server accepted one of our LML records and forwarded it
   * back with its TID. The disk and object table have the change already: drop
   * the LML record, take the TID as the object's version, rebase later local
   * records of the same object on it, and (from the forwarded stream, `peer`
   * given) move last_rcvd, in one transaction. Called from a reintegration
   * answer, `peer` is null: last_rcvd only moves over a contiguous stream.
   */
  acceptOwn(r: KmlRecord, peer: string | null, now: number): void {
    this.#transaction(() => {
      if (peer !== null) this.#st.lastRcvdSet.run(peer, r.tid, now);
      // The inode a name removed here had is forgotten once the stream brings the removal back, not when the
      // server's answer accepts it: the stream may still bring older server records that name the removed
      // name (it lags behind the answers), a link to it say, which then joins the inode's other names here
      // (ClientNode#applyResolved). Before, that link became a file of its own and the server held it with
      // the other names as one file, this node as two, for good.
      if (r.kind === 'unlink' && peer !== null) this.#noteRemovedLink(r.fid, null);
      if (this.#st.kmlHas.get(r.tid) !== undefined) return;
      this.#insertKml(r);
      const o = this.objectByFid(r.fid);
      // A name removed here since (its removal pending) has no row: the inode it had is noted (removedLinkIno),
      // and the change through it reached the inode's other names on the server all the same (r.links). Before,
      // they kept their version here, their pending writes (the write through the removed name journaled again
      // as the surviving name's, Reconciler#carrierOf) were refused three times as made against an older
      // version, and the client resynced (chaos seed 9202, c1).
      const ino = o === undefined ? this.removedLinkIno(r.fid) : o.ino;
      // The other names of a hard-linked inode took the version of a change through this one (#applyToObjects).
      // (Not the names made here and not accepted yet: they have no version of the server's, see #applyToObjects.)
      // With the server's names of the inode (r.links), where this node's grouping differs.
      const content = (r.kind === 'write' || r.kind === 'truncate' || r.kind === 'setattr') && (o === undefined || o.type === 'file');
      // Where the server said which names it gave the version (r.links), a name grouped with this one here
      // only (apart on the server) keeps its own: its records are made against that.
      const known = r.links !== undefined && r.links !== null;
      const local = content && ino !== null ? this.objectsByIno(ino).filter((x) => !known || x.fid === r.fid || r.links!.includes(x.fid)) : [];
      const server = content ? (r.links ?? []).flatMap((fid) => local.some((x) => x.fid === fid) ? [] : [this.objectByFid(fid)].filter((x) => x !== undefined)) : [];
      const siblings = [...local, ...server].filter((x) => x.fid !== r.fid && x.type === 'file' && x.version !== NO_VERSION);
      if (r.originSeq !== null) {
        this.#st.lmlDelete.run(r.originSeq);
        this.#st.lmlRebase.run(r.tid, r.fid, r.preVersion, r.originSeq);
        // Each name's records are made against its own version (a change here gives the others none).
        for (const sib of siblings) this.#st.lmlRebase.run(r.tid, sib.fid, sib.version, r.originSeq);
      }
      if (o !== undefined && o.version === r.preVersion) {
        this.#st.setVersion.run(r.tid, r.fid);
        for (const sib of siblings) this.#st.setVersion.run(r.tid, sib.fid);
      } else if (o === undefined) {
        // The removed name's own version lives in its pending records (rebased above); its names here take it.
        for (const sib of siblings) if (sib.version < r.tid) this.#st.setVersion.run(r.tid, sib.fid);
      }
      if (r.tid > this.#lastTid) this.#lastTid = r.tid;
    });
  }

  /**
   * Client side, first copy: an object of the server's snapshot, applied to
   * the disk already, joins the object table with the server's version. No
   * KML record: the copy starts the client's KML at the snapshot's TID.
   */
  commitCopy(d: RecordDraft, version: Tid, identity: StatIdentity | null): void {
    this.#transaction(() => {
      const old = this.objectByFid(d.fid);
      if (old !== undefined) {
        this.#st.remove.run(old.fid);
        this.#digest = digestSub(this.#digest, old);
      }
      this.#applyToObjects({ ...d, preVersion: NO_VERSION }, undefined, version);
      this.#setIdentity(d, identity);
    });
  }

  /**
   * commitCopy of a new file into a table that had no objects when the copy
   * began (a fresh first copy): one insert, identity included, no lookups. A
   * taken fid or name fails the insert, and with it the batch it must run in.
   */
  commitCopyNew(d: RecordDraft, version: Tid, identity: StatIdentity): void {
    if (!this.#batching || !this.#db.inTransaction) throw new Error('commitCopyNew runs inside batch()');
    if (d.kind !== 'create') throw new Error(`commitCopyNew of a ${d.kind}`);
    try {
      this.#st.insertFile.run(d.fid, d.path, version, d.mode, d.uid, d.gid, d.mtimeMs, d.size, d.hash, identity.ino, identity.mtimeNs, identity.ctimeNs, identity.racy ? 1 : 0);
    } catch (e) {
      this.#batchFailed = true;
      throw e;
    }
    this.#digest = digestAdd(this.#digest, { path: d.path, type: 'file', mode: d.mode, hash: d.hash, target: null });
  }

  /**
   * Run several commits as one transaction (one write to the WAL instead of
   * one per commit): all of them land or none does. Synchronous only.
   */
  batch(fn: () => void): void {
    if (this.#batching) {
      fn();
      return;
    }
    this.#batching = true;
    this.#batchFailed = false;
    try {
      this.#transaction(() => {
        fn();
        // A commit inside failed and its caller went on: what it half wrote must not land.
        if (this.#batchFailed) throw new Error('a commit inside the batch failed; the whole batch is rolled back');
      });
    } finally {
      this.#batching = false;
    }
  }

  /**
   * A fresh first copy fills the object table faster without its content-hash
   * index (random keys, a page written per row); finishCopy builds it again in
   * one sort, and so does the next open after a crash in between.
   */
  deferHashIndex(): void {
    this.#db.exec('DROP INDEX IF EXISTS objects_hash');
  }

  /** Client side, first copy done: the KML starts at `tid`, the stream follows from there. */
  finishCopy(peer: string, tid: Tid, now: number): void {
    this.#db.exec(HASH_INDEX);
    this.#transaction(() => {
      this.#st.setMeta.run('copy_done', formatTid(tid));
      this.#st.lastRcvdSet.run(peer, tid, now);
      if (tid > this.#lastTid) this.#lastTid = tid;
    });
  }

  /**
   * Drop an object (and what is below it) from the table without a record: the first copy removing leftovers.
   * Their pending local records go too: a record of an object that is not here could never be sent (the
   * caller keeps local changes first, see daemon/resync-protect.ts).
   */
  forget(fid: Fid): void {
    this.#transaction(() => {
      const o = this.objectByFid(fid);
      if (o === undefined) return;
      this.#relocations++;
      for (const c of o.type === 'dir' ? this.objectsBelow(o.path) : []) {
        this.#st.remove.run(c.fid);
        this.#st.lmlDropFid.run(c.fid);
        this.#digest = digestSub(this.#digest, c);
      }
      this.#st.remove.run(o.fid);
      this.#st.lmlDropFid.run(o.fid);
      this.#digest = digestSub(this.#digest, o);
    });
  }

  /**
   * Client side, conflict: move a locally created object (never accepted by
   * the server) to `to`, rewriting its pending LML records, so the name is
   * free for the server's object. The caller renamed it on disk already.
   */
  relocateLocal(fid: Fid, to: string): void {
    this.#transaction(() => {
      const o = this.objectByFid(fid);
      if (o === undefined) return;
      this.#relocations++;
      const from = o.path;
      const move = (p: string): string => (p === from ? to : p.startsWith(`${from}/`) ? `${to}${p.slice(from.length)}` : p);
      for (const c of o.type === 'dir' ? this.objectsBelow(from) : []) {
        this.#digest = digestSub(this.#digest, c);
        this.#digest = digestAdd(this.#digest, { ...c, path: move(c.path) });
        this.#st.movePath.run(move(c.path), c.fid);
      }
      this.#replace(o, { ...o, path: to });
      this.#moveLml(fid, from, to);
    });
  }

  /**
   * Pending local records name objects by path; an object moved by another hand than capture's (a server's
   * rename, a conflict step) carries them along: its own records, and those of whatever is below it (a
   * directory's entries), a hard link's target too. Another object's records at exactly that name describe
   * that other object and stay as they are. The LML replays after the server's records, so its paths are
   * the names after that move.
   */
  #moveLml(fid: Fid, from: string, to: string): void {
    // Records older than a pending rename of a directory above it knew it by its name before that rename:
    // each era of names is rewritten on its own, `from` and `to` each at the names of then (a rename above
    // both moved both; one above one of them moved that one alone). Before, an era older than a rename above
    // it was rewritten only for a move within one directory: a file made in d/sub, d then moved to e, and
    // e/sub/a.txt set beside the removed e/sub (ConflictResolver#emptyForRmdir) kept "create d/sub/a.txt", which
    // the server refused for ever ("parent d/sub does not exist here", a resync; chaos seeds 9203, 9212).
    // A name given in another directory than before names that directory by fid too (RecordDraft.parent):
    // the one at `to`'s directory now, which each era's renames take back to its name of then.
    const dir = parentOf(to);
    const d = dir === '' ? undefined : this.objectByPath(dir);
    const parent = dir === parentOf(from) ? undefined : dir === '' ? ROOT_FID : d?.type === 'dir' ? d.fid : null;
    const renames = this.pendingRenames();
    const back = (p: string, x: LmlRecord): string => (p.startsWith(`${x.newPath!}/`) ? `${x.path}${p.slice(x.newPath!.length)}` : p);
    let f = from;
    let t = to;
    let hi: bigint | null = null;
    for (let i = renames.length - 1; ; i--) {
      let above: LmlRecord | undefined;
      for (; i >= 0; i--) {
        const x = renames[i]!;
        if ((hi === null || x.seq < hi) && x.newPath !== null && (f.startsWith(`${x.newPath}/`) || t.startsWith(`${x.newPath}/`))) {
          above = x;
          break;
        }
      }
      this.#moveLmlEra(fid, f, t, above?.seq ?? 0n, hi, parent);
      if (above === undefined) return;
      f = back(f, above);
      t = back(t, above);
      hi = above.seq;
    }
  }

  /**
   * #moveLml for the records with lo < seq < hi (no upper bound when hi is null), which name it `from`.
   * `parent`: the directory the object's own records that name it `from` give it now (undefined: unchanged).
   */
  #moveLmlEra(fid: Fid, from: string, to: string, lo: bigint, hi: bigint | null, parent: Fid | null | undefined): void {
    const move = (r: LmlRecord, p: string): string =>
      p === from ? (r.fid === fid ? to : p) : p.startsWith(`${from}/`) ? `${to}${p.slice(from.length)}` : p;
    // Only the records that name `from` or a name below it (not the whole LML).
    const naming = (this.#st.lmlNaming.all({ p: from }) as Row[]).map(toLml).filter((r) => r.seq > lo && (hi === null || r.seq < hi));
    // Records older than the object's arrival at `from` name what was there then (a directory since moved
    // or removed, whose entries were made below it): they stay. The arrival is its own pending create or
    // move onto `from`, or else it came after the last pending record that took another object away.
    let since = 0n;
    for (const r of naming) {
      const arrives = r.fid === fid && ((r.kind === 'rename' && r.newPath === from) || (CREATE_KINDS.has(r.kind) && r.path === from));
      const leaves = r.fid !== fid && r.path === from && (r.kind === 'rename' || r.kind === 'unlink' || r.kind === 'rmdir');
      if (arrives && r.seq > since) since = r.seq;
      if (leaves && r.seq + 1n > since) since = r.seq + 1n;
    }
    // The name a record gives (a create's path, a rename's new name) names its directory by fid too (`parent`,
    // set when journaled): when that directory is another object, found here away from `to`, the name is in
    // it, whatever its path says. Before, such a name was moved along by its path alone (after a conflict
    // step's moves, which no record shows, had fooled `since`), and the next move of its own object missed it:
    // the server set the object aside under another name than this node's (chaos s53 seed 9242, c3).
    const elsewhere = (r: LmlRecord): boolean => {
      if (r.fid === fid || r.parent === undefined || r.parent === null || r.parent === fid) return false;
      const dir = r.parent === ROOT_FID ? '' : this.objectByFid(r.parent)?.path;
      return dir !== undefined && dir !== to && !dir.startsWith(`${to}/`);
    };
    for (const r of naming) {
      // Its own records name it where it was each time (every move rewrote them): they follow it. Before, one
      // older than another object's departure from the name was left behind (that departure came while a
      // conflict step had this one beside the name), and shipped at a name it no longer had.
      if (r.seq < since && !(r.fid === fid && (r.path === from || r.newPath === from))) continue;
      const gives = r.kind === 'rename' ? r.newPath : CREATE_KINDS.has(r.kind) ? r.path : null;
      const keep = gives !== null && elsewhere(r);
      const np = keep && gives === r.path ? r.path : move(r, r.path);
      const nn = r.newPath === null ? null : keep ? r.newPath : move(r, r.newPath);
      if (np !== r.path || nn !== r.newPath) this.#st.lmlPaths.run(np, nn, r.seq);
      const named = r.fid === fid && ((r.kind === 'rename' && r.newPath === from) || (CREATE_KINDS.has(r.kind) && r.path === from));
      if (named && parent !== undefined && (r.parent ?? null) !== parent) this.#st.lmlParentOf.run(parent, r.seq);
      if (r.kind === 'link' && r.target !== null) {
        const nt = r.target === from || r.target.startsWith(`${from}/`) ? `${to}${r.target.slice(from.length)}` : r.target;
        if (nt !== r.target) this.#st.lmlTarget.run(nt, r.seq);
      }
    }
  }

  /**
   * Client side, conflict: the server changed an object that has local
   * changes not accepted yet. The local content was moved aside by the caller
   * (and journaled as a new object); drop the object's pending records and
   * put its row back to the server's version at `path`, so the server's
   * record applies on it. `hasContent` false: the file is not on disk now.
   */
  resetToServer(fid: Fid, path: string, version: Tid, hasContent: boolean): void {
    this.#transaction(() => {
      this.#st.lmlDropFid.run(fid);
      const o = this.objectByFid(fid);
      if (o === undefined) return;
      this.#replace(o, { ...o, path, version, ...(hasContent ? {} : { hash: null, size: null }) });
      this.#st.identity.run(null, null, null, 1, fid);
    });
  }

  /**
   * Client side, conflict: both sides created a directory at the same name.
   * The local one takes the server's fid and version; its own mkdir record is
   * dropped and the server's record joins the KML.
   */
  adoptDir(localFid: Fid, r: KmlRecord, peer: string, now: number): void {
    this.#transaction(() => {
      this.#st.lmlDropKind.run(localFid, 'mkdir');
      this.#st.lmlFid.run(r.fid, localFid);
      // So do the records of what was made or moved into it here (RecordDraft.parent): the server places them by
      // that fid, wherever the directory is there now. Before, they named a fid the server never had, kept their
      // path, and once the server had moved the directory were refused ("parent d does not exist here"; chaos
      // seed 9203, three refusals and a resync).
      this.#st.lmlParent.run(r.fid, localFid);
      this.#st.lmlRebase.run(r.tid, r.fid, NO_VERSION, 0n);
      this.#st.objectFid.run(r.fid, r.tid, localFid);
      this.#insertKml(r);
      this.#st.lastRcvdSet.run(peer, r.tid, now);
      if (r.tid > this.#lastTid) this.#lastTid = r.tid;
    });
  }

  /**
   * Client side: the server refused a pending record because a directory above it, here as `fid`, does not
   * exist there (the server removed it while a conflict step kept it here, or never accepted it). The
   * directory becomes a new object of this node, made on the server by a mkdir that ships first: every
   * pending record keeps its order after it (they were refused or never sent, so new sequence numbers are
   * safe), and the directory's own later records follow from the new object. `at`: its name as the first
   * pending record knows it (the refused record's parent). Returns the new fid.
   */
  recreateDir(fid: Fid, at: string, now: number): Fid {
    let made: Fid = fid;
    this.#transaction(() => {
      const o = this.objectByFid(fid);
      if (o === undefined || o.type !== 'dir') throw new Error(`recreateDir: ${fid} is not a directory here`);
      made = this.newFid();
      const pending = this.readLml(0n, 10_000_000);
      for (const r of pending) this.#st.lmlDelete.run(r.seq);
      this.#st.objectFid.run(made, NO_VERSION, fid);
      this.#lmlSeq += 1n;
      this.#st.lmlInsert.run({
        seq: this.#lmlSeq, kind: 'mkdir', fid: made, path: at, newPath: null, target: null, preVersion: NO_VERSION,
        mode: o.mode, uid: o.uid, gid: o.gid, mtimeMs: o.mtimeMs, size: null, hash: null, origin: this.meta.nodeId, time: now,
        ...this.#placedOf({ kind: 'mkdir', path: at, newPath: null, target: null }),
      } satisfies LmlRecord);
      for (const r of pending) {
        this.#lmlSeq += 1n;
        const mine = r.fid === fid;
        this.#st.lmlInsert.run({ ...r, seq: this.#lmlSeq, fid: mine ? made : r.fid, preVersion: mine ? NO_VERSION : r.preVersion, parent: r.parent === fid ? made : (r.parent ?? null), targetFid: r.targetFid ?? null });
      }
    });
    return made;
  }

  #transaction(fn: () => void): void {
    if (this.#batching && this.#db.inTransaction) {
      // Inside a batch a commit is part of the batch's transaction (no savepoint of its own): if it fails, so does the batch.
      try {
        fn();
      } catch (e) {
        this.#batchFailed = true;
        throw e;
      }
      return;
    }
    const startTid = this.#lastTid;
    const startDigest = this.#digest;
    const startLml = this.#lmlSeq;
    try {
      this.#db.transaction(() => {
        fn();
        // Only what moved is written: most commits change the last TID and the digest, few the counters.
        if (this.#lastTid !== startTid) this.#st.setMeta.run('last_tid', this.#lastTid.toString());
        if (this.#digest !== startDigest) this.#st.setMeta.run('digest', formatDigest(this.#digest));
        if (this.#fidSeq !== this.#savedFidSeq) {
          this.#st.setMeta.run('fid_seq', this.#fidSeq.toString());
          this.#savedFidSeq = this.#fidSeq;
        }
        if (this.#lmlSeq !== startLml) this.#st.setMeta.run('lml_seq', this.#lmlSeq.toString());
      })();
    } catch (e) {
      this.#lastTid = startTid;
      this.#digest = startDigest;
      this.#lmlSeq = startLml;
      this.#savedFidSeq = -1n; // rolled back: write it again with the next commit
      throw e;
    }
    this.#notify();
  }

  /**
   * What a record names by fid as well as by path, as this node's table has it before the record: the
   * directory its new name goes in (RecordDraft.parent), a link's existing name (RecordDraft.targetFid);
   * null where a record has none or the table has no such object.
   */
  #placedOf(d: Pick<RecordDraft, 'kind' | 'path' | 'newPath' | 'target'>): { parent: Fid | null; targetFid: Fid | null } {
    const name = d.kind === 'rename' ? d.newPath : NAMING.has(d.kind) ? d.path : null;
    const dir = name === null ? null : parentOf(name);
    const d0 = dir === null || dir === '' ? undefined : this.objectByPath(dir);
    const parent = dir === null ? null : dir === '' ? ROOT_FID : d0?.type === 'dir' ? d0.fid : null;
    const t = d.kind === 'link' && d.target !== null ? this.objectByPath(d.target) : undefined;
    return { parent, targetFid: t?.type === 'file' ? t.fid : null };
  }

  /** The object a draft changes, checking the draft's pre-version against its version. */
  #current(d: RecordDraft): ObjectRow | undefined {
    const creates = d.kind === 'create' || d.kind === 'mkdir' || d.kind === 'symlink' || d.kind === 'link';
    const cur = creates ? undefined : this.objectByFid(d.fid);
    const curVersion = cur?.version ?? NO_VERSION;
    if (curVersion !== d.preVersion) {
      throw new Error(`commit ${d.kind} ${d.path}: pre-version ${formatTid(d.preVersion)} is not current ${formatTid(curVersion)}`);
    }
    if (creates && this.objectByPath(d.path) !== undefined) throw new Error(`commit ${d.kind} ${d.path}: the name is taken`);
    return cur;
  }

  /**
   * `made`: the record's object was just made on disk (capture saw it appear, or the apply path wrote it). A
   * new file, directory or symlink is a new inode (a second name of a file is a `link` record): another row
   * holding its inode number holds a stale one (that inode was freed and reused), and would be taken for a
   * hard link of it (a write through one name would change the other's version and content).
   */
  #setIdentity(d: RecordDraft, id: StatIdentity | null, made = false): void {
    if (id === null || d.kind === 'unlink' || d.kind === 'rmdir') return;
    if (made && (d.kind === 'create' || d.kind === 'mkdir' || d.kind === 'symlink')) {
      this.#st.forgetIno.run(id.ino, d.fid);
      // Nor is any name removed here noted with that number a name of this object: the inode it was of is gone,
      // and the kernel handed its number out again. Before, a server's link to such a name joined the new file
      // (removedLink found it), and the server's content went into it: a new file made here was written over,
      // on no node any more (chaos s69 seed 9259, c3's d.md).
      this.#forgetRemovedLinksAt(id.ino);
    } else if ((d.kind === 'write' || d.kind === 'truncate') && this.objectByFid(d.fid)?.ino !== id.ino && this.objectsByIno(id.ino).length === 0) {
      // So when a name takes a new inode whose number no object here had (the apply path's temp file renamed
      // over it, a program's replace): the number was freed and handed out again. Before, a server's link to a
      // name removed here, noted with that number, joined this file (chaos s78 seed 9302, c4: beta/b.conflict-…,
      // written by the server a moment after the removal freed the number; "hard links grouped otherwise").
      this.#forgetRemovedLinksAt(id.ino);
    }
    this.#st.identity.run(id.ino, id.mtimeNs, id.ctimeNs, id.racy ? 1 : 0, d.fid);
    if (d.kind === 'write' || d.kind === 'truncate' || d.kind === 'setattr' || d.kind === 'link') {
      // Every name of the inode sees the same stat (a new link moves the ctime of the others).
      this.#st.identityByIno.run(id.mtimeNs, id.ctimeNs, id.racy ? 1 : 0, id.ino);
    }
  }

  /**
   * The object table after `d`, at `version`. For a change of a file's content or attributes, returns every
   * name of its inode here when it has more than one (sorted fids, see KmlRecord.links), else [] (one name);
   * null for other changes. `d.links`, a server's grouping, gives its names the version too where this
   * node's grouping differs.
   */
  #applyToObjects(d: RecordDraft & { readonly links?: readonly Fid[] | null }, cur: ObjectRow | undefined, version: Tid): Fid[] | null {
    const need = (): ObjectRow => {
      if (cur === undefined) throw new Error(`commit ${d.kind} ${d.path}: no object ${d.fid}`);
      return cur;
    };
    switch (d.kind) {
      case 'create':
      case 'mkdir':
      case 'symlink':
      case 'link': {
        const type: ObjectType = d.kind === 'mkdir' ? 'dir' : d.kind === 'symlink' ? 'symlink' : 'file';
        // A new name of an inode shows what the inode holds now: its target's content and attributes, not
        // those the record carries (made where the link was made, perhaps before a later write came here).
        const t = d.kind === 'link' && d.target !== null ? this.objectByPath(d.target) : undefined;
        const from = t?.type === 'file' ? t : d;
        const obj: ObjectState = {
          fid: d.fid, path: d.path, type, version, mode: from.mode, uid: from.uid, gid: from.gid, mtimeMs: from.mtimeMs,
          size: type === 'file' ? from.size : null, hash: type === 'file' ? from.hash : null,
          target: type === 'symlink' ? d.target : null,
        };
        this.#st.insert.run(obj);
        this.#digest = digestAdd(this.#digest, obj);
        return null;
      }
      case 'write':
      case 'truncate':
      case 'setattr': {
        const o = need();
        const next: ObjectState = {
          ...o, version, mode: d.mode, uid: d.uid, gid: d.gid, mtimeMs: d.mtimeMs,
          // A setattr leaves the content as it is: the size and hash it carries are its origin's, which may hold
          // other content (chaos seed 9205: the server's row took a client's hash its disk never held, for good).
          size: o.type !== 'file' ? null : d.kind === 'setattr' ? o.size : (d.size ?? o.size),
          hash: o.type !== 'file' ? null : d.kind === 'setattr' ? o.hash : (d.hash ?? o.hash),
        };
        this.#replace(o, next);
        if (o.type !== 'file') return null;
        const names: Fid[] = [o.fid];
        if (o.ino !== null) {
          // Hard links share the inode: content, mode, owner and mtime, so every name changes with it, and
          // takes the change's version (a change through one name meets a concurrent one through another).
          for (const sib of this.objectsByIno(o.ino)) {
            if (sib.fid === o.fid || sib.type !== 'file') continue;
            names.push(sib.fid);
            // A name made here and not accepted yet has no version of the server's: its records stay made
            // against none (the server's check follows them from its link record). A change made here (no new
            // version: the LML's) leaves each name its own version, which the names' records are made against.
            // Nor one the server holds apart (not in its `links`): the server did not change that name, and a
            // pending move of it rebased to this version would be refused there for good (made against a
            // version ahead of the server's, a resync). Its content is the link step's (apply/link-align.ts).
            const apart = d.links !== undefined && d.links !== null && !d.links.includes(sib.fid);
            const v = sib.version === NO_VERSION || version === o.version || apart ? sib.version : version;
            // A setattr leaves every name's content as it is, as it does the object's: a name whose row holds other
            // content than this one's (a conflict step set this one to the server's base, its local write still in
            // the inode) keeps it, so that capture sees the difference and journals it. Before, a setattr here gave
            // it this row's hash: the write was journaled nowhere, the digests differed, and the resync placed the
            // server's content over it (test/long/write-hidden-by-rename.test.ts).
            const content = d.kind === 'setattr' ? { size: sib.size, hash: sib.hash } : { size: next.size, hash: next.hash };
            this.#replace(sib, { ...sib, version: v, mode: next.mode, uid: next.uid, gid: next.gid, mtimeMs: next.mtimeMs, ...content });
            // A pending move of that name here is made against the version the name had: the server gave the
            // name this change's version too, and a change of content does not meet a move, so it is made
            // against it now (else refused for ever). Its pending writes are the conflict step's
            // (#changesThroughLinks).
            if (v !== sib.version) this.#st.lmlRebaseNaming.run(v, sib.fid, sib.version);
          }
          // A name of the inode removed here, its removal not accepted yet: the server gave it this version
          // too, so its other records are made against it. Not the removal: it keeps the version it was made
          // against. The server takes it while the inode keeps another name there (a change of content does not
          // meet the removal of one name), and refuses it when the name is the inode's last there, whose content
          // it would destroy unseen; the conflict step then brings the content back (update beats delete,
          // ConflictResolver#restoreRemoved). Before, the removal took this version too: the server's removal
          // of the other name came next, and the removal, made before this change existed, destroyed it on
          // every node (chaos seed 9206, "DESTROYED").
          if (version !== o.version) {
            for (const fid of this.removedLinksOf(o.ino)) {
              if (d.links === undefined || d.links === null || d.links.includes(fid)) this.#st.lmlRebaseFid.run(version, fid);
            }
          }
        }
        // The server's names of the inode that are not this node's (grouped otherwise here, and not set right
        // by the apply path because of changes pending here): they take the version the server gave them.
        if (version !== o.version) {
          for (const fid of d.links ?? []) {
            if (names.includes(fid)) continue;
            const sib = this.objectByFid(fid);
            // A name removed here and its removal not accepted yet, on an inode this node does not group it
            // with (removed before the server linked the name that changed): its removal keeps the version it
            // was made against, as above. (Before, it took this one; refused as made against an older version,
            // it was refused three times and the client resynced, chaos seed 9202: the server now takes it
            // while the inode keeps another name, ApplyPath#baseOf.)
            if (sib?.type !== 'file' || sib.version === NO_VERSION || sib.version === version) continue;
            this.#replace(sib, { ...sib, version });
            this.#st.lmlRebaseNaming.run(version, sib.fid, sib.version);
          }
        }
        return names.length > 1 ? names.sort() : [];
      }
      case 'rename': {
        const o = need();
        const to = d.newPath;
        if (to === null) throw new Error(`commit rename ${d.path}: no new path`);
        if (o.type === 'dir') {
          for (const child of this.objectsBelow(o.path)) {
            const moved = `${to}${child.path.slice(o.path.length)}`;
            this.#digest = digestSub(this.#digest, child);
            this.#digest = digestAdd(this.#digest, { ...child, path: moved });
            this.#st.movePath.run(moved, child.fid);
          }
        }
        // A move changes the name only: the object keeps its attributes, as the disk does (the apply path renames,
        // nothing more). A record's attributes are its origin's at the move: a chmod made with it (capture journals
        // it as a setattr after the move: Reconciler#compare), or older ones when the move was rebased over a
        // peer's chmod. Before, the row took them and the disk did not: journal and disk differed for good, and the
        // next compare with a peer's digest resynced ("other mode").
        this.#replace(o, { ...o, path: to, version });
        return null;
      }
      case 'unlink':
      case 'rmdir': {
        const o = need();
        if (o.type === 'dir' && this.objectsBelow(o.path).length > 0) {
          throw new Error(`commit rmdir ${o.path}: directory still holds objects`);
        }
        this.#st.remove.run(o.fid);
        this.#digest = digestSub(this.#digest, o);
        return null;
      }
    }
  }

  #replace(old: ObjectRow, next: ObjectState): void {
    this.#st.update.run(next);
    this.#digest = digestSub(this.#digest, old);
    this.#digest = digestAdd(this.#digest, next);
  }
}

function num(v: unknown): number {
  return typeof v === 'bigint' ? Number(v) : (v as number);
}

function strOrNull(v: unknown): string | null {
  return v === null || v === undefined ? null : String(v);
}

function toObject(r: Row): ObjectRow {
  return {
    fid: r.fid as Fid,
    path: r.path as string,
    type: r.type as ObjectType,
    version: asTid(r.version as bigint),
    mode: num(r.mode),
    uid: num(r.uid),
    gid: num(r.gid),
    mtimeMs: num(r.mtime_ms),
    size: r.size === null ? null : num(r.size),
    hash: strOrNull(r.hash),
    target: strOrNull(r.target),
    ino: strOrNull(r.ino),
    mtimeNs: r.mtime_ns === null ? null : (r.mtime_ns as bigint),
    ctimeNs: r.ctime_ns === null ? null : (r.ctime_ns as bigint),
    racy: num(r.racy) !== 0,
  };
}

/** The kinds of record that make a new object, and so a new name (a rename gives one too: its newPath). */
const NAMING: ReadonlySet<RecordKind> = new Set(['create', 'mkdir', 'symlink', 'link']);

/** The fields a KML row and an LML row share: the record as its origin made it. */
function draftOf(r: Row): RecordDraft {
  return {
    kind: r.kind as RecordKind,
    fid: r.fid as Fid,
    path: r.path as string,
    newPath: strOrNull(r.new_path),
    target: strOrNull(r.target),
    preVersion: asTid(r.pre_version as bigint),
    mode: num(r.mode),
    uid: num(r.uid),
    gid: num(r.gid),
    mtimeMs: num(r.mtime_ms),
    size: r.size === null ? null : num(r.size),
    hash: strOrNull(r.hash),
    origin: r.origin as NodeId,
    time: num(r.time),
    parent: strOrNull(r.parent) as Fid | null,
    targetFid: strOrNull(r.target_fid) as Fid | null,
  };
}

function toRecord(r: Row): KmlRecord {
  return {
    ...draftOf(r),
    tid: asTid(r.tid as bigint),
    postVersion: asTid(r.post_version as bigint),
    digest: r.digest as string,
    originSeq: r.origin_seq === null || r.origin_seq === undefined ? null : BigInt(r.origin_seq as bigint),
    links: typeof r.links === 'string' ? JSON.parse(r.links) as Fid[] : null,
  };
}

function toLml(r: Row): LmlRecord {
  return { ...draftOf(r), seq: BigInt(r.seq as bigint) };
}

export type { DigestEntry };

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

/** Every prepared statement of a FilesetDb, by name (its type says which exist: no lookup can miss). */
function prepareStatements(db: Db) {
  return {
    setMeta: db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
    byPath: db.prepare('SELECT * FROM objects WHERE path = ?'),
    byFid: db.prepare('SELECT * FROM objects WHERE fid = ?'),
    byIno: db.prepare('SELECT * FROM objects WHERE ino = ?'),
    byHash: db.prepare('SELECT * FROM objects WHERE hash = ? LIMIT 8'),
    below: db.prepare("SELECT * FROM objects WHERE path > ? || '/' AND path < ? || '0' ORDER BY path"),
    childPaths: db.prepare("SELECT path FROM objects WHERE path > ? || '/' AND path < ? || '0' AND instr(substr(path, ?), '/') = 0").pluck(),
    rootPaths: db.prepare("SELECT path FROM objects WHERE instr(path, '/') = 0").pluck(),
    all: db.prepare('SELECT * FROM objects'),
    statRows: db.prepare('SELECT path, type, ino, mode, uid, gid, size, mtime_ns, ctime_ns, racy FROM objects').raw(true),
    count: db.prepare('SELECT count(*) AS n FROM objects'),
    contentRows: db.prepare(`SELECT fid, path, type, printf('0x%016x', version) AS version, size, hash
                             FROM objects WHERE fid IN (SELECT value FROM json_each(?))`).safeIntegers(false),
    insert: db.prepare(`INSERT INTO objects (fid, path, type, version, mode, uid, gid, mtime_ms, size, hash, target)
                        VALUES (@fid, @path, @type, @version, @mode, @uid, @gid, @mtimeMs, @size, @hash, @target)`),
    insertFile: db.prepare(`INSERT INTO objects (fid, path, type, version, mode, uid, gid, mtime_ms, size, hash, target, ino, mtime_ns, ctime_ns, racy)
                            VALUES (?, ?, 'file', ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?)`),
    update: db.prepare(`UPDATE objects SET path = @path, version = @version, mode = @mode, uid = @uid, gid = @gid,
                        mtime_ms = @mtimeMs, size = @size, hash = @hash, target = @target WHERE fid = @fid`),
    movePath: db.prepare('UPDATE objects SET path = ? WHERE fid = ?'),
    remove: db.prepare('DELETE FROM objects WHERE fid = ?'),
    identity: db.prepare('UPDATE objects SET ino = ?, mtime_ns = ?, ctime_ns = ?, racy = ? WHERE fid = ?'),
    identityByIno: db.prepare('UPDATE objects SET mtime_ns = ?, ctime_ns = ?, racy = ? WHERE ino = ?'),
    // A NULL identity makes capture look at the object again (stat, then read if needed).
    forgetIno: db.prepare('UPDATE objects SET ino = NULL, mtime_ns = NULL, ctime_ns = NULL WHERE ino = ? AND fid != ?'),
    kmlInsert: db.prepare(`INSERT INTO kml (tid, kind, fid, path, new_path, target, pre_version, post_version, mode, uid, gid,
                           mtime_ms, size, hash, origin, time, digest, origin_seq, links, parent, target_fid)
                           VALUES (@tid, @kind, @fid, @path, @newPath, @target, @preVersion, @postVersion, @mode, @uid, @gid,
                           @mtimeMs, @size, @hash, @origin, @time, @digest, @originSeq, @links, @parent, @targetFid)`),
    kmlByOrigin: db.prepare('SELECT * FROM kml WHERE origin = ? AND origin_seq = ?'),
    kmlLaterOfFid: db.prepare('SELECT 1 FROM kml WHERE tid > ? AND fid = ? LIMIT 1'),
    kmlLaterOfFidFromOthers: db.prepare('SELECT 1 FROM kml WHERE tid > ? AND fid = ? AND origin != ? LIMIT 1'),
    kmlLastOfName: db.prepare(`SELECT * FROM kml WHERE tid > ? AND tid < ? AND (fid = ? OR links LIKE ?) ORDER BY tid DESC LIMIT 1`),
    kmlNamingChange: db.prepare(`SELECT 1 FROM kml WHERE tid > ? AND tid <= ? AND (fid = ? OR links LIKE ?) AND kind NOT IN ('write', 'truncate', 'setattr') LIMIT 1`),
    kmlForeignContent: db.prepare(`SELECT * FROM kml WHERE tid > ? AND fid = ? AND origin != ? AND kind IN ('write', 'truncate', 'setattr') ORDER BY tid LIMIT 1`),
    kmlLaterRmdir: db.prepare("SELECT * FROM kml WHERE tid > ? AND fid = ? AND kind = 'rmdir' AND origin = ? ORDER BY tid LIMIT 1"),
    kmlLaterRenames: db.prepare("SELECT * FROM kml WHERE tid > ? AND kind = 'rename' ORDER BY tid"),
    kmlHas: db.prepare('SELECT 1 FROM kml WHERE tid = ?'),
    kmlAt: db.prepare('SELECT * FROM kml WHERE tid = ?'),
    lmlInsert: db.prepare(`INSERT INTO lml (seq, kind, fid, path, new_path, target, pre_version, mode, uid, gid, mtime_ms, size, hash, origin, time, parent, target_fid)
                           VALUES (@seq, @kind, @fid, @path, @newPath, @target, @preVersion, @mode, @uid, @gid, @mtimeMs, @size, @hash, @origin, @time, @parent, @targetFid)`),
    lmlAll: db.prepare('SELECT * FROM lml WHERE seq > ? ORDER BY seq LIMIT ?'),
    lmlRemovals: db.prepare('SELECT * FROM lml WHERE kind = @kind AND (path = @path OR fid = @fid) ORDER BY seq'),
    lmlGet: db.prepare('SELECT * FROM lml WHERE seq = ?'),
    lmlDelete: db.prepare('DELETE FROM lml WHERE seq = ?'),
    lmlCount: db.prepare('SELECT count(*) AS n FROM lml'),
    lmlForFid: db.prepare('SELECT count(*) AS n FROM lml WHERE fid = ?'),
    lmlRebase: db.prepare('UPDATE lml SET pre_version = ? WHERE fid = ? AND pre_version = ? AND seq > ?'),
    // Only what was made against a version of the server's: a name made here keeps its records made against none.
    // Nor a removal: it keeps the version it was made against, which the server's check needs (ApplyPath#baseOf).
    lmlRebaseFid: db.prepare("UPDATE lml SET pre_version = ? WHERE fid = ? AND pre_version != 0 AND kind NOT IN ('create', 'mkdir', 'symlink', 'link', 'unlink')"),
    // A name's own pending move: a change of content or attributes through another name does not meet it (see
    // #applyToObjects).
    lmlRebaseNaming: db.prepare("UPDATE lml SET pre_version = ? WHERE fid = ? AND pre_version = ? AND kind = 'rename'"),
    setVersion: db.prepare('UPDATE objects SET version = ? WHERE fid = ?'),
    lmlPaths: db.prepare('UPDATE lml SET path = ?, new_path = ? WHERE seq = ?'),
    lmlTarget: db.prepare('UPDATE lml SET target = ? WHERE seq = ?'),
    lmlRenames: db.prepare("SELECT * FROM lml WHERE kind = 'rename' ORDER BY seq"),
    lmlNaming: db.prepare(`SELECT * FROM lml WHERE path = @p OR (path > @p || '/' AND path < @p || '0')
                           OR new_path = @p OR (new_path > @p || '/' AND new_path < @p || '0')
                           OR target = @p OR (target > @p || '/' AND target < @p || '0') ORDER BY seq`),
    lmlOfFid: db.prepare('SELECT * FROM lml WHERE fid = ? ORDER BY seq'),
    lmlOnto: db.prepare(`SELECT * FROM lml WHERE (path = ? AND kind IN ('create', 'mkdir', 'symlink', 'link'))
                         OR (kind = 'rename' AND new_path = ?) ORDER BY seq`),
    inflightAdd: db.prepare('INSERT INTO inflight (intent) VALUES (?)'),
    inflightDel: db.prepare('DELETE FROM inflight WHERE id = ?'),
    inflightAll: db.prepare('SELECT * FROM inflight ORDER BY id'),
    conflictAdd: db.prepare(`INSERT INTO conflicts (time, path, kind, policy, decision, remote_tid, remote_node, kept, status, resolution)
                             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    conflictList: db.prepare("SELECT * FROM conflicts WHERE ? = 1 OR status = 'open' ORDER BY id"),
    conflictResolve: db.prepare("UPDATE conflicts SET status = 'resolved', resolution = ?, resolved_at = ? WHERE id = ?"),
    lmlRewrite: db.prepare(`UPDATE lml SET kind = @kind, path = @path, new_path = @newPath, target = @target, mode = @mode, uid = @uid,
                            gid = @gid, mtime_ms = @mtimeMs, size = @size, hash = @hash, parent = @parent, target_fid = @targetFid WHERE seq = @seq`),
    lmlPreVersion: db.prepare('UPDATE lml SET pre_version = ? WHERE seq = ?'),
    lmlDropFid: db.prepare('DELETE FROM lml WHERE fid = ?'),
    lmlDropKind: db.prepare('DELETE FROM lml WHERE fid = ? AND kind = ?'),
    lmlFid: db.prepare('UPDATE lml SET fid = ? WHERE fid = ?'),
    lmlParent: db.prepare('UPDATE lml SET parent = ? WHERE parent = ?'),
    lmlPreVersionOf: db.prepare('UPDATE lml SET pre_version = ? WHERE seq = ?'),
    lmlParentOf: db.prepare('UPDATE lml SET parent = ? WHERE seq = ?'),
    lmlInto: db.prepare('SELECT * FROM lml WHERE parent = ? ORDER BY seq'),
    lmlLinksTo: db.prepare('SELECT 1 FROM lml WHERE target_fid = ? LIMIT 1'),
    lmlToHeir: db.prepare(`UPDATE lml SET fid = @heir, path = @path, pre_version = @version
                           WHERE fid = @fid AND kind IN ('write', 'truncate', 'setattr')`),
    lmlToHeirAt: db.prepare(`UPDATE lml SET fid = @heir, path = @path, pre_version = @version
                             WHERE seq = @seq AND fid = @fid AND kind IN ('write', 'truncate', 'setattr')`),
    objectFid: db.prepare('UPDATE objects SET fid = ?, version = ? WHERE fid = ?'),
    lastRcvdSet: db.prepare(`INSERT INTO last_rcvd (peer, tid, updated) VALUES (?, ?, ?)
                             ON CONFLICT (peer) DO UPDATE SET tid = max(tid, excluded.tid), updated = excluded.updated`),
    lastRcvdGet: db.prepare('SELECT tid FROM last_rcvd WHERE peer = ?'),
    peerUpsert: db.prepare(`INSERT INTO peers (node, replicate, first_seen, last_seen, address) VALUES (?, ?, ?, ?, ?)
                            ON CONFLICT (node) DO UPDATE SET replicate = excluded.replicate, last_seen = excluded.last_seen,
                            address = excluded.address`),
    peersAll: db.prepare('SELECT * FROM peers ORDER BY node'),
    metaGet: db.prepare('SELECT value FROM meta WHERE key = ?'),
    kmlSince: db.prepare('SELECT * FROM kml WHERE tid > ? ORDER BY tid LIMIT ?'),
    kmlCount: db.prepare('SELECT count(*) AS n FROM kml'),
    kmlPrune: db.prepare('DELETE FROM kml WHERE tid < ?'),
    lastRcvdAll: db.prepare('SELECT peer, tid, updated FROM last_rcvd ORDER BY peer'),
  };
}

type Statements = ReturnType<typeof prepareStatements>;
