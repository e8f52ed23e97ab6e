import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Backoff } from '#core/backoff.js';
import type { Clock } from '#core/clock.js';
import { D_REINT } from '#core/debug.js';
import { IntersyncError, type ConflictReason } from '#core/errors.js';
import type { DiskFullState } from '#core/disk-full.js';
import { NO_VERSION, asTid, formatTid, parseTid, type Fid, type Tid } from '#core/ids.js';
import { Signal } from '#core/mutex.js';
import type { Transfers } from '#core/transfers.js';
import type { LmlRecord } from '#core/record.js';
import { isInlineSize } from '#core/format.js';
import { linkOnDisk, removedLink } from '#apply/link-align.js';
import { checkRelPath } from '#core/paths.js';
import { blockLength, missingBlocks, type BlockMap, type BlockMapCache } from '#fsio/blocks.js';
import type { FilesetDb, ObjectRow } from '#journal/fileset-db.js';
import { encodeFrame, helloFrame } from '#net/protocol/frames.js';
import { lmlToWire, parseWireRecord } from '#net/protocol/wire-record.js';
import { parseConflictReason } from '#net/protocol/wire-errors.js';
import type { PeerClient } from '#net/peer-client.js';
import { BODY_BUDGET_S, bodyLimit } from '#net/rate-limit.js';
import { scopesFor, type TokenScopeMode } from '#policy/token-table.js';
import { emptiedLater } from './emptied-later.js';
import { optimiseLml } from './lml-optimiser.js';
import { EMPTY_SHA256, lstatOrNull } from '#fsio/disk.js';
import { sha256Hex } from '#core/sha256.js';

/**
 * How long a record refused again and again waits, from its first refusal, before the refusals ask for a resync.
 * Three tries can come within milliseconds (each new server record wakes the reintegrator), while the answer may be
 * on this node's own disk, not journaled yet: a conflict step's redo that capture journals a moment later (the
 * move that empties a directory whose removal is refused; chaos s65 seed 9279). A resync costs far more than this.
 */
const REFUSAL_PATIENCE_MS = 4000;

export interface ReintegratorDeps {
  readonly db: FilesetDb;
  readonly client: PeerClient;
  readonly root: string;
  readonly node: string;
  readonly serverNode: () => string;
  readonly log: Logger;
  readonly clock: Clock;
  readonly debug: number;
  readonly scopeMode: () => TokenScopeMode;
  readonly leaseMs: () => number;
  /** A local change the server keeps refusing although this node has all the server's records: resync. */
  /** The LML cannot progress: `fid` is the object of the record the server keeps refusing (null: unknown). */
  readonly onStuck: (fid: Fid | null) => void;
  /** A record the server refuses for a name another object has there: the local object goes beside it (true when it did). */
  readonly onNameTaken?: (r: LmlRecord, serverTid: Tid) => boolean;
  /**
   * A pending removal of a file the server refuses as made against an older version of it (`current`: the
   * server's), this node caught up: the conflict step settles it (true when it did, ConflictResolver#restoreRemoved).
   */
  readonly onRemovalOutdated?: (r: LmlRecord, current: Tid) => Promise<boolean>;
  /** Block maps of large files (capture has usually read the file for its record already). */
  readonly blockMaps: BlockMapCache;
  /** Called with the records about to be sent, before they are: what they would destroy on the server can be kept first. */
  readonly beforeSend?: (lml: readonly LmlRecord[]) => Promise<void>;
  /**
   * Runs the exchange of a batch (send, answer, its effect on the LML) apart from the application of the
   * server's records: a conflict step must never rewrite or drop a record that is on its way to the server.
   */
  readonly exclusive?: <T>(fn: () => Promise<T>) => Promise<T>;
  /** This node's disk-full state: a batch that cannot be journaled here for want of space notes it. */
  readonly disk?: DiskFullState;
  /** Where an upload of a large file is listed with its progress while it runs (up). */
  readonly transfers?: Transfers;
}

export interface ReintStatus {
  readonly pending: number;
  readonly sent: number;
  readonly heldTokens: string[];
  readonly waitingForTid: string | null;
  readonly lastError: string | null;
  readonly rejected: number;
  /** LML records the optimiser removed before they were sent. */
  readonly optimisedAway: number;
  /** Every refusal of a local change by the server since start (each try counts). */
  readonly refused: number;
  /** The last refusal, and why. */
  readonly lastRefusal: { readonly seq: string; readonly code: string | null; readonly message: string; readonly at: number } | null;
  /** Wall-clock ms since when every try was refused (null while changes are accepted or none are pending). */
  readonly stuckSince: number | null;
}

const MAX_BATCH_RECORDS = 500;
/** The kinds of record whose attributes the server gives the object (a move keeps them: FilesetDb); see Reintegrator#withAttrsOfNow. */
const SAYS_ATTRS: ReadonlySet<LmlRecord['kind']> = new Set(['create', 'write', 'truncate', 'setattr']);
const OPTIMISE_WINDOW = 20_000;
const MAX_BATCH_BYTES = 16 << 20;

/** Bytes of block frames an upload writes at once. */
const UPLOAD_RUN_BYTES = 4 << 20;

/**
 * Ships the client's LML to the server (reintegration), oldest first, in
 * batches, holding the write token for every scope a batch touches. Accepted
 * records leave the LML (acceptOwn); a conflict waits until the forwarded
 * stream has brought the server's side, whose arrival resolves it.
 */
export class Reintegrator {
  readonly #d: ReintegratorDeps;
  readonly #wake = new Signal();
  readonly #held = new Map<string, number>(); // scope -> when renewed
  readonly #recalled = new Set<string>();
  readonly #tries = new Map<string, number>();
  /** When each refused record was first refused (monotonic ms): a resync waits REFUSAL_PATIENCE_MS from then. */
  readonly #firstRefused = new Map<string, number>();
  #stopped = false;
  #sent = 0;
  #rejected = 0;
  #waitFor: Tid | null = null;
  #waitUntil = 0;
  /** Waiting for the forwarded stream's hello until then (monotonic ms); null when not. */
  #awaitStream: number | null = null;
  #resyncing = 0; // monotonic deadline while a resync asked for runs, else 0
  #lastError: string | null = null;
  #lastActivity = 0;
  #offline = false;
  #optimisedAway = 0;
  #refused = 0;
  #lastRefusal: ReintStatus['lastRefusal'] = null;
  #stuckSince: number | null = null;
  #optimisedAt: { covered: bigint; sent: bigint } | null = null;

  constructor(d: ReintegratorDeps) {
    this.#d = d;
    d.db.onCommit(() => this.#wake.fire());
  }

  wake(): void {
    this.#wake.fire();
  }

  /**
   * Send nothing until the forwarded stream has applied the server's records up to `tid` (or 30 s passed):
   * on (re)connection the server's changes come first, the conflict step runs on them, then the LML goes.
   */
  holdUntil(tid: Tid): void {
    this.#awaitStream = null;
    this.#wake.fire();
    if (this.#d.db.lastRcvdOf(this.#d.serverNode()) >= tid) return;
    this.#waitFor = tid;
    this.#waitUntil = this.#d.clock.monotonic() + 30_000;
  }

  /**
   * A connection to the server begins (a start, or after a cut): send nothing until the forwarded stream has
   * said hello (then holdUntil), so that the server's records come first, as the reconnection sequence says,
   * not whichever request reaches the server first. Before, a client started with pending changes sent them
   * at once: its removal of one name of a hard link went to a server whose stream was about to tell it to
   * resync, or a write through a new link reached a restarted server before the stream brought its change of
   * the file (chaos seed 9218). Armed when the client starts or comes back on line, and after a try that
   * could not reach the server (armed again at each such try); 30 s at most.
   */
  holdForStream(): void {
    this.#awaitStream = this.#d.clock.monotonic() + 30_000;
  }

  /** The resync asked for by onStuck is done (or failed for good): reintegrate again. */
  resumeAfterResync(): void {
    this.#resyncing = 0;
    this.#optimisedAt = null; // the resync moved local objects made on names the server has now: their records too
    this.#wake.fire();
  }

  /** The server wants a token back: reintegrate what is pending, then release it. */
  onRecall(scope: string): void {
    this.#recalled.add(scope);
    this.#wake.fire();
  }

  /** Disconnected on purpose: keep journaling, send nothing until reconnected. */
  setOffline(offline: boolean): void {
    this.#offline = offline;
    if (offline) this.#held.clear(); // the server lets leases lapse; ask again after reconnecting
    this.#wake.fire();
  }

  stop(): void {
    this.#stopped = true;
    this.#wake.fire();
  }

  status(): ReintStatus {
    return {
      pending: this.#d.db.lmlCount(), sent: this.#sent, heldTokens: [...this.#held.keys()].sort(),
      waitingForTid: this.#waitFor === null ? null : formatTid(this.#waitFor), lastError: this.#lastError, rejected: this.#rejected,
      optimisedAway: this.#optimisedAway, refused: this.#refused, lastRefusal: this.#lastRefusal,
      stuckSince: this.#d.db.lmlCount() === 0 ? null : this.#stuckSince,
    };
  }

  async run(): Promise<void> {
    const backoff = new Backoff(100);
    while (!this.#stopped) {
      try {
        const worked = await this.#step();
        this.#d.disk?.ok('reint');
        this.#lastError = null;
        backoff.reset();
        if (!worked) await this.#wake.wait(1000);
      } catch (e) {
        const full = this.#d.disk?.note('reint', e) ?? null;
        const err = full ?? (e instanceof IntersyncError ? e : IntersyncError.IO('reintegrate', this.#d.root, e));
        this.#lastError = err.message;
        this.#d.log.warn({ code: err.code, err: err.message, ...(err.fromPeer ? { peer: 'server' } : {}) }, 'reintegration failed; retrying');
        // The server is away: when it is back, its records come first (holdForStream).
        if (err.code === 'PEER_UNREACHABLE') this.holdForStream();
        // A full disk (here or the server's) is retried every few seconds at most: space may come back any time.
        await this.#wake.wait(backoff.next(err.code === 'DISK_FULL'));
      }
    }
  }

  /** A refused record settled (rewritten, moved, resynced): its count of tries starts again. */
  #forgetRefusals(seq: string): void {
    this.#tries.delete(seq);
    this.#firstRefused.delete(seq);
  }

  /** One round: returns false when there was nothing to do. */
  async #step(): Promise<boolean> {
    const d = this.#d;
    if (this.#offline) return false;
    const waiting = this.#resyncing > 0 || this.#waitFor !== null || this.#awaitStream !== null;
    // A holder that waits (for the stream, for a resync) gives a recalled token back at once: others must not wait on it.
    if (waiting && this.#recalled.size > 0) await this.#releaseTokens(true, true);
    if (this.#resyncing > 0) {
      if (d.clock.monotonic() < this.#resyncing) {
        await this.#wake.wait(200);
        return true;
      }
      this.#resyncing = 0; // the resync never reported back: try again anyway
    }
    if (this.#awaitStream !== null) {
      if (d.clock.monotonic() < this.#awaitStream) {
        await this.#wake.wait(200);
        return true;
      }
      this.#awaitStream = null;
    }
    if (this.#waitFor !== null) {
      if (d.db.lastRcvdOf(d.serverNode()) < this.#waitFor && d.clock.monotonic() < this.#waitUntil) {
        await this.#wake.wait(200);
        return true;
      }
      this.#waitFor = null;
    }
    this.#optimise();
    // What this node had applied of the server's records when it read the batch: a change the server made after
    // it to another name of a file written here is a conflict there (net/unseen-change.ts).
    const seen = formatTid(d.db.lastRcvdOf(d.serverNode()));
    const lml = d.db.readLml(0n, MAX_BATCH_RECORDS);
    if (lml.length === 0) {
      await this.#releaseTokens(false);
      return false;
    }
    await d.beforeSend?.(lml);
    this.#lastActivity = d.clock.monotonic();
    const frames: Buffer[] = [helloFrame({ uuid: d.db.meta.uuid, node: d.node, seen })];
    let bytes = 0;
    // Under a bandwidth limit a batch is what it sends in 2 minutes at most (a server ends a request after 600 s).
    const maxBytes = Math.min(MAX_BATCH_BYTES, (d.client.bwlimit?.rate ?? Infinity) * 120);
    const batch: LmlRecord[] = [];
    // The names this batch makes ahead of each record: the server has them when it reaches it.
    const ahead = new Set<Fid>();
    for (const r0 of lml) {
      if (this.#dropContentGone(r0)) return true;
      const r = this.#moveRebased(this.#sound(r0));
      const { record: withContent, payload } = await this.#withContent(r, ahead);
      const record = this.#withAttrsOfNow(withContent, lml);
      const frame = encodeFrame('record', { r: lmlToWire(record) }, payload);
      if (batch.length > 0 && bytes + frame.length > maxBytes) break;
      frames.push(frame);
      bytes += frame.length;
      batch.push(record);
      if (record.kind === 'create' || record.kind === 'link') ahead.add(record.fid);
    }
    frames.push(encodeFrame('end'));
    const paths = batch.flatMap((r) => (r.newPath === null ? [r.path] : [r.path, r.newPath]));
    await this.#takeTokens(scopesFor(paths, d.scopeMode()));
    const exclusive = d.exclusive ?? (<T>(fn: () => Promise<T>): Promise<T> => fn());
    return exclusive(async () => {
      // A server record applied since the batch was read may have rewritten or dropped some of it (the
      // conflict step): read again, from the LML as it is now.
      const read = lml.slice(0, batch.length);
      if (read.some((r) => !sameLml(r, d.db.lmlRecord(r.seq)))) return true;
      return this.#exchange(batch, frames);
    });
  }

  /** Send a batch read from the LML and take the server's answer into it. */
  async #exchange(batch: readonly LmlRecord[], frames: Buffer[]): Promise<boolean> {
    const d = this.#d;
    const maxSeq = batch[batch.length - 1]!.seq;
    if (maxSeq > BigInt(d.db.getMeta('lml_sent_max') ?? '0')) d.db.setMeta('lml_sent_max', maxSeq.toString());
    const sentBefore = BigInt(d.db.getMeta('lml_sent_max') ?? '0');
    const res = await d.client.reint(d.node, Buffer.concat(frames));
    // The server stops at a refused record: at most one is refused, and nothing after it in this batch was applied.
    const refusal = res.results.find((x) => x.status !== 'accepted' && x.status !== 'skipped' && x.status !== 'retry');
    // The server had no room for a record (its disk is full): no refusal of the change, it goes again as it is.
    const wait = res.results.find((x) => x.status === 'retry');
    d.db.batch(() => {
      for (const result of res.results) {
        if (result.status !== 'accepted') continue;
        d.db.acceptOwn(parseWireRecord(result.r), null, d.clock.now());
        this.#sent++;
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
        if (this.#recalled.size > 0) await this.#releaseTokens(true, true);
        throw new IntersyncError('DISK_FULL', `the server cannot take change ${wait.seq} yet: ${wait.error?.message ?? 'its disk is full'}`, {
          hint: 'free space on the server\'s disk; this node sends it again by itself, nothing is lost', retriable: true, fromPeer: true,
        });
      }
      this.#stuckSince = null;
    } else {
      this.#refused++;
      this.#lastRefusal = { seq: String(refusal.seq), code: refusal.error?.code ?? null, message: refusal.error?.message ?? refusal.status, at: d.clock.now() };
      // Progress is a record accepted: a refusal after some were accepted starts the count again.
      if (res.results.some((x) => x.status === 'accepted')) this.#stuckSince = d.clock.now();
      else this.#stuckSince ??= d.clock.now();
      // What the optimiser could not fold before may fold now: the records accepted ahead of the refused one
      // have left the LML (one of them may have used a name a later create and rename pass through), and
      // the refused one and its followers count as never sent. It runs again before the next try.
      this.#optimisedAt = null;
      const tries = (this.#tries.get(refusal.seq) ?? 0) + 1;
      this.#tries.set(refusal.seq, tries);
      if (tries === 1) this.#firstRefused.set(refusal.seq, d.clock.monotonic());
      const refusedFor = d.clock.monotonic() - (this.#firstRefused.get(refusal.seq) ?? d.clock.monotonic());
      const serverTid = parseTid(res.lastTid) ?? null;
      const caughtUp = serverTid !== null && d.db.lastRcvdOf(d.serverNode()) >= serverTid;
      const refused = d.db.lmlRecord(BigInt(refusal.seq));
      d.log.info({ seq: refusal.seq, kind: refused?.kind, fid: refused?.fid, path: refused?.path, newPath: refused?.newPath ?? undefined, preVersion: refused === undefined ? undefined : formatTid(refused.preVersion), status: refusal.status, code: refusal.error?.code, err: refusal.error?.message, tries }, 'reintegration refused');
      // Why, as the server says it (checked: a peer's answer), not read from the message.
      const why = refusal.status === 'conflict' && caughtUp ? parseConflictReason(refusal.error?.reason) : null;
      const missing = why?.kind === 'missing-parent' ? this.#missingDir(why.parent) : undefined;
      const orphan = why?.kind === 'link-target' && tries >= 2 ? this.#linkWithoutTarget(refusal.seq) : undefined;
      const clash = (why?.kind === 'name-taken' || why?.kind === 'new-name-taken') && tries >= 2 && orphan === undefined ? this.#nameTaken(refusal.seq, why.kind) : undefined;
      const elsewhere = why?.kind === 'elsewhere' && tries >= 2 ? this.#objectElsewhere(refusal.seq, why.here) : undefined;
      const outdated = why?.kind === 'outdated' ? this.#removalOutdated(refusal.seq, why) : undefined;
      const emptied = why?.kind === 'not-empty' && emptiedLater(d.db, BigInt(refusal.seq), why.holds);
      if (emptied) {
        // The directory holds entries on the server that later pending records here take out: it goes after them.
        d.db.moveLmlToEnd(BigInt(refusal.seq));
        this.#forgetRefusals(refusal.seq);
        this.#waitFor = null;
        d.log.warn({ seq: refusal.seq, path: refused?.path }, 'a directory\'s removal refused as not empty on the server: sent again after the pending moves that take its entries out');
      } else if (orphan !== undefined) {
        // A hard link to a name the server does not hold as a file (its target was refused, or kept aside
        // here): it links to another name of the inode here that the server knows, and with none the content
        // goes as a file of its own, rather than a resync that makes the same link again. Before, it always
        // went as a file of its own: two such links to one inode here were two files on the server (chaos
        // seed 9205, c1: beta/d.conflict-…-5f.md and gamma.conflict-…-1b/c, "hard-link group differs").
        const other = this.#otherName(orphan.fid, new Set(), orphan.targetFid ?? null);
        d.db.rewriteLml([this.#linkOrOwnFile(orphan, other)], []);
        this.#forgetRefusals(refusal.seq);
        this.#waitFor = null;
        d.log.warn({ seq: refusal.seq, path: orphan.path, target: orphan.target, linkedTo: other?.path }, other === undefined
          ? 'a hard link whose other name the server does not have: sent as a file of its own'
          : 'a hard link whose other name the server does not have: sent as a link to a name of the inode it has');
      } else if (elsewhere !== undefined) {
        // Made against the server's version of the object, at a name the object no longer has there: the
        // record's name is bookkeeping this node got wrong (the version says it saw the object's last change),
        // and the server's name is the object's. Sent again at it. No resync.
        d.db.rewriteLml([elsewhere.record], []);
        this.#forgetRefusals(refusal.seq);
        this.#waitFor = null;
        this.#optimisedAt = null;
        d.log.warn({ seq: refusal.seq, kind: elsewhere.record.kind, path: elsewhere.was, serverPath: elsewhere.record.path }, 'a pending change named its object where the server does not have it: sent at the server\'s name');
      } else if (outdated !== undefined && (await d.onRemovalOutdated?.(outdated.record, outdated.current)) === true) {
        // A removal the server refuses for a newer version it holds (the name is its inode's last there): nothing
        // the stream brings will change that, and update beats delete. The conflict step brought the server's
        // content back (or sent the removal again, the policy said so). No resync.
        this.#forgetRefusals(refusal.seq);
        this.#waitFor = null;
        this.#optimisedAt = null;
      } else if (clash !== undefined && serverTid !== null && d.onNameTaken?.(clash, serverTid) === true) {
        // Another object has the name on the server, and no record to come will move it: kept beside (keep-both).
        this.#forgetRefusals(refusal.seq);
        this.#waitFor = null;
        this.#optimisedAt = null;
      } else if (missing !== undefined) {
        // A directory the server no longer has (removed there while a conflict step kept it here for what it
        // gained): it is made again on the server, ahead of the records that need it. No resync.
        const fid = d.db.recreateDir(missing.fid, missing.path, d.clock.now());
        this.#forgetRefusals(refusal.seq);
        this.#waitFor = null;
        d.log.warn({ seq: refusal.seq, path: missing.path, fid }, 'a directory kept here is gone on the server: made there again');
      } else if (refusal.status === 'conflict' && caughtUp && tries >= 3 && refusedFor >= REFUSAL_PATIENCE_MS) {
        // Nothing the server forwards will resolve it: rebuild from a snapshot, which keeps the local version
        // beside the server's (keep-both) and drops the change that cannot apply.
        this.#rejected++;
        this.#forgetRefusals(refusal.seq);
        this.#lastError = `change ${refusal.seq} refused by the server: ${refusal.error?.message ?? 'conflict'}`;
        d.log.error({ seq: refusal.seq, err: refusal.error?.message }, 'local change refused by the server; resyncing, the local version is kept beside');
        await this.#releaseAll(); // others must not wait on a holder that cannot reintegrate
        this.#resyncing = d.clock.monotonic() + 60_000; // nothing is sent until the resync is done (resumeAfterResync)
        d.onStuck(d.db.lmlRecord(BigInt(refusal.seq))?.fid ?? null);
      } else if (refusal.status === 'conflict' && serverTid !== null) {
        // The forwarded stream brings the other side, which resolves it. Already caught up: only a newer server
        // record can help, or time (a few seconds, longer each try, before the next try counts).
        this.#waitFor = caughtUp ? asTid(serverTid + 1n) : serverTid;
        this.#waitUntil = d.clock.monotonic() + (caughtUp ? Math.max(500 * tries, tries >= 3 ? REFUSAL_PATIENCE_MS - refusedFor : 0) : 60_000);
      }
    }
    // A recalled token goes back once what needs it is accepted, or at once when the server refused it:
    // the holder then waits for the server's records, and others must not wait on it meanwhile.
    if (this.#recalled.size > 0) await this.#releaseTokens(true, refusal !== undefined);
    return true;
  }

  /**
   * The directory here that a refusal says the server lacks, when making it there again is the answer: it is
   * a directory here, and no pending record of its own makes or moves it (those ship first and say why).
   */
  #missingDir(p: string): ObjectRow | undefined {
    const o = this.#d.db.objectByPath(p);
    if (o === undefined || o.type !== 'dir') return undefined;
    if (this.#d.db.localRecordsOf(o.fid).some((x) => x.kind === 'mkdir' || x.kind === 'rename')) return undefined;
    return o;
  }

  /**
   * A record that makes an object is made against no version: the server refuses a whole batch otherwise, and
   * nothing could be sent any more. A bug elsewhere must not stop reintegration: the record is set right here,
   * loudly.
   */
  #sound(r: LmlRecord): LmlRecord {
    if (!['create', 'mkdir', 'symlink', 'link'].includes(r.kind) || r.preVersion === NO_VERSION) return r;
    this.#d.log.error({ seq: r.seq.toString(), kind: r.kind, path: r.path, preVersion: formatTid(r.preVersion) }, 'a pending record that makes an object named a version; set to none (this is a bug)');
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
  #moveRebased(r: LmlRecord): LmlRecord {
    if (r.kind !== 'rename' || r.preVersion === NO_VERSION) return r;
    const db = this.#d.db;
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
    this.#d.log.info({ seq: r.seq.toString(), path: r.path, newPath: r.newPath ?? undefined, was: formatTid(r.preVersion), now: formatTid(now) }, 'a pending move made against an older version, only content changed since: made against the current one');
    return next;
  }

  /** The pending record a refusal names, at the server's name of its object, when the server refused it for its name alone. */
  #objectElsewhere(seq: string | number, here: string): { record: LmlRecord; was: string } | undefined {
    const r = this.#d.db.lmlRecord(BigInt(seq));
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
  #removalOutdated(seq: string | number, why: Extract<ConflictReason, { kind: 'outdated' }>): { record: LmlRecord; current: Tid } | undefined {
    const r = this.#d.db.lmlRecord(BigInt(seq));
    if (r?.kind !== 'unlink' || why.path !== r.path || parseTid(why.made) !== r.preVersion) return undefined;
    const current = parseTid(why.current);
    return current === undefined || current <= r.preVersion ? undefined : { record: r, current };
  }

  /** The pending record a refusal names, when the server refused it for a name another object has there. */
  #nameTaken(seq: string | number, kind: 'name-taken' | 'new-name-taken'): LmlRecord | undefined {
    const r = this.#d.db.lmlRecord(BigInt(seq));
    if (r === undefined) return undefined;
    const makes = ['create', 'mkdir', 'symlink', 'link'].includes(r.kind) && kind === 'name-taken';
    const moves = r.kind === 'rename' && kind === 'new-name-taken';
    return makes || moves ? r : undefined;
  }

  /** The pending link record a refusal names, when the server refused it for its target (not a file there). */
  #linkWithoutTarget(seq: string | number): LmlRecord | undefined {
    const r = this.#d.db.lmlRecord(BigInt(seq));
    return r?.kind === 'link' ? r : undefined;
  }

  /** Run the optimiser over what is pending (once there is more than one record) and keep its result. */
  #optimise(): void {
    const d = this.#d;
    if (d.db.lmlCount() < 2) return;
    // Never touch a record that may have reached the server already (an answer lost with the connection):
    // only what was never sent is optimised.
    const sent = BigInt(d.db.getMeta('lml_sent_max') ?? '0');
    // Records sent only leave the window: run again only when the window reaches records the last run did
    // not cover, or the sent guard moved back, or after a refusal or a resync (which reset #optimisedAt).
    const last = BigInt(d.db.getMeta('lml_seq') ?? '0');
    const prev = this.#optimisedAt;
    if (prev !== null && prev.covered >= last && sent >= prev.sent) return;
    const all = d.db.readLml(sent, OPTIMISE_WINDOW);
    this.#optimisedAt = { covered: all.length < OPTIMISE_WINDOW ? last : (all.at(-1)?.seq ?? last), sent };
    if (all.length < 2) return;
    const { ship, dropped } = optimiseLml(all);
    if (dropped.length === 0) return;
    const before = new Map(all.map((r) => [r.seq, r]));
    const rewritten = ship.filter((r) => before.get(r.seq) !== r);
    d.db.rewriteLml(rewritten, dropped);
    this.#optimisedAway += dropped.length;
    d.log.info({ pending: all.length, dropped: dropped.length, rewritten: rewritten.length }, 'LML optimised');
  }

  /**
   * A write or truncate never sent whose content left with its object: no name of its inode is here any more and
   * a later record removes it. Dropped: what it wrote is gone here, and shipped empty it would empty the inode's
   * names on the server, where the object may live on (a hard link the server accepted as a name of a file it
   * moved and wrote meanwhile: the write, made against the link's version, emptied that file under every name;
   * chaos s58 seed 9272, test/long/link-written-all-removed.test.ts). The removal that follows still goes.
   */
  #dropContentGone(r: LmlRecord): boolean {
    const d = this.#d;
    if (r.kind !== 'write' && r.kind !== 'truncate') return false;
    if (r.seq <= BigInt(d.db.getMeta('lml_sent_max') ?? '0')) return false; // it may have reached the server
    if (d.db.objectByFid(r.fid) !== undefined) return false;
    if (!d.db.localRecordsOf(r.fid).some((x) => x.seq > r.seq && (x.kind === 'unlink' || x.kind === 'rmdir'))) return false;
    if (this.#linkedHere(r) !== undefined || removedLink(d.db, d.root, r.fid) !== undefined) return false;
    d.db.rewriteLml([], [r.seq]);
    d.log.info({ seq: r.seq.toString(), kind: r.kind, path: r.path }, 'a pending change of content whose object is gone here, removed later: dropped, nothing of it is left to send');
    return true;
  }

  /** The record with the content it names; a file changed since ships its current content instead. */
  async #withContent(r0: LmlRecord, ahead: ReadonlySet<Fid> = new Set()): Promise<{ record: LmlRecord; payload: Buffer | null }> {
    const d = this.#d;
    let r = r0;
    if (r.kind === 'link') {
      // The name it links to is gone here: the server may not have it either. The link still joins that inode
      // through another name of it here that the server knows; with none, it sends the content itself. Before,
      // it always did: the server made a file of its own where this node has a name of the inode, the groups
      // differed for good, and a later write through one of them made the contents differ too ("state
      // differs", a resync; chaos seed 9202, c2: the name linked to was moved here, and the server's removal
      // of it undid the move and removed it).
      // By identity first: the name it linked to may have moved here since, its move pending after the link (the
      // server places a link by its target's fid, RecordDraft.targetFid). Before, found by its name at the time
      // of the link only, a file made here and moved after the link (not accepted yet: no name the server knows
      // of the inode) sent the link as a file of its own: the server held two files where this node held one,
      // for good (chaos seed 9207, c2: alpha/f.json linked to beta/b.txt, which went on to beta/a.txt).
      // A name of the inode that this batch makes ahead of the link counts as one the server knows: two links
      // made here to a name removed here since (neither accepted yet) went as two files of their own, one
      // inode here, two files on the server (chaos seed 9202, c1: beta/d.md, kept beside as a conflict copy,
      // and epsilon/sub/b.txt, both linked to epsilon/a.txt, removed here; "hard-link group differs").
      const byFid = r.targetFid === undefined || r.targetFid === null ? undefined : d.db.objectByFid(r.targetFid);
      const t = byFid?.type === 'file' ? byFid : r.target === null ? undefined : d.db.objectByPath(r.target);
      if (t === undefined || t.type !== 'file') {
        const other = this.#otherName(r.fid, ahead);
        r = this.#linkOrOwnFile(r, other);
      } else if (this.#apartHere(r.fid, t)) {
        // The new name and the name it linked to are two files here now: a resync or a conflict step placed the
        // server's content at the target as a file of its own, and the new name kept the old inode with what was
        // written through it. It goes as what it is here (a name of its inode's other names the server knows, or
        // a file of its own). Before, it went as a link: the server joined it to the target's inode, and the write
        // through it, made against the link's own version, replaced the server's newer content there (chaos s64
        // seed 9226, s63 seed 9222: lost writes; test/long/link-apart-after-resync.test.ts).
        const other = this.#otherName(r.fid, ahead, t.fid);
        r = this.#linkOrOwnFile(r, other);
        // Kept so in the LML (said once, and the batch read before it is read again: Reintegrator#step).
        d.db.rewriteLml([r], []);
        d.log.warn({ seq: r.seq.toString(), path: r.path, target: r0.target, linkedTo: other?.path }, other === undefined
          ? 'a hard link whose name is another file than its target here: sent as a file of its own'
          : 'a hard link whose name is another file than its target here: sent as a link to a name of the inode it has');
      }
    }
    if (r.kind !== 'create' && r.kind !== 'write' && r.kind !== 'truncate') return { record: r, payload: null };
    const o = d.db.objectByFid(r.fid) ?? this.#linkedHere(r)
      // A hard-linked name removed here since, its removal pending: a write through it ships what its inode holds
      // under the name that lives on. Before, it shipped empty: on the server that name is one of the inode's, so
      // the write emptied the other names there until their own write came, and for good had that one been
      // refused (link-versions.test.ts).
      ?? removedLink(d.db, d.root, r.fid);
    const abs = o === undefined || o.type !== 'file' ? null : join(d.root, o.path);
    // Content that cannot be read is empty only when a later record removes the object; otherwise capture has
    // not journaled a move yet: wait for it rather than ship an empty file.
    const removedLater = (): boolean => d.db.localRecordsOf(r.fid).some((x) => x.seq > r.seq && (x.kind === 'unlink' || x.kind === 'rmdir'));
    if (isInlineSize(r.size ?? 0)) {
      let buf: Buffer;
      try {
        buf = abs === null ? Buffer.alloc(0) : readFileSync(abs);
      } catch {
        buf = Buffer.alloc(0);
        if (!removedLater()) throw new IntersyncError('IO', `content of ${r.path} is not readable yet`, { retriable: true, hint: 'retried once capture has caught up' });
      }
      if (abs === null && !removedLater()) throw new IntersyncError('IO', `object ${r.fid} is not here yet`, { retriable: true, hint: 'retried once capture has caught up' });
      if (!isInlineSize(buf.length)) return this.#withContent({ ...r, size: buf.length });
      const hash = buf.length === 0 ? EMPTY_SHA256 : sha256Hex(buf);
      return { record: { ...r, hash, size: buf.length }, payload: buf };
    }
    if (abs === null) return { record: { ...r, hash: EMPTY_SHA256, size: 0 }, payload: Buffer.alloc(0) };
    const got = await d.blockMaps.of(abs);
    if (got === null) throw new IntersyncError('IO', `${r.path} changed while it was read`, { retriable: true, hint: 'retried once capture has caught up' });
    const { map } = got;
    // Shrunk below the delta size since it was journaled: it travels inline, as it is now.
    if (isInlineSize(map.size)) return this.#withContent({ ...r, size: map.size });
    if (!(await d.client.hasContent(map.hash))) await this.#upload(r, abs, map);
    return { record: { ...r, hash: map.hash, size: map.size }, payload: null };
  }

  /**
   * The last pending record of an object that says its attributes (a move says none) carries the mode and owner
   * its row has now. A record carries them as they were when it was journaled, and a later change of the inode's
   * attributes through another of its names is journaled once, for that name: the rows of the others take it
   * (ObjectTable#applyToObjects), their records do not. On the server that change reaches the names it groups with that one; a name sent as a file of its
   * own (a link whose target is gone, #asOwnFile) is not among them, and its own last record set the old mode
   * there. Before, the server's entry kept the old mode for good ("state differs … other mode", a resync; chaos
   * s71 seed 9274, s70 9244, s69 9256; test/long/link-own-file-mode.test.ts, where a move after the write is
   * the third case). `lml`: the records read with it.
   */
  #withAttrsOfNow(r: LmlRecord, lml: readonly LmlRecord[]): LmlRecord {
    if (!SAYS_ATTRS.has(r.kind)) return r;
    const o = this.#d.db.objectByFid(r.fid);
    if (o === undefined || (o.mode === r.mode && o.uid === r.uid && o.gid === r.gid)) return r;
    const after = (x: LmlRecord): boolean => x.fid === r.fid && x.seq > r.seq && SAYS_ATTRS.has(x.kind);
    const later = lml.some(after) || (lml.length >= MAX_BATCH_RECORDS && this.#d.db.localRecordsOf(r.fid).some(after));
    return later ? r : { ...r, mode: o.mode, uid: o.uid, gid: o.gid };
  }

  /** True when the name `fid` and the file `t` are both on disk here, as two inodes. */
  #apartHere(fid: Fid, t: ObjectRow): boolean {
    const own = this.#d.db.objectByFid(fid);
    if (own?.type !== 'file') return false;
    const a = lstatOrNull(join(this.#d.root, own.path));
    const b = lstatOrNull(join(this.#d.root, t.path));
    return a?.type === 'file' && b?.type === 'file' && a.ino !== b.ino;
  }

  /** A pending link sent as a link to `other` (a name of its inode the server knows), or with none as a file of its own. */
  #linkOrOwnFile(r: LmlRecord, other: ObjectRow | undefined): LmlRecord {
    return other === undefined ? this.#asOwnFile(r) : { ...r, target: other.path, targetFid: other.fid };
  }

  /**
   * A pending link sent as a file of its own: a create with the attributes its name has here now, as its content
   * is read now. The link record carries the mode it had when journaled; a change of the inode since, made
   * through another name (a server's chmod applied here, which gives it to every name of the inode and journals
   * nothing of this one), is in the name's row only. Before, the create went with the old mode, the server's
   * entry differed from this node's ("state differs … other mode") and the client resynced (chaos seed 9207:
   * c2 linked delta/g.txt to beta/f.json and replaced beta/f.json off line; the server chmodded, then removed
   * beta/f.json; the conflict step made beta/f.json again as a name of delta/g.txt's inode, which took the chmod).
   */
  #asOwnFile(r: LmlRecord): LmlRecord {
    const o = this.#d.db.objectByFid(r.fid);
    const attrs = o?.type === 'file' ? { mode: o.mode, uid: o.uid, gid: o.gid, mtimeMs: o.mtimeMs } : {};
    return { ...r, ...attrs, kind: 'create', target: null };
  }

  /**
   * A name of the inode `fid` is on here, other than `fid` and `not`, on disk as that inode, that the server knows
   * (accepted) or that the batch being read makes ahead of the record (`ahead`); none: undefined.
   */
  #otherName(fid: Fid, ahead: ReadonlySet<Fid> = new Set(), not: Fid | null = null): ObjectRow | undefined {
    const o = this.#d.db.objectByFid(fid);
    if (o?.type !== 'file') return undefined;
    // The inode its name holds on disk: the row's may lag it (an apply or conflict step that gave the names of
    // an inode a new one). Before, by the row's alone, a link whose row named the old inode found no other name
    // and went as a file of its own while it shared an inode here with a name the server knows: one file here,
    // two on the server, for good (chaos s49 seed 9245, c1: delta/c).
    const ino = lstatOrNull(join(this.#d.root, o.path))?.ino ?? o.ino;
    if (ino === null) return undefined;
    return linkOnDisk(this.#d.db, this.#d.root, ino, fid, (x) => x.fid !== not && (x.version !== NO_VERSION || ahead.has(x.fid)));
  }

  /**
   * A file removed here since, whose inode lives on under a name a pending link gave it: its content is that
   * name's. Before, it shipped empty (nothing to read at its own name), the server's link took that empty
   * inode, and a resync then replaced the client's content with it: a write lost everywhere (chaos seed 9207:
   * create a, link b to it, rename another file over a, all off line).
   */
  #linkedHere(r: LmlRecord): ObjectRow | undefined {
    const db = this.#d.db;
    for (const x of db.readLml(r.seq, 10_000_000)) {
      if (x.kind !== 'link' || (x.targetFid ?? null) !== r.fid) continue;
      const o = db.objectByFid(x.fid);
      if (o?.type === 'file') return o;
    }
    return undefined;
  }

  /** Send the server the blocks of a large file it lacks, compared with its own version of the object. */
  async #upload(r: LmlRecord, abs: string, map: BlockMap): Promise<void> {
    const d = this.#d;
    let theirs: BlockMap | null = null;
    try {
      theirs = await d.client.blockMap(r.fid);
    } catch (e) {
      if (!(e instanceof IntersyncError) || e.code !== 'CONTENT_GONE') throw e;
    }
    const need = missingBlocks(theirs, map);
    // Opened before the request: a file moved away meanwhile is a local matter (retried once capture caught up),
    // not a failure of the server.
    let fd: number;
    try {
      fd = openSync(abs, 'r');
    } catch (e) {
      throw new IntersyncError('IO', `content of ${r.path} is not readable: ${(e as Error).message}`, { retriable: true, hint: 'retried once capture has caught up' });
    }
    const total = need.reduce((n, i) => n + blockLength(map, i), 0);
    const limit = d.client.bwlimit ?? null;
    if (bodyLimit(limit, total) !== limit) {
      d.log.warn({ path: r.path, bytes: total, bwlimit: limit?.rate, budgetS: BODY_BUDGET_S }, 'upload faster than the bandwidth limit: at the limit it would outlast the server\'s request timeout');
    }
    const t = d.transfers?.start('up', r.newPath ?? r.path, map.size, total);
    const head = [helloFrame({ node: d.node }), encodeFrame('content', { map })];
    // The transfer counts the bytes the request body took (at the bandwidth limit's pace), the head's aside.
    let skip = head.reduce((n, b) => n + b.length, 0);
    const onSent = (n: number): void => {
      const h = Math.min(skip, n);
      skip -= h;
      t?.add(n - h);
    };
    const frames = async function* (): AsyncGenerator<Buffer> {
      yield* head;
      // Frames go out 4 MiB at a time: one write per block made each a wake-up of both ends.
      let run: Buffer[] = [];
      let runBytes = 0;
      for (const i of need) {
        const len = blockLength(map, i);
        const buf = Buffer.allocUnsafe(len);
        if (readSync(fd, buf, 0, len, i * map.blockSize) !== len) throw new IntersyncError('IO', `${r.path} shrank while uploaded`, { retriable: true, hint: 'retried once capture has caught up' });
        run.push(encodeFrame('block', { index: i }, buf));
        runBytes += len;
        if (runBytes >= UPLOAD_RUN_BYTES) {
          yield Buffer.concat(run);
          run = [];
          runBytes = 0;
        }
      }
      if (run.length > 0) yield Buffer.concat(run);
      yield encodeFrame('end');
    };
    try {
      await d.client.upload(r.fid, frames(), { bytes: total, onSent });
    } finally {
      t?.end();
      closeSync(fd);
    }
    d.log.info({ path: r.path, blocks: map.blocks.length, sent: need.length }, 'uploaded');
  }

  async #takeTokens(scopes: string[]): Promise<void> {
    const d = this.#d;
    const now = d.clock.monotonic();
    for (const scope of scopes) {
      const renewed = this.#held.get(scope);
      if (renewed !== undefined && now - renewed < d.leaseMs() / 3) continue;
      await d.client.token(d.node, scope, 'acquire', 5000);
      this.#held.set(scope, d.clock.monotonic());
    }
  }

  async #releaseAll(): Promise<void> {
    for (const scope of [...this.#held.keys()]) {
      await this.#d.client.token(this.#d.node, scope, 'release');
      this.#held.delete(scope);
      this.#recalled.delete(scope);
    }
  }

  /** Give back recalled tokens once nothing pending needs them; all of them when idle for half a lease. */
  async #releaseTokens(onlyRecalled: boolean, evenIfPending = false): Promise<void> {
    const d = this.#d;
    const idle = d.clock.monotonic() - this.#lastActivity > d.leaseMs() / 2;
    for (const scope of [...this.#held.keys()]) {
      const recalled = this.#recalled.has(scope);
      if (!recalled && (onlyRecalled || !idle)) continue;
      if (recalled && !evenIfPending && d.db.lmlCount() > 0) {
        const pendingPaths = d.db.readLml(0n, 100_000).flatMap((r) => (r.newPath === null ? [r.path] : [r.path, r.newPath]));
        if (scopesFor(pendingPaths, d.scopeMode()).includes(scope)) continue;
      }
      await d.client.token(d.node, scope, 'release');
      this.#held.delete(scope);
      this.#recalled.delete(scope);
    }
    for (const scope of [...this.#recalled]) if (!this.#held.has(scope)) this.#recalled.delete(scope);
  }
}

/** The same pending record, unchanged (a conflict step rewrites names and versions, or drops it). */
function sameLml(a: LmlRecord, b: LmlRecord | undefined): boolean {
  return b !== undefined && a.kind === b.kind && a.fid === b.fid && a.path === b.path && a.newPath === b.newPath
    && a.preVersion === b.preVersion && a.target === b.target && a.hash === b.hash && a.mode === b.mode;
}
