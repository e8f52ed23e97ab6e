import { IntersyncError, type ConflictReason } from '#core/errors.js';
import { D_REINT } from '#core/debug.js';
import { asTid, formatTid, parseTid, type Tid } from '#core/ids.js';
import type { LmlRecord } from '#core/record.js';
import { checkRelPath } from '#core/paths.js';
import type { ObjectRow } from '#journal/fileset-db.js';
import type { ReintResult } from '#net/peer-client.js';
import { parseWireRecord } from '#net/protocol/wire-record.js';
import { parseConflictReason } from '#net/protocol/wire-errors.js';
import { emptiedLater } from './emptied-later.js';
import { linkOrOwnFile, otherName } from './reint-links.js';
import type { ReintState } from './reint-state.js';
import type { ReintegratorDeps } from './reint-types.js';

/**
 * How long a record refused again and again waits, from its first refusal, before the refusals ask for a resync.
 * Three tries can come within milliseconds (each new server record wakes the reintegrator), while the answer may be
 * on this node's own disk, not journaled yet: a conflict step's redo that capture journals a moment later (the
 * move that empties a directory whose removal is refused; chaos s65 seed 9279). A resync costs far more than this.
 */
const REFUSAL_PATIENCE_MS = 4000;

/**
 * After a batch accepted whole, the records the server had by then (other nodes' changes, and this batch's own
 * coming back) are applied here before the next batch goes, for this long at most. A batch holds the exchange
 * lock for its round trip (the server's flush included), and a node that writes all the time sent one as soon as
 * the last was answered: the forwarded stream got the lock for one run between two batches, and other writers'
 * files reached this node seconds late even at 3 writers of 5 files/s (issue 19, item 6; bench --only writers). The server's records first, as
 * the reconnection sequence says; bounded, so a slow stream never holds this node's changes back for long.
 */
const STREAM_FIRST_MS = 500;

type RefusalDeps = Pick<ReintegratorDeps, 'db'>;

/** Send a batch read from the LML and take the server's answer into it. */
export async function exchange(d: ReintegratorDeps, s: ReintState, batch: readonly LmlRecord[], frames: Buffer[]): Promise<boolean> {
  const sent = send(d, batch, frames);
  return takeAnswer(d, s, batch, sent.sentBefore, await sent.answer);
}

/** A batch on its way: the highest sequence number ever sent once it left, and the server's answer to come. */
export interface Sent {
  readonly sentBefore: bigint;
  readonly answer: Promise<ReintResult>;
}

/** Send a batch (noted as sent first: the optimiser leaves what was sent as it was); its answer is taken by takeAnswer. */
export function send(d: ReintegratorDeps, batch: readonly LmlRecord[], frames: Buffer[]): Sent {
  const maxSeq = batch[batch.length - 1]!.seq;
  if (maxSeq > BigInt(d.db.getMeta('lml_sent_max') ?? '0')) d.db.setMeta('lml_sent_max', maxSeq.toString());
  const sentBefore = BigInt(d.db.getMeta('lml_sent_max') ?? '0');
  const answer = d.client.reint(d.node, Buffer.concat(frames));
  // Awaited later, maybe after other awaits (pipelined): a failure meanwhile is not an unhandled rejection.
  answer.catch(() => undefined);
  return { sentBefore, answer };
}

/** Take the server's answer to a batch into the LML (accepted records leave it; a refusal is dealt with). */
export async function takeAnswer(d: ReintegratorDeps, s: ReintState, batch: readonly LmlRecord[], sentBefore: bigint, res: ReintResult): Promise<boolean> {
  const maxSeq = batch[batch.length - 1]!.seq;
  // The server stops at a refused record: at most one is refused, and nothing after it in this batch was applied.
  const refusal = res.results.find((x) => x.status !== 'accepted' && x.status !== 'skipped' && x.status !== 'retry');
  // The server had no room for a record (its disk is full): no refusal of the change, it goes again as it is.
  const wait = res.results.find((x) => x.status === 'retry');
  d.db.batch(() => {
    for (const result of res.results) {
      if (result.status !== 'accepted') continue;
      d.db.acceptOwn(parseWireRecord(result.r), null, d.clock.now());
      s.sent++;
      if ((d.debug & D_REINT) !== 0) d.log.debug({ seq: result.seq }, 'accepted');
    }
    // When nothing was ever sent beyond this batch, the refused record and those after it count as never
    // sent, so the optimiser may rewrite them (a create at a name taken on the server, renamed here since,
    // then ships at its new name).
    if (refusal !== undefined && sentBefore <= maxSeq) d.db.setMeta('lml_sent_max', (BigInt(refusal.seq) - 1n).toString());
  });
  if (refusal === undefined) {
    if (wait !== undefined) {
      // Not a refusal of the change: it goes again as it is. Recalled tokens go back meanwhile (others must
      // not wait on a holder that cannot progress); the run loop logs it (the server's DISK_FULL) and backs off.
      if (s.tokens.anyRecalled()) await s.tokens.release(true, true);
      throw new IntersyncError('DISK_FULL', `the server cannot take change ${wait.seq} yet: ${wait.error?.message ?? 'its disk is full'}`, {
        hint: 'free space on the server\'s disk; this node sends it again by itself, nothing is lost', retriable: true, fromPeer: true,
      });
    }
    s.stuckSince = null;
    const last = parseTid(res.lastTid);
    if (last !== undefined && d.db.lastRcvdOf(d.serverNode()) < last) s.streamFirst = { tid: last, until: d.clock.monotonic() + STREAM_FIRST_MS };
  } else {
    s.refused++;
    s.lastRefusal = { seq: String(refusal.seq), code: refusal.error?.code ?? null, message: refusal.error?.message ?? refusal.status, at: d.clock.now() };
    // Progress is a record accepted: a refusal after some were accepted starts the count again.
    if (res.results.some((x) => x.status === 'accepted')) s.stuckSince = d.clock.now();
    else s.stuckSince ??= d.clock.now();
    // What the optimiser could not fold before may fold now: the records accepted ahead of the refused one
    // have left the LML (one of them may have used a name a later create and rename pass through), and
    // the refused one and its followers count as never sent. It runs again before the next try.
    s.optimisedAt = null;
    const tries = (s.tries.get(refusal.seq) ?? 0) + 1;
    s.tries.set(refusal.seq, tries);
    if (tries === 1) s.firstRefused.set(refusal.seq, d.clock.monotonic());
    const refusedFor = d.clock.monotonic() - (s.firstRefused.get(refusal.seq) ?? d.clock.monotonic());
    const serverTid = parseTid(res.lastTid) ?? null;
    const caughtUp = serverTid !== null && d.db.lastRcvdOf(d.serverNode()) >= serverTid;
    const refused = d.db.lmlRecord(BigInt(refusal.seq));
    d.log.info({ seq: refusal.seq, kind: refused?.kind, fid: refused?.fid, path: refused?.path, newPath: refused?.newPath ?? undefined, preVersion: refused === undefined ? undefined : formatTid(refused.preVersion), status: refusal.status, code: refusal.error?.code, err: refusal.error?.message, tries }, 'reintegration refused');
    // Why, as the server says it (checked: a peer's answer), not read from the message.
    const why = refusal.status === 'conflict' && caughtUp ? parseConflictReason(refusal.error?.reason) : null;
    const missing = why?.kind === 'missing-parent' ? missingDir(d, why.parent) : undefined;
    const orphan = why?.kind === 'link-target' && tries >= 2 ? linkWithoutTarget(d, refusal.seq) : undefined;
    const clash = (why?.kind === 'name-taken' || why?.kind === 'new-name-taken') && tries >= 2 && orphan === undefined ? nameTaken(d, refusal.seq, why.kind) : undefined;
    const elsewhere = why?.kind === 'elsewhere' && tries >= 2 ? objectElsewhere(d, refusal.seq, why.here) : undefined;
    const outdated = why?.kind === 'outdated' ? removalOutdated(d, refusal.seq, why) : undefined;
    const emptied = why?.kind === 'not-empty' && emptiedLater(d.db, BigInt(refusal.seq), why.holds);
    if (emptied) {
      // The directory holds entries on the server that later pending records here take out: it goes after them.
      d.db.moveLmlToEnd(BigInt(refusal.seq));
      s.forgetRefusals(refusal.seq);
      s.waitFor = null;
      d.log.warn({ seq: refusal.seq, path: refused?.path }, 'a directory\'s removal refused as not empty on the server: sent again after the pending moves that take its entries out');
    } else if (orphan !== undefined) {
      // A hard link to a name the server does not hold as a file (its target was refused, or kept aside
      // here): it links to another name of the inode here that the server knows, and with none the content
      // goes as a file of its own, rather than a resync that makes the same link again. Before, it always
      // went as a file of its own: two such links to one inode here were two files on the server (chaos
      // seed 9205, c1: beta/d.conflict-…-5f.md and gamma.conflict-…-1b/c, "hard-link group differs").
      const other = otherName(d, orphan.fid, new Set(), orphan.targetFid ?? null);
      d.db.rewriteLml([linkOrOwnFile(d, orphan, other)], []);
      s.forgetRefusals(refusal.seq);
      s.waitFor = null;
      d.log.warn({ seq: refusal.seq, path: orphan.path, target: orphan.target, linkedTo: other?.path }, other === undefined
        ? 'a hard link whose other name the server does not have: sent as a file of its own'
        : 'a hard link whose other name the server does not have: sent as a link to a name of the inode it has');
    } else if (elsewhere !== undefined) {
      // Made against the server's version of the object, at a name the object no longer has there: the
      // record's name is bookkeeping this node got wrong (the version says it saw the object's last change),
      // and the server's name is the object's. Sent again at it. No resync.
      d.db.rewriteLml([elsewhere.record], []);
      s.forgetRefusals(refusal.seq);
      s.waitFor = null;
      s.optimisedAt = null;
      d.log.warn({ seq: refusal.seq, kind: elsewhere.record.kind, path: elsewhere.was, serverPath: elsewhere.record.path }, 'a pending change named its object where the server does not have it: sent at the server\'s name');
    } else if (outdated !== undefined && (await d.onRemovalOutdated?.(outdated.record, outdated.current)) === true) {
      // A removal the server refuses for a newer version it holds (the name is its inode's last there): nothing
      // the stream brings will change that, and update beats delete. The conflict step brought the server's
      // content back (or sent the removal again, the policy said so). No resync.
      s.forgetRefusals(refusal.seq);
      s.waitFor = null;
      s.optimisedAt = null;
    } else if (clash !== undefined && serverTid !== null && d.onNameTaken?.(clash, serverTid) === true) {
      // Another object has the name on the server, and no record to come will move it: kept beside (keep-both).
      s.forgetRefusals(refusal.seq);
      s.waitFor = null;
      s.optimisedAt = null;
    } else if (missing !== undefined) {
      // A directory the server no longer has (removed there while a conflict step kept it here for what it
      // gained): it is made again on the server, ahead of the records that need it. No resync.
      const fid = d.db.recreateDir(missing.fid, missing.path, d.clock.now());
      s.forgetRefusals(refusal.seq);
      s.waitFor = null;
      d.log.warn({ seq: refusal.seq, path: missing.path, fid }, 'a directory kept here is gone on the server: made there again');
    } else if (refusal.status === 'conflict' && caughtUp && tries >= 3 && refusedFor >= REFUSAL_PATIENCE_MS) {
      // Nothing the server forwards will resolve it: rebuild from a snapshot, which keeps the local version
      // beside the server's (keep-both) and drops the change that cannot apply.
      s.rejected++;
      s.forgetRefusals(refusal.seq);
      s.lastError = `change ${refusal.seq} refused by the server: ${refusal.error?.message ?? 'conflict'}`;
      d.log.error({ seq: refusal.seq, err: refusal.error?.message }, 'local change refused by the server; resyncing, the local version is kept beside');
      await s.tokens.releaseAll(); // others must not wait on a holder that cannot reintegrate
      s.resyncing = d.clock.monotonic() + 60_000; // nothing is sent until the resync is done (resumeAfterResync)
      d.onStuck(d.db.lmlRecord(BigInt(refusal.seq))?.fid ?? null);
    } else if (refusal.status === 'conflict' && serverTid !== null) {
      // The forwarded stream brings the other side, which resolves it. Already caught up: only a newer server
      // record can help, or time (a few seconds, longer each try, before the next try counts).
      s.waitFor = caughtUp ? asTid(serverTid + 1n) : serverTid;
      s.waitUntil = d.clock.monotonic() + (caughtUp ? Math.max(500 * tries, tries >= 3 ? REFUSAL_PATIENCE_MS - refusedFor : 0) : 60_000);
    }
  }
  // A recalled token goes back once what needs it is accepted, or at once when the server refused it:
  // the holder then waits for the server's records, and others must not wait on it meanwhile.
  if (s.tokens.anyRecalled()) await s.tokens.release(true, refusal !== undefined);
  return true;
}

/**
 * The directory here that a refusal says the server lacks, when making it there again is the answer: it is
 * a directory here, and no pending record of its own makes or moves it (those ship first and say why).
 */
function missingDir(d: RefusalDeps, p: string): ObjectRow | undefined {
  const o = d.db.objectByPath(p);
  if (o === undefined || o.type !== 'dir') return undefined;
  if (d.db.localRecordsOf(o.fid).some((x) => x.kind === 'mkdir' || x.kind === 'rename')) return undefined;
  return o;
}

/** The pending record a refusal names, at the server's name of its object, when the server refused it for its name alone. */
function objectElsewhere(d: RefusalDeps, seq: string | number, here: string): { record: LmlRecord; was: string } | undefined {
  const r = d.db.lmlRecord(BigInt(seq));
  if (r === undefined || !['write', 'truncate', 'setattr', 'unlink', 'rmdir', 'rename'].includes(r.kind)) return undefined;
  let at: string;
  try {
    at = checkRelPath(here);
  } catch {
    return undefined; // not a path of the fileset: nothing to do but what a refusal does
  }
  return at === r.path ? undefined : { record: { ...r, path: at }, was: r.path };
}

/**
 * The pending removal of a file a refusal names, when the server refused it as made against an older version
 * of the object, at the name the server has it at, with the server's version (`current`).
 */
function removalOutdated(d: RefusalDeps, seq: string | number, why: Extract<ConflictReason, { kind: 'outdated' }>): { record: LmlRecord; current: Tid } | undefined {
  const r = d.db.lmlRecord(BigInt(seq));
  if (r?.kind !== 'unlink' || why.path !== r.path || parseTid(why.made) !== r.preVersion) return undefined;
  const current = parseTid(why.current);
  return current === undefined || current <= r.preVersion ? undefined : { record: r, current };
}

/** The pending record a refusal names, when the server refused it for a name another object has there. */
function nameTaken(d: RefusalDeps, seq: string | number, kind: 'name-taken' | 'new-name-taken'): LmlRecord | undefined {
  const r = d.db.lmlRecord(BigInt(seq));
  if (r === undefined) return undefined;
  const makes = ['create', 'mkdir', 'symlink', 'link'].includes(r.kind) && kind === 'name-taken';
  const moves = r.kind === 'rename' && kind === 'new-name-taken';
  return makes || moves ? r : undefined;
}

/** The pending link record a refusal names, when the server refused it for its target (not a file there). */
function linkWithoutTarget(d: RefusalDeps, seq: string | number): LmlRecord | undefined {
  const r = d.db.lmlRecord(BigInt(seq));
  return r?.kind === 'link' ? r : undefined;
}
