import { IntersyncError } from '#core/errors.js';
import { NO_VERSION, ROOT_FID, formatTid, type Tid } from '#core/ids.js';
import type { KmlRecord } from '#core/record.js';
import type { HelloInfo } from '#net/peer-client.js';
import { RecordFailure, RecordFollower, type FollowNext, type RecordSink, type RunRecord, type StreamHello } from '#net/record-follower.js';
import { learnServerAttrs } from '#copy/client-attrs.js';
import type { ClientAcks } from './client-acks.js';
import { applyForwarded, namesNow } from './client-apply.js';
import { applyNewNames } from './client-run.js';
import { ownBackRun } from './client-own.js';
import { catchUp, contentBehind } from './client-catch-up.js';
import { resync } from './client-copy.js';
import { DigestCheck } from './client-digest.js';
import type { ClientState } from './client-state.js';
import { ensureCredential } from './enrolment.js';

/*
 * A client as the RecordSink of the server's forwarded stream (net/record-follower.ts runs the loop: reconnection
 * with backoff, the hello, the frames): each record applied under the exchange lock, the count of records that do
 * not apply and the resync it leads to, the digest check at each ping, the lag frames, a disconnection on request,
 * a fatal failure to authenticate. This was the follow loop of daemon/client-follow.ts (followLoop); its steps and
 * log lines are the same, in the same order.
 */

/** The follower of a client's server, delivering to a ClientSink; the link state is the ClientState's. */
export function clientFollower(s: ClientState, acks: ClientAcks): RecordFollower<HelloInfo> {
  return new RecordFollower<HelloInfo>({
    source: {
      hello: async () => {
        await ensureCredential(s.client, s.statePaths, s.db.meta.nodeId, s.o.replicate, s.o.trust);
        return s.client.hello(s.db.meta.nodeId, s.o.replicate);
      },
      follow: (since, signal) => s.client.follow(since, s.db.meta.nodeId, signal),
    },
    sink: new ClientSink(s, acks), link: s, hello: s.hello, clock: s.o.clock, wait: (ms) => s.wakeFollow.wait(ms), firstBackoffMs: 200,
  });
}

export class ClientSink implements RecordSink<HelloInfo> {
  readonly #s: ClientState;
  readonly #acks: ClientAcks;
  /** How many times in a row a server record did not apply at one last_rcvd (three lead to a resync). */
  #stuck: { tid: Tid; n: number } = { tid: NO_VERSION, n: 0 };
  /** The check at each ping (daemon/client-digest.ts), with its own state for as long as the node runs. */
  readonly #digest: DigestCheck;

  constructor(s: ClientState, acks: ClientAcks) {
    this.#s = s;
    this.#acks = acks;
    this.#digest = new DigestCheck(s);
  }

  lastRcvd(): Tid {
    return this.#s.db.lastRcvdOf(this.#s.serverNode());
  }

  paused(): boolean {
    return this.#s.offline;
  }

  /** A resync asked for (by the reintegrator, the digest check, or a failed one) runs before the next connection. */
  async beforeConnect(backoffMs: number): Promise<FollowNext> {
    const s = this.#s;
    if (!s.resyncRequested) return 'go';
    s.resyncRequested = false;
    try {
      await s.exchange.run(() => resync(s));
      return 'go';
    } catch (e) {
      const full = s.disk.note('resync', e);
      s.log.error({ code: full?.code, err: (e as Error).message, backoffMs }, 'resync failed; retrying');
      s.resyncRequested = true;
      return full !== null ? 'back-off-disk-full' : 'back-off';
    }
  }

  onHello(hello: HelloInfo): void {
    const s = this.#s;
    s.hello = hello;
    learnServerAttrs(s.db, hello.attrs, s.log);
    s.reint.wake();
    s.db.setMeta('server_node', hello.node);
  }

  async onConnected(since: Tid): Promise<void> {
    const s = this.#s;
    s.log.info({ since: formatTid(since), pending: s.db.lmlCount() }, 'connected');
    await catchUp(s, [...contentBehind(s)]);
  }

  onStreamHello(h: StreamHello): void {
    const s = this.#s;
    // What the server counts as missing here, from where this stream starts (journal/in-flight.ts).
    s.lag.onHello(h.tid, h.next, h.waiting);
    // A position not acknowledged yet (a first copy or resync just placed, or records applied before a
    // restart) is acknowledged now: else the server counts this node behind until the next record comes.
    if (h.since > this.#acks.acked) this.#acks.schedule();
    // The reconnection sequence: the server's records first, then the LML.
    s.reint.holdUntil(h.tid);
  }

  /** One server record, applied under the exchange lock (a batch going up and a record coming down never overlap). */
  async onRecord(r: KmlRecord, payload: Buffer | null, last: Tid | undefined): Promise<void> {
    await this.#s.exchange.run(() => this.#applyOne(r, payload, last));
  }

  /** One server record on the one-record road; the caller holds the exchange lock. */
  async #applyOne(r: KmlRecord, payload: Buffer | null, last: Tid | undefined): Promise<void> {
    const s = this.#s;
    s.stale.add(r.fid);
    s.lag.onRecord(r, last, s.db.lastRcvdOf(s.serverNode()));
    try {
      await applyForwarded(s, r, payload);
      s.lag.onApplied(r);
      s.applyStuckSince = null;
      s.disk.ok('apply');
    } catch (e) {
      s.applyStuckSince ??= s.o.clock.now();
      throw e;
    } finally {
      s.stale.delete(r.fid);
    }
    this.#acks.schedule();
  }

  /**
   * Records that arrived together: a head of this node's own new names back is accepted as one run (ownBackRun),
   * a head that makes new names here goes in as one run (client-run.ts: one transaction), each other record as
   * onRecord does; one ack is scheduled per run (its flush covers the run). The whole run takes one turn of the
   * exchange lock: a batch going up holds it for its round trip to the server (the server's flush included), so a
   * turn per record let a node that writes all the time apply one server record per batch it sent, and the other
   * writers' files reached it seconds late even at 3 writers of 5 files/s (issue 19, item 6; bench --only writers).
   */
  async onRecords(run: readonly RunRecord[]): Promise<void> {
    const s = this.#s;
    await s.exchange.run(async () => {
      for (let i = 0; i < run.length;) {
        let n: number;
        const rcvd = s.db.lastRcvdOf(s.serverNode());
        try {
          n = ownBackRun(s, run.slice(i).map((x) => x.r), s.serverNode()) || applyNewNames(s, run.slice(i));
        } catch (e) {
          s.applyStuckSince ??= s.o.clock.now();
          throw new RecordFailure(run[i]!.r, e);
        }
        if (n > 0) {
          for (const x of run.slice(i, i + n)) {
            s.lag.onRecord(x.r, x.last, rcvd);
            s.lag.onApplied(x.r);
          }
          s.applyStuckSince = null;
          s.disk.ok('apply');
          this.#acks.schedule();
          i += n;
          continue;
        }
        const x = run[i]!;
        try {
          await this.#applyOne(x.r, x.payload, x.last);
        } catch (e) {
          throw new RecordFailure(x.r, e);
        }
        i++;
      }
    });
  }

  onRecall(scope: string): void {
    this.#s.reint.onRecall(scope);
  }

  onPing(tid: Tid, digest: string | undefined): void {
    this.#s.lag.onPing(tid);
    this.#digest.check(tid, digest);
  }

  async onLost(e: unknown, backoffMs: number): Promise<FollowNext> {
    const s = this.#s;
    const applying = e instanceof RecordFailure;
    const cause = applying ? e.cause : e;
    // No room here to apply it: a state of this node, not a conflict (before, ENOSPC was called one, and three
    // of them started a resync, which the full disk failed too). It is retried until there is room.
    const full = applying ? s.disk.note('apply', cause, `apply ${e.record.kind} ${e.record.path}`) : s.disk.note('follow', cause);
    const err = full ?? (cause instanceof IntersyncError ? cause
      : applying ? IntersyncError.CONFLICT(e.record.path, (cause as Error).message) : IntersyncError.IO('follow', s.client.url, cause));
    s.lastError = applying ? `applying ${formatTid(e.record.tid)} ${e.record.kind} ${e.record.path}: ${err.message}` : err.message;
    // A server record this node cannot apply, again and again, means its state went astray from the
    // server's in a way the conflict step did not foresee: rebuild it from a snapshot (keeping local changes).
    if (applying && full === null) {
      const dir = e.record.parent === undefined || e.record.parent === null ? null : e.record.parent;
      s.log.warn({
        tid: formatTid(e.record.tid), kind: e.record.kind, err: err.message, names: namesNow(s, e.record),
        parent: dir === null || dir === ROOT_FID ? dir : `${dir} ${s.db.objectByFid(dir)?.path ?? 'not here'}`,
      }, 'a server record did not apply here');
      if (s.db.hasPendingLocal(e.record.fid)) s.stuckObjects.add(e.record.fid);
      const tid = s.db.lastRcvdOf(s.serverNode());
      this.#stuck = this.#stuck.tid === tid ? { tid, n: this.#stuck.n + 1 } : { tid, n: 1 };
    }
    if (err.code === 'RESYNC_NEEDED' || this.#stuck.n >= 3) {
      this.#stuck = { tid: NO_VERSION, n: 0 };
      s.log.error({ err: err.message }, err.code === 'RESYNC_NEEDED'
        ? 'away past the server\'s retention: resyncing the whole fileset'
        : 'a server record does not apply here: resyncing the whole fileset, keeping local changes');
      s.o.onWarning?.(err);
      try {
        await s.exchange.run(() => resync(s));
        return 'go';
      } catch (e2) {
        // Asked again before the next connection until it is done: before, a failed resync (a full disk) was
        // not tried again until the stream had failed three more times.
        const full2 = s.disk.note('resync', e2);
        s.log.error({ code: full2?.code, err: (e2 as Error).message }, 'resync failed; retrying');
        s.resyncRequested = true;
      }
    }
    if (err.code === 'NO_CREDENTIAL' || err.code === 'NODE_TAKEN') {
      // Waiting brings no credential back: say so once and let the runner stop the node.
      s.log.error({ code: err.code, err: err.message }, 'cannot authenticate to the server; stopping');
      s.lastError = err.message;
      s.o.onFatal?.(err);
      return 'stop';
    }
    s.log.warn({ code: err.code, err: err.message, backoffMs }, full !== null ? 'no room to apply the server\'s records; retrying' : 'forwarded stream lost; retrying');
    if (err.code === 'UNAUTHORIZED' || err.code === 'WRONG_FILESET' || err.code === 'NO_FILESET') s.o.onWarning?.(err);
    return full !== null ? 'back-off-disk-full' : 'back-off';
  }
}
