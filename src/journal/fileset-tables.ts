import type { Database as Db } from 'better-sqlite3';
import { asTid, type Fid, type NodeId, type Tid } from '#core/ids.js';
import type { KmlRecord, LmlRecord, ObjectType } from '#core/record.js';
import type { StatIdentity } from '#fsio/disk.js';
import { num, strOrNull, toLml, toObject, toRecord, type ConflictRow, type ContentRow, type ObjectRow, type Row, type StatRow } from './rows.js';
import { SnapshotReader } from './snapshot-reader.js';
import type { Statements } from './statements.js';
import type { RemovedLinks } from './removed-links.js';
import type { FilesetMeta } from './store-open.js';

/**
 * A fileset database's tables: every query, and the writes that are one statement with no transaction,
 * commit notification or in-memory counter of their own (side tables, single fields of a row). FilesetDb
 * extends it with every commit; the parts of FilesetDb read through it.
 */
export class FilesetTables {
  readonly file: string;
  readonly meta: FilesetMeta;
  readonly #db: Db;
  readonly #st: Statements;
  readonly #removed: RemovedLinks;

  protected constructor(file: string, meta: FilesetMeta, db: Db, st: Statements, removed: RemovedLinks) {
    this.file = file;
    this.meta = meta;
    this.#db = db;
    this.#st = st;
    this.#removed = removed;
  }

  close(): void {
    this.#db.close();
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

  /**
   * Copy what the WAL holds into the database now (PASSIVE: readers are not waited for), so the WAL starts over
   * from its beginning at the next commit: a first journaling's long run of commits keeps it small this way.
   */
  checkpoint(): void {
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

  /**
   * Path and stat data of the objects directly in directory `dir` ('' for the root): the start-up scan compares
   * one directory at a time, so no map of the whole table is held (1M objects made one of about 1 GB). The query
   * reads the path index over everything below `dir` and keeps the direct entries; the root's reads the table once.
   */
  childStatRows(dir: string): Map<string, StatRow> {
    // all(), not iterate(): a directory's rows are few, and better-sqlite3's iterator costs more per row.
    const rows = dir === '' ? this.#st.rootStatRows.all() : this.#st.childStatRows.all(dir, dir, dir.length + 2);
    return statMap(rows as unknown[][]);
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

  /** Pending local records of one object, oldest first. */
  localRecordsOf(fid: Fid): LmlRecord[] {
    return (this.#st.lmlOfFid.all(fid) as Row[]).map(toLml);
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
   * A record of the object itself (not through another name of its inode) later than `tid` is in the journal,
   * from another node than `notFrom` when given. Client side: an own change the server accepted, whose answer
   * came before the stream brought the server's older records. Server side: the object changed since a
   * removal's version (oneNameOf (apply/record-check.ts)), by another node than the one removing it.
   */
  /** Each object's last record after `tid` (one read for many hasLaterRecord questions about one moment of the KML). */
  lastRecordsAfter(tid: Tid): Map<string, Tid> {
    return new Map((this.#st.kmlLastByFidAfter.all(tid) as Row[]).map((r) => [String(r.fid), BigInt(r.tid as number | bigint) as Tid]));
  }

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

  lastRcvd(): Array<{ peer: string; tid: Tid; updated: number }> {
    return (this.#st.lastRcvdAll.all() as Row[]).map((r) => ({
      peer: String(r.peer), tid: asTid(r.tid as bigint), updated: Number(r.updated),
    }));
  }

  /** Client side: the names of hard-linked files removed here that had inode `ino` (RemovedLinks#removedLinksOf). */
  removedLinksOf(ino: string): Fid[] {
    return this.#removed.removedLinksOf(ino);
  }

  /** The inode a hard-linked name removed here had, until the stream brings its removal back (see removedLinksOf). */
  removedLinkIno(fid: Fid): string | null {
    return this.#removed.removedLinkIno(fid);
  }

  /** The names of inode `from` that a new file took over with its content now hold inode `to` (ApplyPath, a peer's write): so do the names removed here that it had. */
  inodeReplaced(from: string, to: string): void {
    this.#removed.inodeReplaced(from, to);
  }

  /**
   * A name removed here (its removal pending) whose inode the server linked a new name to: that name, placed as
   * a file of its own here, holds the inode the removed name has there (ClientNode, a link to a removed name).
   */
  noteRemovedLinkAt(fid: Fid, ino: string): void {
    this.#removed.noteRemovedLink(fid, ino);
  }

  /** A name removed here is back (a conflict step dropped its removal): it is no longer a removed name of any inode. */
  forgetRemovedLink(fid: Fid): void {
    this.#removed.noteRemovedLink(fid, null);
  }

  /** Record that the stat identity of an object changed without a change to its state (for example a touch of a directory). */
  setIdentity(fid: Fid, id: StatIdentity): void {
    this.#st.identity.run(id.ino, id.mtimeNs, id.ctimeNs, id.racy ? 1 : 0, fid);
  }

  /**
   * A fresh first copy fills the object table faster without its content-hash
   * index (random keys, a page written per row); finishCopy builds it again in
   * one sort, and so does the next open after a crash in between.
   */
  deferHashIndex(): void {
    this.#db.exec('DROP INDEX IF EXISTS objects_hash');
  }
}

function statMap(rows: readonly unknown[][]): Map<string, StatRow> {
  const out = new Map<string, StatRow>();
  for (const r of rows) {
    out.set(r[0] as string, {
      type: r[1] as ObjectType, ino: r[2] as string | null, mode: Number(r[3]), uid: Number(r[4]), gid: Number(r[5]),
      size: r[6] === null ? null : Number(r[6]), mtimeNs: r[7] as bigint | null, ctimeNs: r[8] as bigint | null, racy: Number(r[9]) !== 0,
    });
  }
  return out;
}
