import type { Logger } from 'pino';
import type { Clock } from '#core/clock.js';
import { digestAdd, digestSub, formatDigest } from '#core/digest.js';
import { IntersyncError } from '#core/errors.js';
import { formatTid, NO_VERSION, type Fid, type Tid } from '#core/ids.js';
import { Mutex } from '#core/mutex.js';
import type { KmlRecord } from '#core/record.js';
import type { ApplyPath } from '#apply/apply-path.js';
import { applyRecord } from '#apply/record-applier.js';
import type { FilesetDb, SnapshotRow } from '#journal/fileset-db.js';
import type { FilesetPaths } from '#journal/layout.js';
import { pagesOf } from '#net/copy-routes.js';
import type { SnapshotEntry } from '#net/snapshot-source.js';
import { RecordFailure, type FollowNext, type RecordSink, type RunRecord, type StreamHello } from '#net/record-follower.js';
import type { MasterHello, MirrorMaster } from './master.js';
import { MirrorJournaler } from './mirror-journaler.js';
import { handCheck, type HandChange } from './hand-check.js';
import { writeSynced } from './pfs.js';

/*
 * A mirror slave as the RecordSink of its master's record stream (net/record-follower.ts runs the loop): each
 * record applied through the one road (applyRecord with a MirrorJournaler), then the proof: the slave's state
 * digest after the record must be the digest the master journaled with it (every KML record carries the digest
 * after it). A run is flushed once (syncfs, WAL checkpoint) and only then named in `synced`. A record that does not
 * apply, or a digest that differs, stops the mirror for good: a slave builds nothing on a state that is not the
 * master's.
 */

/** What a mirror has done so far, for its reports (-v) and its end (--json). */
export interface MirrorCounts {
  records: number;
  /** Records whose digest was compared (equal: a differing one stops the mirror). */
  verified: number;
  /** The master's last TID as last seen. */
  masterTid: Tid;
}

/** Meta key of the objects behind (see MirrorSink#behind). */
export const BEHIND = 'mirror_behind';
/** Past this many objects behind, the records are applied unchecked until fewer are (the check costs one step per object). */
const MAX_BEHIND = 10_000;

export interface MirrorSinkOptions {
  readonly db: FilesetDb;
  readonly apply: ApplyPath;
  readonly paths: FilesetPaths;
  readonly master: MirrorMaster;
  readonly masterNode: string;
  readonly clock: Clock;
  readonly log: Logger;
  /** Objects placed with other content than the master journaled, and the hash it journaled (the first copy's, a run's before a restart). */
  readonly behind: ReadonlyMap<string, string | null>;
  /** --once: stop once this TID is applied. */
  readonly until: Tid | null;
  /** The follower's link: cut when done, so that the loop ends at its next turn. */
  readonly cut: () => void;
}

export class MirrorSink implements RecordSink<MasterHello> {
  readonly #o: MirrorSinkOptions;
  readonly counts: MirrorCounts;
  /**
   * Objects placed with content other than their record's (the master had changed it again when it was read, or
   * removed it), with the hash the master journaled for them: the digest compared counts that hash for them, until
   * a later record of each brings its own. Kept in meta (`mirror_behind`) so that a restart knows them.
   */
  readonly #behind: Map<string, string | null>;
  /** Why the mirror stopped for good, if it did. */
  failure: IntersyncError | null = null;
  done = false;
  /** The last TID applied and found good (checked, or not checkable yet): what `synced` may name, never a differing one. */
  #good: Tid;
  /** Records are applied and the disk checked for hand changes one at a time. */
  readonly #lock = new Mutex();
  /** The hand changes found (and undone, most) in this run. */
  readonly hand: HandChange[] = [];

  constructor(o: MirrorSinkOptions) {
    this.#o = o;
    this.counts = { records: 0, verified: 0, masterTid: o.db.lastRcvdOf(o.masterNode) };
    this.#good = o.db.lastRcvdOf(o.masterNode);
    this.#behind = new Map(o.behind);
  }

  lastRcvd(): Tid {
    return this.#o.db.lastRcvdOf(this.#o.masterNode);
  }

  paused(): boolean {
    return false;
  }

  beforeConnect(): Promise<FollowNext> {
    return Promise.resolve(this.done || this.failure !== null ? 'stop' : 'go');
  }

  onHello(): void {
    // The master was met before the follower started (mirror-stream.ts checks its uuid).
  }

  onConnected(since: Tid): Promise<void> {
    this.#o.log.info({ since: formatTid(since) }, 'following the master');
    return Promise.resolve();
  }

  onStreamHello(h: StreamHello): void {
    this.#seen(h.tid);
  }

  async onRecord(r: KmlRecord, payload: Buffer | null, last: Tid | undefined): Promise<void> {
    await this.#lock.run(async () => {
      await this.#applyOne(r, payload, last);
      this.#synced();
    });
  }

  /** A run: each record applied and checked in turn, one flush for the run, then `synced` names its last TID. */
  onRecords(run: readonly RunRecord[]): Promise<void> {
    return this.#lock.run(() => this.#applyRun(run));
  }

  /** Compare the slave's disk with its journal, between records: hand changes reported and undone (hand-check.ts). */
  async handCheck(): Promise<void> {
    if (this.failure !== null) return;
    const o = this.#o;
    await this.#lock.run(async () => {
      this.hand.push(...await handCheck({ paths: o.paths, db: o.db, apply: o.apply, master: o.master, log: o.log, clock: o.clock }));
    });
  }

  async #applyRun(run: readonly RunRecord[]): Promise<void> {
    try {
      for (const x of run) {
        try {
          await this.#applyOne(x.r, x.payload, x.last);
        } catch (e) {
          throw new RecordFailure(x.r, e);
        }
      }
    } finally {
      this.#synced();
    }
  }

  onRecall(): void {
    // A slave holds no write tokens.
  }

  onPing(tid: Tid): void {
    this.#seen(tid);
    this.#maybeDone();
  }

  onLost(e: unknown): Promise<FollowNext> {
    if (this.done) return Promise.resolve('stop');
    // A record the apply path refused (the slave is not the master's state before it), or a digest that differs:
    // the mirror stops for good. Anything else (the master's file moving while read, a full disk here) is retried.
    if (e instanceof RecordFailure && e.cause instanceof IntersyncError && (e.cause.code === 'MIRROR_DIVERGED' || e.cause.code === 'CONFLICT')) {
      const cause = e.cause;
      this.failure = cause instanceof IntersyncError && cause.code === 'MIRROR_DIVERGED' ? cause
        : new IntersyncError('MIRROR_DIVERGED', `the master's record ${formatTid(e.record.tid)} (${e.record.kind} ${e.record.path}) does not apply on the slave: ${(cause as Error).message}`, {
          hint: 'the slave is not the master\'s state at the TID before it (a change behind its back?): the mirror stopped; make a new slave and mirror again',
          cause,
        });
      this.#o.log.error({ tid: formatTid(e.record.tid), err: this.failure.message }, 'mirror stopped');
      return Promise.resolve('stop');
    }
    if (e instanceof RecordFailure) {
      this.#o.log.warn({ tid: formatTid(e.record.tid), kind: e.record.kind, path: e.record.path, err: (e.cause as Error).message }, 'a master record could not be applied yet; retrying');
      return Promise.resolve('back-off');
    }
    this.#o.log.warn({ err: (e as Error).message }, 'master stream lost; retrying');
    return Promise.resolve('back-off');
  }

  #seen(tid: Tid): void {
    if (tid > this.counts.masterTid) this.counts.masterTid = tid;
  }

  async #applyOne(r: KmlRecord, payload: Buffer | null, last: Tid | undefined): Promise<void> {
    const o = this.#o;
    if (last !== undefined) this.#seen(last);
    if (r.tid <= this.lastRcvd()) return; // applied before a restart
    const j = new MirrorJournaler(o.db, o.masterNode, o.clock, o.log);
    await applyRecord(o.apply, r, { inline: payload, source: o.master, standIn: true }, j);
    this.counts.records++;
    if (this.#follow(r, j.placed !== undefined)) o.db.setMeta(BEHIND, JSON.stringify(Object.fromEntries(this.#behind)));
    if (this.#behind.size <= MAX_BEHIND) await this.#check(r);
    this.#good = r.tid;
  }

  /**
   * What record `r` does to the objects behind; true when they changed. Content that came as journaled takes an
   * object (and the names of its inode: `links`, as the master gave them all its content) out; content placed
   * otherwise puts them in with the record's hash; a link joins its target's state; a removal takes it out.
   */
  #follow(r: KmlRecord, placed: boolean): boolean {
    const b = this.#behind;
    const before = JSON.stringify([...b]);
    if (r.kind === 'create' || r.kind === 'write' || r.kind === 'truncate') {
      for (const fid of r.links !== undefined && r.links !== null && r.links.length > 0 ? r.links : [r.fid]) {
        if (placed) b.set(fid, r.hash);
        else b.delete(fid);
      }
    } else if (r.kind === 'unlink' || r.kind === 'rmdir') {
      b.delete(r.fid);
    } else if (r.kind === 'link') {
      const target = r.targetFid ?? (r.target === null ? undefined : this.#o.db.objectByPath(r.target)?.fid);
      if (target !== undefined && target !== null && b.has(target)) b.set(r.fid, b.get(target)!);
    }
    return JSON.stringify([...b]) !== before;
  }

  /**
   * The proof at this TID: the slave's digest after the record is the master's, counting for each object behind
   * the hash the master journaled instead of the content placed here.
   */
  async #check(r: KmlRecord): Promise<void> {
    const db = this.#o.db;
    let digest = db.digest;
    for (const [fid, hash] of this.#behind) {
      const row = db.objectByFid(fid as Fid);
      if (row === undefined || row.hash === hash) continue;
      digest = digestAdd(digestSub(digest, row), { ...row, hash });
    }
    const got = formatDigest(digest);
    if (got === r.digest) {
      this.counts.verified++;
      return;
    }
    const path = await this.#firstDiffering(r.tid);
    throw IntersyncError.MIRROR_DIVERGED(formatTid(r.tid), path, r.digest, got);
  }

  /**
   * The first path (in path order) where the slave's object table differs from the master's at `tid`, comparing
   * what the digest covers; objects the master changed after `tid` are left out (their state there is not in its
   * table any more; a master that cannot say whether it removed one leaves out the slave's objects it lacks).
   * Reads both tables whole: it runs only once the digests differ.
   */
  async #firstDiffering(tid: Tid): Promise<string | null> {
    const o = this.#o;
    const snap = o.db.snapshotReader();
    let mine: Map<string, SnapshotRow>;
    try {
      mine = new Map([...pagesOf(snap)].map((x) => [x.fid, x]));
    } finally {
      snap.close();
    }
    const theirs = new Map<string, SnapshotEntry>((await o.master.snapshot(NO_VERSION)).entries.map((x) => [x.fid, x]));
    const entry = (x: Pick<SnapshotRow, 'path' | 'type' | 'mode' | 'hash' | 'target'>): string =>
      formatDigest(digestAdd(0n, { path: x.path, type: x.type, mode: x.mode, hash: x.hash, target: x.target }));
    const later = (fid: string, version: string | undefined): boolean => {
      const c = o.master.changedAfter(fid, tid);
      return c ?? (version === undefined || BigInt(version) > tid);
    };
    const differing: string[] = [];
    for (const [fid, m] of mine) {
      const t = theirs.get(fid);
      if (later(fid, t?.version)) continue;
      if (t === undefined || entry(t) !== entry(m)) differing.push(m.path);
    }
    for (const [fid, t] of theirs) {
      if (!mine.has(fid) && !later(fid, t.version)) differing.push(t.path);
    }
    differing.sort();
    return differing[0] ?? null;
  }

  /** Flush what was applied (syncfs, WAL checkpoint), then name the last good TID in `synced`; done with --once at its TID. */
  #synced(): void {
    const o = this.#o;
    const tid = this.#good;
    o.apply.flush();
    writeSynced(o.paths, tid);
    o.master.applied(tid);
    this.#maybeDone();
  }

  #maybeDone(): void {
    const until = this.#o.until;
    if (until !== null && this.lastRcvd() >= until && !this.done) {
      this.done = true;
      this.#o.cut();
    }
  }
}
