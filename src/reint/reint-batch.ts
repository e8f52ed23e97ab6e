import { NO_VERSION, asTid, formatTid, type Fid } from '#core/ids.js';
import type { LmlRecord } from '#core/record.js';
import { removedLink } from '#apply/link-align.js';
import { encodeFrame, helloFrame } from '#net/protocol/frames.js';
import { lmlToWire } from '#net/protocol/wire-record.js';
import { withContent } from './reint-content.js';
import { linkedHere } from './reint-links.js';
import type { ReintegratorDeps } from './reint-types.js';

/** The most records a batch holds. */
export const MAX_BATCH_RECORDS = 500;
/** The kinds of record whose attributes the server gives the object (a move keeps them: FilesetDb); see withAttrsOfNow. */
const SAYS_ATTRS: ReadonlySet<LmlRecord['kind']> = new Set(['create', 'write', 'truncate', 'setattr']);
const MAX_BATCH_BYTES = 16 << 20;

/** A batch read from the LML, as it goes to the server, and its wire frames (hello, a frame per record, end). */
export interface Batch {
  readonly batch: readonly LmlRecord[];
  readonly frames: Buffer[];
}

/**
 * The first records of `lml` (the LML's oldest) that fit in one batch, each as it goes (set right, rebased, with
 * its content and its attributes of now), and their frames; `seen`: what this node had applied of the server's
 * records when it read them. Null when a record was dropped on the way: the LML is read again.
 */
export async function buildBatch(
  d: ReintegratorDeps, lml: readonly LmlRecord[], seen: string, after?: { readonly seq: bigint; readonly made: ReadonlySet<Fid> },
): Promise<Batch | null> {
  // `after`: the batch in flight this one follows (pipelined): the server applies this one only once that one
  // applied whole (net/reint-routes.ts), and the names that one makes count as made ahead of this one's records.
  const frames: Buffer[] = [helloFrame({ uuid: d.db.meta.uuid, node: d.node, seen, ...(after === undefined ? {} : { after: after.seq.toString() }) })];
  let bytes = 0;
  // Under a bandwidth limit a batch is what it sends in 2 minutes at most (a server ends a request after 600 s).
  const maxBytes = Math.min(MAX_BATCH_BYTES, (d.client.bwlimit?.rate ?? Infinity) * 120);
  const batch: LmlRecord[] = [];
  // The names this batch makes ahead of each record: the server has them when it reaches it.
  const ahead = new Set<Fid>(after?.made ?? []);
  for (const r0 of lml) {
    if (dropContentGone(d, r0)) return null;
    const r = moveRebased(d, sound(d, r0));
    const { record: filled, payload } = await withContent(d, r, ahead);
    const record = withAttrsOfNow(d, filled, lml);
    const frame = encodeFrame('record', { r: lmlToWire(record) }, payload);
    if (batch.length > 0 && bytes + frame.length > maxBytes) break;
    frames.push(frame);
    bytes += frame.length;
    batch.push(record);
    if (record.kind === 'create' || record.kind === 'link') ahead.add(record.fid);
  }
  frames.push(encodeFrame('end'));
  return { batch, frames };
}

/**
 * A record that makes an object is made against no version: the server refuses a whole batch otherwise, and
 * nothing could be sent any more. A bug elsewhere must not stop reintegration: the record is set right here,
 * loudly.
 */
function sound(d: Pick<ReintegratorDeps, 'log'>, r: LmlRecord): LmlRecord {
  if (!['create', 'mkdir', 'symlink', 'link'].includes(r.kind) || r.preVersion === NO_VERSION) return r;
  d.log.error({ seq: r.seq.toString(), kind: r.kind, path: r.path, preVersion: formatTid(r.preVersion) }, 'a pending record that makes an object named a version; set to none (this is a bug)');
  return { ...r, preVersion: NO_VERSION }; // as sent; the record leaves the LML once accepted
}

/**
 * A pending move made against a version of its object older than the one this node holds, where every record
 * since changed content or attributes only (a peer's write or chmod, through any name of the inode): made
 * against the one it holds, in the LML too. A change of content does not meet a move; the stream's records
 * rebase a pending move so as they apply (FilesetDb, KmlRecord.links), and where one was missed the server
 * refused the move three times as made against an older version, and the client resynced (chaos s49 seed
 * 9258, c3; test/reintegrator.test.ts).
 */
function moveRebased(d: Pick<ReintegratorDeps, 'db' | 'log'>, r: LmlRecord): LmlRecord {
  if (r.kind !== 'rename' || r.preVersion === NO_VERSION) return r;
  const db = d.db;
  const o = db.objectByFid(r.fid);
  if (o === undefined || o.version === NO_VERSION) return r;
  // The server's version of it: the last record of the stream that named it, or the row's (this node's own
  // change, accepted), whichever is later. By the journal, not the row alone: a record that named the object
  // through another name of its inode may have left the row as it was (grouped otherwise here; chaos s49 seed
  // 9252, c1).
  const named = db.lastVersionOf(r.fid, r.preVersion, asTid(1n << 62n))?.tid ?? NO_VERSION;
  const now = named > o.version ? named : o.version;
  if (now <= r.preVersion || !db.onlyContentSince(r.fid, r.preVersion, now)) return r;
  const next = { ...r, preVersion: now };
  db.rebaseLml(r.seq, now);
  d.log.info({ seq: r.seq.toString(), path: r.path, newPath: r.newPath ?? undefined, was: formatTid(r.preVersion), now: formatTid(now) }, 'a pending move made against an older version, only content changed since: made against the current one');
  return next;
}

/**
 * A write or truncate never sent whose content left with its object: no name of its inode is here any more and
 * a later record removes it. Dropped: what it wrote is gone here, and shipped empty it would empty the inode's
 * names on the server, where the object may live on (a hard link the server accepted as a name of a file it
 * moved and wrote meanwhile: the write, made against the link's version, emptied that file under every name;
 * chaos s58 seed 9272, test/long/link-written-all-removed.test.ts). The removal that follows still goes.
 */
function dropContentGone(d: Pick<ReintegratorDeps, 'db' | 'root' | 'log'>, r: LmlRecord): boolean {
  if (r.kind !== 'write' && r.kind !== 'truncate') return false;
  if (r.seq <= BigInt(d.db.getMeta('lml_sent_max') ?? '0')) return false; // it may have reached the server
  if (d.db.objectByFid(r.fid) !== undefined) return false;
  if (!d.db.localRecordsOf(r.fid).some((x) => x.seq > r.seq && (x.kind === 'unlink' || x.kind === 'rmdir'))) return false;
  if (linkedHere(d, r) !== undefined || removedLink(d.db, d.root, r.fid) !== undefined) return false;
  d.db.rewriteLml([], [r.seq]);
  d.log.info({ seq: r.seq.toString(), kind: r.kind, path: r.path }, 'a pending change of content whose object is gone here, removed later: dropped, nothing of it is left to send');
  return true;
}

/**
 * The last pending record of an object that says its attributes (a move says none) carries the mode and owner
 * its row has now. A record carries them as they were when it was journaled, and a later change of the inode's
 * attributes through another of its names is journaled once, for that name: the rows of the others take it
 * (ObjectTable#applyToObjects), their records do not. On the server that change reaches the names it groups with that one; a name sent as a file of its
 * own (a link whose target is gone, asOwnFile) is not among them, and its own last record set the old mode
 * there. Before, the server's entry kept the old mode for good ("state differs … other mode", a resync; chaos
 * s71 seed 9274, s70 9244, s69 9256; test/long/link-own-file-mode.test.ts, where a move after the write is
 * the third case). `lml`: the records read with it.
 */
function withAttrsOfNow(d: Pick<ReintegratorDeps, 'db'>, r: LmlRecord, lml: readonly LmlRecord[]): LmlRecord {
  if (!SAYS_ATTRS.has(r.kind)) return r;
  const o = d.db.objectByFid(r.fid);
  if (o === undefined || (o.mode === r.mode && o.uid === r.uid && o.gid === r.gid)) return r;
  const after = (x: LmlRecord): boolean => x.fid === r.fid && x.seq > r.seq && SAYS_ATTRS.has(x.kind);
  const later = lml.some(after) || (lml.length >= MAX_BATCH_RECORDS && d.db.localRecordsOf(r.fid).some(after));
  return later ? r : { ...r, mode: o.mode, uid: o.uid, gid: o.gid };
}
