import { join } from 'node:path';
import { IntersyncError } from '#core/errors.js';
import { formatTid } from '#core/ids.js';
import type { KmlRecord, LmlRecord } from '#core/record.js';
import type { Staged } from '#apply/apply-path.js';
import { joinLinks } from '#apply/link-align.js';
import type { InflightNote, Journaler, Recovering } from '#apply/record-applier.js';
import { lstatOrNull } from '#fsio/disk.js';
import type { StatIdentity } from '#journal/fileset-db.js';
import { parseWireRecord, recordToWire } from '#net/protocol/wire-record.js';
import { contentBehind, noteBehind, placedContent, writtenSince } from './client-catch-up.js';
import { linkAlign, type ClientState } from './client-state.js';

/**
 * The Journaler of a client's forwarded record (applyForwarded in client-apply.ts): the server's record is
 * journaled with the server's TID and moves the server's last_rcvd (FilesetDb#commitRemote); content this node
 * placed in its stead (a stand-in, or the server's newer content) is noted behind until the server's comes.
 * Made for one record (it notes the LML's position when made, and what `ready` found for the commit); the
 * start-up recovery of the forwarded records in flight (client-recover.ts) uses one of its own.
 */
export class ForwardJournaler implements Journaler<KmlRecord>, Recovering<KmlRecord> {
  readonly via = 'forward';
  /** Set by `ready`: no file at the object's name yet, so the change places a new inode (the server's names join it only after). */
  placesInode = false;
  readonly #s: ClientState;
  readonly #peer: string;
  /** The LML's position before the content was staged: a write journaled since then was not met by the conflict step. */
  readonly #journaledAt: bigint;
  #content: { hash: string; size: number } | undefined;
  #staged = false;
  #linkedBehind = false;

  constructor(s: ClientState, peer: string) {
    this.#s = s;
    this.#peer = peer;
    this.#journaledAt = s.db.lmlSeq;
  }

  /** A write made here meanwhile through a name of the inode, then the apply path's check (logged with what is pending). */
  check(r: KmlRecord): IntersyncError | null {
    const s = this.#s;
    // Capture may journal a write made here through a name of the inode while the content was fetched: the
    // conflict step has not met it, and the identity check would pass (the journal's stat is the disk's now).
    const since = writtenSince(s, r, this.#journaledAt);
    if (since !== undefined) return IntersyncError.CONFLICT(since, 'written here while the server\'s content was fetched; retried, the conflict step meets it');
    const err = s.apply.check(r);
    if (err !== null) {
      // What this node holds pending for the object, and the pending moves that name it here: what a look at a
      // log needs to tell why (the record is the server's; its path here follows those moves).
      s.log.error({
        tid: formatTid(r.tid), kind: r.kind, fid: r.fid, path: r.path, err: err.message,
        here: s.db.objectByFid(r.fid)?.path ?? null, pending: s.db.localRecordsOf(r.fid).slice(0, 10).map(showPending), moves: s.db.pendingRenames().slice(-10).map(showPending),
      }, 'forwarded record does not apply');
    }
    return err;
  }

  /** The server's names of the inode join it, and what the commit will note behind is read before the change. */
  ready(r: KmlRecord, staged: Staged | null): KmlRecord {
    const s = this.#s;
    const db = s.db;
    // The server's names of the inode join it, before the change goes into it (apply/link-align.ts).
    const joined = joinLinks(linkAlign(s), r);
    if (joined.length > 0) s.log.warn({ tid: formatTid(r.tid), path: r.path, joined }, 'hard links grouped as on the server: names joined the inode');
    // No file at the object's name yet (removed here, brought back by the conflict step for the server's write:
    // update beats delete): the change places a new inode, and the server's names join it only then.
    this.placesInode = r.links !== undefined && r.links !== null && r.links.length > 1 && db.objectByFid(r.fid)?.type === 'file'
      && lstatOrNull(join(s.paths.dir, r.path)) === null;
    this.#content = placedContent(s, r, staged);
    this.#staged = staged !== null;
    const linkTarget = r.kind === 'link' ? r.targetFid ?? (r.target === null ? undefined : db.objectByPath(r.target)?.fid) : undefined;
    this.#linkedBehind = linkTarget !== undefined && linkTarget !== null && contentBehind(s).has(linkTarget);
    if (this.#content !== undefined && staged !== null) {
      s.log.info({ tid: formatTid(r.tid), path: r.path, size: this.#content.size }, 'content of this record no longer on the server: placed what it holds now');
    }
    return r;
  }

  commit(r: KmlRecord, identity: StatIdentity | null): void {
    const s = this.#s;
    const content = this.#content;
    s.db.commitRemote([{ record: r, identity, ...(content === undefined ? {} : { content }) }], this.#peer, s.o.clock.now());
    // Behind until a record or a fetch brings the server's content (a rename or setattr brings none).
    if (content !== undefined) noteBehind(s, r.fid, true);
    else if (this.#staged || r.kind === 'unlink') noteBehind(s, r.fid, false);
    // A link to a name still behind holds its stand-in too: behind as well, so that its content is fetched by
    // its own fid. Before, only the first name was behind; once the server's removal of it came, nothing
    // fetched the link's content, and every client resynced ("other content"; chaos s31, seed 9228).
    if (r.kind === 'link' && this.#linkedBehind) noteBehind(s, r.fid, true);
  }

  note(r: KmlRecord): unknown {
    return recordToWire(r);
  }

  /** The conflict step's own notes (the content it saved to put back) are its to recover. */
  fromNote(note: InflightNote): KmlRecord | null {
    if (this.#s.resolver.recover(note)) return null;
    return parseWireRecord(note.r);
  }

  journaled(r: KmlRecord): boolean {
    return r.tid <= this.#s.db.lastRcvdOf(this.#peer);
  }

  recovered(r: KmlRecord, identity: StatIdentity | null): void {
    const s = this.#s;
    s.db.commitRemote([{ record: r, identity }], this.#peer, s.o.clock.now());
    s.log.info({ tid: formatTid(r.tid), path: r.path }, 'recovered a change that was in flight');
  }
}

/** A pending local record in a log line: seq, kind, names and the version it was made on. */
export function showPending(x: LmlRecord): string {
  return `${x.seq} ${x.kind} ${x.path}${x.newPath === null ? '' : ` -> ${x.newPath}`} @${formatTid(x.preVersion)}`;
}
