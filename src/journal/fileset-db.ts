import type { Database as Db } from 'better-sqlite3';
import { digestAdd, formatDigest, type DigestEntry } from '#core/digest.js';
import { NO_VERSION, asTid, formatTid, makeFid, type Fid, type Tid } from '#core/ids.js';
import type { KmlRecord, LmlRecord, RecordDraft } from '#core/record.js';
import type { StatIdentity } from '#fsio/disk.js';
import { ClientCommits, type RemoteChange } from './client-commits.js';
import { FilesetTables } from './fileset-tables.js';
import { LmlRewriter } from './lml-rewriter.js';
import { ObjectTable } from './object-table.js';
import { RemovedLinks } from './removed-links.js';
import type { ObjectRow } from './rows.js';
import { HASH_INDEX } from './schema.js';
import { insertKml, prepareStatements, type Statements } from './statements.js';
import { createStore, loadStore, openStore, type FilesetMeta, type OpenOptions } from './store-open.js';

/** How a node last saw an object on its disk: enough to notice a change without reading the file. */
export type { StatIdentity };
export type { ConflictRow, ContentRow, ObjectRow, SnapshotRow, StatRow } from './rows.js';
export type { FilesetMeta, OpenOptions, RemoteChange, DigestEntry };
export { SnapshotReader } from './snapshot-reader.js';

/** One change to commit: the record and the object's stat identity on this node after it. */
export interface Change {
  readonly draft: RecordDraft;
  readonly identity: StatIdentity | null;
  /** For a reintegrated record: its LML sequence number at its origin. */
  readonly originSeq?: bigint;
}

/**
 * The fileset database: KML, object table and last_rcvd in one SQLite file
 * (WAL). Invariant: a record, the object's new state, the state digest and the
 * last TID change in one transaction, so they never disagree after a crash.
 * Its queries and one-statement writes are FilesetTables'; every commit runs
 * here, in #transaction, whichever part (ObjectTable, LmlRewriter, ClientCommits)
 * does the work.
 */
export class FilesetDb extends FilesetTables {
  readonly #db: Db;
  readonly #st: Statements;
  /** The counters the parts move: #transaction writes the first three to meta, and restores them on a rollback. */
  readonly #state: { lastTid: Tid; digest: bigint; lmlSeq: bigint; relocations: number };
  #fidSeq: bigint;
  #batching = false;
  /** The batch's own transaction is open: commits inside it join it (no savepoint of their own). */
  #batchOpen = false;
  #batchFailed = false;
  /** An open group (openGroup): the state at its start, and whether a commit inside it is still to be told. */
  #group: { readonly lastTid: Tid; readonly digest: bigint; readonly lmlSeq: bigint; notify: boolean } | null = null;
  #savedFidSeq = -1n;
  readonly #listeners: Array<() => void> = [];
  readonly #removed: RemovedLinks;
  readonly #objects: ObjectTable;
  readonly #lml: LmlRewriter;
  readonly #client: ClientCommits;

  private constructor(file: string, db: Db) {
    const s = loadStore(file, db);
    const st = prepareStatements(db);
    const removed = new RemovedLinks(st);
    super(file, s.meta, db, st, removed);
    this.#db = db;
    this.#st = st;
    this.#state = { lastTid: s.lastTid, digest: s.digest, lmlSeq: s.lmlSeq, relocations: 0 };
    this.#fidSeq = s.fidSeq;
    this.#removed = removed;
    this.#objects = new ObjectTable(st, this, removed, this.#state);
    this.#lml = new LmlRewriter(st, this, this.#objects, this.#state, () => this.newFid());
    this.#client = new ClientCommits(st, this, this.#objects, this.#lml, removed, this.#state);
  }

  /** Create a new store at `file` (which must not exist). */
  static create(file: string, meta: FilesetMeta): FilesetDb {
    return new FilesetDb(file, createStore(file, meta));
  }

  /** Open an existing store, refusing a damaged one or one of a format this release does not read. */
  static open(file: string, opts: OpenOptions = {}): FilesetDb {
    return openStore(file, opts, (db) => new FilesetDb(file, db));
  }

  get lastTid(): Tid {
    return this.#state.lastTid;
  }

  /** The sequence number of the last local record journaled (0: none yet); a later one has a greater number. */
  get lmlSeq(): bigint {
    return this.#state.lmlSeq;
  }

  get digest(): bigint {
    return this.#state.digest;
  }

  /**
   * Counts the objects moved or forgotten by another hand than a record (relocateLocal, forget): a resync
   * that maps names through directories it moves as it goes knows when to look at them again.
   */
  get relocations(): number {
    return this.#state.relocations;
  }

  /** A new fid, unique across nodes; persisted with the next commit (an unused fid is harmless). */
  newFid(): Fid {
    this.#fidSeq += 1n;
    return makeFid(this.meta.nodeId, this.#fidSeq);
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

  /** Drop one LML record without it reaching the server (a change the server refused for good). */
  dropLml(seq: bigint): void {
    this.#transaction(() => {
      this.#st.lmlDelete.run(seq);
    });
  }

  /** Client side: drop an object's pending local records (a conflict resolution takes them over; LmlRewriter#dropLocal). */
  dropLocal(fid: Fid): void {
    this.#transaction(() => this.#lml.dropLocal(fid));
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

  /** The pending content and attribute changes of one name of a hard-linked file become `heir`'s (LmlRewriter#moveChangesTo). */
  moveChangesTo(fid: Fid, heir: ObjectRow, names: ReadonlyMap<bigint, string> = new Map()): void {
    this.#transaction(() => this.#lml.moveChangesTo(fid, heir, names));
  }

  /** Client side, conflict: a moved name of a hard-linked file becomes a link to `heir`; returns its new fid (LmlRewriter#movesToLink). */
  movesToLink(fid: Fid, heir: Fid, target: string): Fid {
    return this.#transaction(() => this.#lml.movesToLink(fid, heir, target));
  }

  /** Client side: the pending record `seq` goes last in the LML, under a new sequence number (LmlRewriter#moveLmlToEnd). */
  moveLmlToEnd(seq: bigint): void {
    this.#transaction(() => this.#lml.moveLmlToEnd(seq));
  }

  /** Client side, conflict: the pending record `seq` of `fid` ships with `to` instead of `from` (LmlRewriter#renameInLml). */
  renameInLml(fid: Fid, seq: bigint, from: string, to: string): void {
    this.#transaction(() => this.#lml.renameInLml(fid, seq, from, to));
  }

  /** Client side: the name `fid` shows the content and attributes of `from`'s inode (ClientCommits#joinInode). */
  joinInode(fid: Fid, from: ObjectRow, identity: StatIdentity): void {
    this.#transaction(() => this.#client.joinInode(fid, from, identity));
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
        const tid = asTid(this.#state.lastTid + 1n);
        const cur = this.#objects.current(d);
        const placed = this.#objects.placedOf(d);
        const links = this.#objects.applyMade(d, cur, tid, c.identity);
        this.#state.lastTid = tid;
        const rec: KmlRecord = { ...d, ...placed, tid, postVersion: tid, digest: formatDigest(this.#state.digest), originSeq: c.originSeq ?? null, ...(links === null ? {} : { links }) };
        insertKml(this.#st, rec);
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
        const cur = this.#objects.current(d);
        if (d.kind === 'unlink' && cur?.type === 'file' && cur.ino !== null && this.objectsByIno(cur.ino).some((x) => x.fid !== cur.fid && x.type === 'file')) {
          this.#removed.noteRemovedLink(cur.fid, cur.ino);
        }
        const placed = this.#objects.placedOf(d);
        this.#objects.applyMade(d, cur, cur?.version ?? NO_VERSION, c.identity);
        this.#state.lmlSeq += 1n;
        const rec: LmlRecord = { ...d, ...placed, seq: this.#state.lmlSeq };
        this.#st.lmlInsert.run(rec);
        out.push(rec);
      }
    });
    return out;
  }

  /** Client side: apply records from the server with the server's TIDs, in TID order, and move last_rcvd (ClientCommits#commitRemote). */
  commitRemote(changes: readonly RemoteChange[], peer: string, now: number): void {
    this.#transaction(() => this.#client.commitRemote(changes, peer, now));
  }

  /** Client side: a record from the server that this node refuses to apply joins the KML only (ClientCommits#skipRemote). */
  skipRemote(r: KmlRecord, peer: string, now: number): void {
    this.#transaction(() => this.#client.skipRemote(r, peer, now));
  }

  /** Client side: file `fid` now holds the peer's current content, without a record of its own (ClientCommits#setContent). */
  setContent(fid: Fid, hash: string, size: number, identity: StatIdentity | null): void {
    this.#transaction(() => this.#client.setContent(fid, hash, size, identity));
  }

  /** Client side: file `fid` now has the peer's attributes, without a record of its own (ClientCommits#setAttrs). */
  setAttrs(fid: Fid, a: Pick<RecordDraft, 'mode' | 'uid' | 'gid' | 'mtimeMs'>, identity: StatIdentity | null): void {
    this.#transaction(() => this.#client.setAttrs(fid, a, identity));
  }

  /** Client side: the server accepted one of our LML records and sent it back with its TID (ClientCommits#acceptOwn). */
  acceptOwn(r: KmlRecord, peer: string | null, now: number): void {
    this.#transaction(() => this.#client.acceptOwn(r, peer, now));
  }

  /** Client side, first copy: an object of the server's snapshot joins the object table, with no KML record (ClientCommits#commitCopy). */
  commitCopy(d: RecordDraft, version: Tid, identity: StatIdentity | null): void {
    this.#transaction(() => this.#client.commitCopy(d, version, identity));
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
    this.#state.digest = digestAdd(this.#state.digest, { path: d.path, type: 'file', mode: d.mode, hash: d.hash, target: null });
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
        this.#batchOpen = true;
        try {
          fn();
        } finally {
          this.#batchOpen = false;
        }
        // A commit inside failed and its caller went on: what it half wrote must not land.
        if (this.#batchFailed) throw new Error('a commit inside the batch failed; the whole batch is rolled back');
      });
    } finally {
      this.#batching = false;
    }
  }

  /**
   * Open a group: the commits that follow, each still atomic on its own (a savepoint: one that fails is rolled
   * back alone, as before), reach the WAL as one transaction when closeGroup() runs. Capture journals a batch
   * of names this way (one WAL write instead of one per name). Only for synchronous work: the caller closes the
   * group before anything else may run (an await that waits on I/O or a timer, the end of its slice); listeners
   * (onCommit) hear of its commits when it closes, so no reader sees them before they are committed. A group
   * left open past the current turn of the event loop is closed then (a backstop; capture closes its own). No-op
   * when a group or any transaction is open.
   */
  openGroup(): void {
    if (this.#group !== null || this.#db.inTransaction) return;
    this.#db.exec('BEGIN');
    const g = { lastTid: this.#state.lastTid, digest: this.#state.digest, lmlSeq: this.#state.lmlSeq, notify: false };
    this.#group = g;
    setImmediate(() => {
      if (this.#group === g) this.closeGroup();
    });
  }

  /** An open group is committed first. */
  override close(): void {
    this.closeGroup();
    super.close();
  }

  /** Commit the open group (openGroup), then tell the listeners; throws (all of it rolled back) when the commit fails. */
  closeGroup(): void {
    const g = this.#group;
    if (g === null) return;
    this.#group = null;
    try {
      // The counters the group's commits moved (they write none of their own inside it).
      if (this.#state.lastTid !== g.lastTid) this.#st.setMeta.run('last_tid', this.#state.lastTid.toString());
      if (this.#state.digest !== g.digest) this.#st.setMeta.run('digest', formatDigest(this.#state.digest));
      if (this.#state.lmlSeq !== g.lmlSeq) this.#st.setMeta.run('lml_seq', this.#state.lmlSeq.toString());
      if (this.#fidSeq !== this.#savedFidSeq) {
        this.#st.setMeta.run('fid_seq', this.#fidSeq.toString());
        this.#savedFidSeq = this.#fidSeq;
      }
      this.#db.exec('COMMIT');
    } catch (e) {
      if (this.#db.inTransaction) this.#db.exec('ROLLBACK');
      this.#state.lastTid = g.lastTid;
      this.#state.digest = g.digest;
      this.#state.lmlSeq = g.lmlSeq;
      this.#savedFidSeq = -1n;
      throw e;
    }
    if (g.notify) this.#notify();
  }

  /** Client side, first copy done: the KML starts at `tid`, the stream follows from there. */
  finishCopy(peer: string, tid: Tid, now: number): void {
    this.#db.exec(HASH_INDEX);
    this.#transaction(() => {
      this.#st.setMeta.run('copy_done', formatTid(tid));
      this.#st.lastRcvdSet.run(peer, tid, now);
      if (tid > this.#state.lastTid) this.#state.lastTid = tid;
    });
  }

  /** Drop an object (and what is below it) and its pending records from the table without a record (ClientCommits#forget). */
  forget(fid: Fid): void {
    this.#transaction(() => this.#client.forget(fid));
  }

  /** Client side, conflict: move a locally created object to `to`, with its pending records (ClientCommits#relocateLocal). */
  relocateLocal(fid: Fid, to: string, lmlFrom?: string): void {
    this.#transaction(() => this.#client.relocateLocal(fid, to, lmlFrom));
  }

  /** Client side, conflict: a directory made here at the server's directory's name takes its fid and version (ClientCommits#adoptDir). */
  adoptDir(localFid: Fid, r: KmlRecord, peer: string, now: number): void {
    this.#transaction(() => this.#client.adoptDir(localFid, r, peer, now));
  }

  /** Client side: directory `fid` becomes a new object of this node, made by a mkdir that ships first; returns its fid (LmlRewriter#recreateDir). */
  recreateDir(fid: Fid, at: string, now: number): Fid {
    return this.#transaction(() => this.#lml.recreateDir(fid, at, now));
  }

  #transaction<T>(fn: () => T): T {
    if (this.#batchOpen) {
      // Inside a batch a commit is part of the batch's transaction (no savepoint of its own): if it fails, so does the batch.
      try {
        return fn();
      } catch (e) {
        this.#batchFailed = true;
        throw e;
      }
    }
    const s = this.#state;
    const startTid = s.lastTid;
    const startDigest = s.digest;
    const startLml = s.lmlSeq;
    let out: T;
    try {
      out = this.#db.transaction(() => {
        const r = fn();
        // In a group the counters are written once, when it closes (#writeCounters).
        if (this.#group !== null) return r;
        // Only what moved is written: most commits change the last TID and the digest, few the counters.
        if (s.lastTid !== startTid) this.#st.setMeta.run('last_tid', s.lastTid.toString());
        if (s.digest !== startDigest) this.#st.setMeta.run('digest', formatDigest(s.digest));
        if (this.#fidSeq !== this.#savedFidSeq) {
          this.#st.setMeta.run('fid_seq', this.#fidSeq.toString());
          this.#savedFidSeq = this.#fidSeq;
        }
        if (s.lmlSeq !== startLml) this.#st.setMeta.run('lml_seq', s.lmlSeq.toString());
        return r;
      })();
    } catch (e) {
      s.lastTid = startTid;
      s.digest = startDigest;
      s.lmlSeq = startLml;
      this.#savedFidSeq = -1n; // rolled back: write it again with the next commit
      throw e;
    }
    if (this.#group !== null) this.#group.notify = true; // told when the group commits
    else this.#notify();
    return out;
  }
}
