import { Backoff } from '#core/backoff.js';
import { IntersyncError } from '#core/errors.js';
import { NO_VERSION, ROOT_FID, formatTid, parseTid, type Tid } from '#core/ids.js';
import type { KmlRecord } from '#core/record.js';
import { parseWireRecord } from '#net/protocol/wire-record.js';
import { parseNext, parseWaiting } from '#net/protocol/lag-fields.js';
import { learnServerAttrs } from '#copy/client-attrs.js';
import type { ClientAcks } from './client-acks.js';
import { applyForwarded, namesNow } from './client-apply.js';
import { catchUp, contentBehind } from './client-catch-up.js';
import { resync } from './client-copy.js';
import { DigestCheck } from './client-digest.js';
import type { ClientState } from './client-state.js';
import { ensureCredential } from './enrolment.js';

/*
 * A client's follow loop of the server's forwarded stream (followLoop (daemon/client-follow.ts)): reconnection with backoff,
 * each record applied under the exchange lock, the count of records that do not apply and the resync it
 * leads to, the lag frames, a fatal failure to authenticate. The names with a # in the comments are the
 * ClientNode methods these functions were.
 */

/** Follow the forwarded stream; on a cut, reconnect with capped exponential backoff and jitter. */
export async function followLoop(s: ClientState, acks: ClientAcks): Promise<void> {
  const backoff = new Backoff(200);
  // Was stuck (daemon/client-follow.ts): how many times in a row a server record did not apply at one last_rcvd.
  let stuck: { tid: Tid; n: number } = { tid: NO_VERSION, n: 0 };
  // The check at each ping (was checkDigest (daemon/client-digest.ts)), with its own state for as long as the node runs.
  const digest = new DigestCheck(s);
  // The server's records first, then the LML (the reconnection sequence): released by the stream's hello.
  s.reint.holdForStream();
  while (!s.stopped) {
    if (s.offline) {
      s.connected = false;
      await s.wakeFollow.wait(1000);
      continue;
    }
    if (s.abort.signal.aborted) s.abort = new AbortController();
    if (s.resyncRequested) {
      s.resyncRequested = false;
      try {
        await s.exchange.run(() => resync(s));
      } catch (e) {
        const full = s.disk.note('resync', e);
        s.log.error({ code: full?.code, err: (e as Error).message, backoffMs: backoff.step }, 'resync failed; retrying');
        s.resyncRequested = true;
        await s.wakeFollow.wait(backoff.next(full !== null));
        continue;
      }
    }
    try {
      if (s.hello === null) {
        await ensureCredential(s.client, s.statePaths, s.db.meta.nodeId, s.o.replicate, s.o.trust);
        s.hello = await s.client.hello(s.db.meta.nodeId, s.o.replicate);
        learnServerAttrs(s.db, s.hello.attrs, s.log);
        s.reint.wake();
        s.db.setMeta('server_node', s.hello.node);
      }
      const since = s.db.lastRcvdOf(s.serverNode());
      for await (const f of s.client.follow(since, s.db.meta.nodeId, s.abort.signal)) {
        if (!s.connected) {
          s.log.info({ since: formatTid(since), pending: s.db.lmlCount() }, 'connected');
          await catchUp(s, [...contentBehind(s)]);
        }
        s.connected = true;
        s.disconnectedSince = null;
        backoff.reset();
        if (f.type === 'record') {
          const r = parseWireRecord(f.header.r);
          s.stale.add(r.fid);
          s.lag.onRecord(r, typeof f.header.last === 'string' ? parseTid(f.header.last) : undefined, s.db.lastRcvdOf(s.serverNode()));
          try {
            await s.exchange.run(() => applyForwarded(s, r, f.payload));
            s.lag.onApplied(r);
            s.applyStuckSince = null;
            s.disk.ok('apply');
          } catch (e) {
            s.applyStuckSince ??= s.o.clock.now();
            throw new ApplyFailure(r, e);
          } finally {
            s.stale.delete(r.fid);
          }
          acks.schedule();
        } else if (f.type === 'recall') {
          s.reint.onRecall(String(f.header.scope));
        } else if (f.type === 'ping' || f.type === 'hello') {
          const t = typeof f.header.tid === 'string' ? (parseTid(f.header.tid) ?? null) : null;
          if (t !== null && f.type === 'ping') {
            s.lag.onPing(t);
            digest.check(t, typeof f.header.digest === 'string' ? f.header.digest : undefined);
          }
          if (t !== null && f.type === 'hello') {
            // What the server counts as missing here, from where this stream starts (journal/in-flight.ts).
            s.lag.onHello(t, parseNext(f.header.next), parseWaiting(f.header.waiting));
            // A position not acknowledged yet (a first copy or resync just placed, or records applied before a
            // restart) is acknowledged now: else the server counts this node behind until the next record comes.
            if (since > acks.acked) acks.schedule();
            // The reconnection sequence: the server's records first, then the LML.
            s.reint.holdUntil(t);
          }
        }
      }
      s.connected = false;
    } catch (e) {
      if (s.connected || s.disconnectedSince === null) s.disconnectedSince = s.o.clock.now();
      s.connected = false;
      if (s.stopped) break;
      if (s.offline) continue;
      const applying = e instanceof ApplyFailure;
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
        stuck = stuck.tid === tid ? { tid, n: stuck.n + 1 } : { tid, n: 1 };
      }
      if (err.code === 'RESYNC_NEEDED' || stuck.n >= 3) {
        stuck = { tid: NO_VERSION, n: 0 };
        s.log.error({ err: err.message }, err.code === 'RESYNC_NEEDED'
          ? 'away past the server\'s retention: resyncing the whole fileset'
          : 'a server record does not apply here: resyncing the whole fileset, keeping local changes');
        s.o.onWarning?.(err);
        try {
          await s.exchange.run(() => resync(s));
          continue;
        } catch (e2) {
          // Asked again at the top of the loop until it is done: before, a failed resync (a full disk) was
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
        break;
      }
      s.log.warn({ code: err.code, err: err.message, backoffMs: backoff.step }, full !== null ? 'no room to apply the server\'s records; retrying' : 'forwarded stream lost; retrying');
      if (err.code === 'UNAUTHORIZED' || err.code === 'WRONG_FILESET' || err.code === 'NO_FILESET') s.o.onWarning?.(err);
      await s.wakeFollow.wait(backoff.next(full !== null));
    }
  }
}

/** A forwarded record failed to apply here (as opposed to the stream failing). */
class ApplyFailure extends Error {
  readonly record: KmlRecord;

  constructor(record: KmlRecord, cause: unknown) {
    super(`apply ${formatTid(record.tid)}: ${(cause as Error).message}`, { cause });
    this.record = record;
  }
}
