import { digestAdd, digestSub } from '#core/digest.js';
import { NO_VERSION, type Fid, type Tid } from '#core/ids.js';
import type { KmlRecord, RecordDraft } from '#core/record.js';
import type { StatIdentity } from '#fsio/disk.js';
import type { FilesetTables } from './fileset-tables.js';
import type { LmlRewriter } from './lml-rewriter.js';
import type { ObjectTable } from './object-table.js';
import type { RemovedLinks } from './removed-links.js';
import { CREATE_KINDS, type ObjectRow } from './rows.js';
import { insertKml, type Statements } from './statements.js';

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

/** The counters the client's commits move (FilesetDb writes the first three to meta, and restores them on a rollback). */
interface ClientState {
  lastTid: Tid;
  digest: bigint;
  lmlSeq: bigint;
  relocations: number;
}

/**
 * The client-only commits: records from the server applied over the LML, the server's acceptance of this
 * node's own, the first copy, and the conflict steps' changes to rows and pending records. Every method runs
 * inside FilesetDb's transaction.
 */
export class ClientCommits {
  readonly #st: Statements;
  readonly #tables: FilesetTables;
  readonly #objects: ObjectTable;
  readonly #lml: LmlRewriter;
  readonly #removed: RemovedLinks;
  readonly #state: ClientState;

  constructor(st: Statements, tables: FilesetTables, objects: ObjectTable, lml: LmlRewriter, removed: RemovedLinks, state: ClientState) {
    this.#st = st;
    this.#tables = tables;
    this.#objects = objects;
    this.#lml = lml;
    this.#removed = removed;
    this.#state = state;
  }

  /**
   * Client side: a name made a name of `from`'s inode here (as the server groups them, see apply/link-align.ts)
   * shows that inode's content and attributes. Its version stays: the record applied next gives it one.
   */
  joinInode(fid: Fid, from: ObjectRow, identity: StatIdentity): void {
    const x = this.#tables.objectByFid(fid);
    if (x === undefined) return;
    this.#objects.replace(x, { ...x, mode: from.mode, uid: from.uid, gid: from.gid, mtimeMs: from.mtimeMs, size: from.size, hash: from.hash });
    this.#tables.setIdentity(fid, identity);
  }

  /**
   * Client side: apply records from the server with the server's TIDs (after
   * the apply path changed the disk), in TID order, and move last_rcvd.
   */
  commitRemote(changes: readonly RemoteChange[], peer: string, now: number): void {
    for (const { record: r, identity, content } of changes) {
      if (this.#st.kmlHas.get(r.tid) !== undefined) {
        this.#st.lastRcvdSet.run(peer, r.tid, now); // applied already
        continue;
      }
      // A version newer than the record's is this node's own change, accepted after it (ApplyPath#baseOf):
      // the record applies under it, and the server's object has that version after both, as this node's.
      const o = CREATE_KINDS.has(r.kind) ? undefined : this.#tables.objectByFid(r.fid);
      const ahead = o !== undefined && o.version > r.tid;
      const cur = this.#objects.current(ahead ? { ...r, preVersion: o.version } : r);
      const version = ahead ? o.version : r.tid;
      this.#objects.applyMade(content === undefined ? r : { ...r, hash: content.hash, size: content.size }, cur, version, identity);
      // The server moved it first: local records below (or of) it name it where it is now.
      if (r.kind === 'rename' && r.newPath !== null && cur !== undefined) this.#lml.moveLml(r.fid, cur.path, r.newPath);
      insertKml(this.#st, r);
      if (r.tid > this.#state.lastTid) this.#state.lastTid = r.tid;
      this.#st.lastRcvdSet.run(peer, r.tid, now);
    }
  }

  /**
   * Client side: a record from the server that this node refuses to apply (an escaping symlink under
   * safe-links, or a later change of one): kept in the KML as the server's history, last_rcvd moved,
   * the object table and the digest untouched (the disk holds nothing of it).
   */
  skipRemote(r: KmlRecord, peer: string, now: number): void {
    if (this.#st.kmlHas.get(r.tid) === undefined) {
      insertKml(this.#st, r);
      if (r.tid > this.#state.lastTid) this.#state.lastTid = r.tid;
    }
    this.#st.lastRcvdSet.run(peer, r.tid, now);
  }

  /**
   * Client side: file `fid` now holds the peer's current content, placed without a record of its own (the
   * record that made it came when the peer no longer held that content; a later one named it again). The
   * version stays; hard links to it change with it, as with a write.
   */
  setContent(fid: Fid, hash: string, size: number, identity: StatIdentity | null): void {
    const o = this.#tables.objectByFid(fid);
    if (o === undefined || o.type !== 'file') throw new Error(`set content of ${fid}: no such file`);
    const d: RecordDraft = {
      kind: 'write', fid: o.fid, path: o.path, newPath: null, target: null, preVersion: o.version, mode: o.mode, uid: o.uid, gid: o.gid,
      mtimeMs: o.mtimeMs, size, hash, origin: this.#tables.meta.nodeId, time: 0,
    };
    this.#objects.applyToObjects(d, o, o.version);
    this.#objects.setIdentity(d, identity);
  }

  /**
   * Client side: file `fid` now has the peer's attributes, set without a record of its own (a change the peer
   * made to another name of its inode, which is not one inode with this name here). The version stays.
   */
  setAttrs(fid: Fid, a: Pick<RecordDraft, 'mode' | 'uid' | 'gid' | 'mtimeMs'>, identity: StatIdentity | null): void {
    const o = this.#tables.objectByFid(fid);
    if (o === undefined || o.type !== 'file') throw new Error(`set attributes of ${fid}: no such file`);
    const d: RecordDraft = {
      kind: 'setattr', fid: o.fid, path: o.path, newPath: null, target: null, preVersion: o.version, mode: a.mode, uid: a.uid, gid: a.gid,
      mtimeMs: a.mtimeMs, size: o.size, hash: o.hash, origin: this.#tables.meta.nodeId, time: 0,
    };
    this.#objects.applyToObjects(d, o, o.version);
    this.#objects.setIdentity(d, identity);
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
    if (peer !== null) this.#st.lastRcvdSet.run(peer, r.tid, now);
    // The inode a name removed here had is forgotten once the stream brings the removal back, not when the
    // server's answer accepts it: the stream may still bring older server records that name the removed
    // name (it lags behind the answers), a link to it say, which then joins the inode's other names here
    // (applyResolved (daemon/client-apply.ts)). Before, that link became a file of its own and the server held it with
    // the other names as one file, this node as two, for good.
    if (r.kind === 'unlink' && peer !== null) this.#removed.noteRemovedLink(r.fid, null);
    if (this.#st.kmlHas.get(r.tid) !== undefined) return;
    insertKml(this.#st, r);
    const o = this.#tables.objectByFid(r.fid);
    // A name removed here since (its removal pending) has no row: the inode it had is noted (removedLinkIno),
    // and the change through it reached the inode's other names on the server all the same (r.links). Before,
    // they kept their version here, their pending writes (the write through the removed name journaled again
    // as the surviving name's, carrierOf in presto/reconcile-changes.ts) were refused three times as made against an older
    // version, and the client resynced (chaos seed 9202, c1).
    const ino = o === undefined ? this.#removed.removedLinkIno(r.fid) : o.ino;
    // The other names of a hard-linked inode took the version of a change through this one (ObjectTable#applyToObjects).
    // (Not the names made here and not accepted yet: they have no version of the server's, see ObjectTable#applyToObjects.)
    // With the server's names of the inode (r.links), where this node's grouping differs.
    const content = (r.kind === 'write' || r.kind === 'truncate' || r.kind === 'setattr') && (o === undefined || o.type === 'file');
    // Where the server said which names it gave the version (r.links), a name grouped with this one here
    // only (apart on the server) keeps its own: its records are made against that.
    const known = r.links !== undefined && r.links !== null;
    const local = content && ino !== null ? this.#tables.objectsByIno(ino).filter((x) => !known || x.fid === r.fid || r.links!.includes(x.fid)) : [];
    const server = content ? (r.links ?? []).flatMap((fid) => local.some((x) => x.fid === fid) ? [] : [this.#tables.objectByFid(fid)].filter((x) => x !== undefined)) : [];
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
    if (r.tid > this.#state.lastTid) this.#state.lastTid = r.tid;
  }

  /**
   * Client side, first copy: an object of the server's snapshot, applied to
   * the disk already, joins the object table with the server's version. No
   * KML record: the copy starts the client's KML at the snapshot's TID.
   */
  commitCopy(d: RecordDraft, version: Tid, identity: StatIdentity | null): void {
    const old = this.#tables.objectByFid(d.fid);
    if (old !== undefined) {
      this.#st.remove.run(old.fid);
      this.#state.digest = digestSub(this.#state.digest, old);
    }
    this.#objects.applyToObjects({ ...d, preVersion: NO_VERSION }, undefined, version);
    this.#objects.setIdentity(d, identity);
  }

  /**
   * Drop an object (and what is below it) from the table without a record: the first copy removing leftovers.
   * Their pending local records go too: a record of an object that is not here could never be sent (the
   * caller keeps local changes first, see daemon/resync-protect.ts).
   */
  forget(fid: Fid): void {
    const o = this.#tables.objectByFid(fid);
    if (o === undefined) return;
    this.#state.relocations++;
    for (const c of o.type === 'dir' ? this.#tables.objectsBelow(o.path) : []) {
      this.#st.remove.run(c.fid);
      this.#st.lmlDropFid.run(c.fid);
      this.#state.digest = digestSub(this.#state.digest, c);
    }
    this.#st.remove.run(o.fid);
    this.#st.lmlDropFid.run(o.fid);
    this.#state.digest = digestSub(this.#state.digest, o);
  }

  /**
   * Client side, conflict: move a locally created object (never accepted by
   * the server) to `to`, rewriting its pending LML records, so the name is
   * free for the server's object. The caller renamed it on disk already.
   * `lmlFrom`: the name the pending records give it now, where that is not its name on disk (its own pending
   * moves just dropped: LmlRewriter#dropLocal took the records back to its name before them).
   */
  relocateLocal(fid: Fid, to: string, lmlFrom?: string): void {
    const o = this.#tables.objectByFid(fid);
    if (o === undefined) return;
    this.#state.relocations++;
    const from = o.path;
    const move = (p: string): string => (p === from ? to : p.startsWith(`${from}/`) ? `${to}${p.slice(from.length)}` : p);
    for (const c of o.type === 'dir' ? this.#tables.objectsBelow(from) : []) {
      this.#state.digest = digestSub(this.#state.digest, c);
      this.#state.digest = digestAdd(this.#state.digest, { ...c, path: move(c.path) });
      this.#st.movePath.run(move(c.path), c.fid);
    }
    this.#objects.replace(o, { ...o, path: to });
    if ((lmlFrom ?? from) !== to) this.#lml.moveLml(fid, lmlFrom ?? from, to);
  }

  /**
   * Client side, conflict: both sides created a directory at the same name.
   * The local one takes the server's fid and version; its own mkdir record is
   * dropped and the server's record joins the KML.
   */
  adoptDir(localFid: Fid, r: KmlRecord, peer: string, now: number): void {
    this.#st.lmlDropKind.run(localFid, 'mkdir');
    this.#st.lmlFid.run(r.fid, localFid);
    // So do the records of what was made or moved into it here (RecordDraft.parent): the server places them by
    // that fid, wherever the directory is there now. Before, they named a fid the server never had, kept their
    // path, and once the server had moved the directory were refused ("parent d does not exist here"; chaos
    // seed 9203, three refusals and a resync).
    this.#st.lmlParent.run(r.fid, localFid);
    this.#st.lmlRebase.run(r.tid, r.fid, NO_VERSION, 0n);
    this.#st.objectFid.run(r.fid, r.tid, localFid);
    insertKml(this.#st, r);
    this.#st.lastRcvdSet.run(peer, r.tid, now);
    if (r.tid > this.#state.lastTid) this.#state.lastTid = r.tid;
  }
}
