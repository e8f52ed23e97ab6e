import { Backoff } from '#core/backoff.js';
import { IntersyncError } from '#core/errors.js';
import { formatTid } from '#core/ids.js';
import type { LmlRecord } from '#core/record.js';
import { scopesFor } from '#policy/token-table.js';
import { exchange, send, takeAnswer, type Sent } from './reint-answer.js';
import { MAX_BATCH_RECORDS, buildBatch } from './reint-batch.js';
import { optimise } from './reint-optimise.js';
import type { ReintState } from './reint-state.js';
import type { ReintegratorDeps } from './reint-types.js';

/** Reintegrate until stopped (Reintegrator#run): a round at a time, backing off after a failure. */
export async function runLoop(d: ReintegratorDeps, s: ReintState): Promise<void> {
  const backoff = new Backoff(100);
  while (!s.stopped) {
    try {
      const worked = await step(d, s);
      d.disk?.ok('reint');
      s.lastError = null;
      backoff.reset();
      if (!worked) await s.wake.wait(1000);
    } catch (e) {
      const full = d.disk?.note('reint', e) ?? null;
      const err = full ?? (e instanceof IntersyncError ? e : IntersyncError.IO('reintegrate', d.root, e));
      s.lastError = err.message;
      d.log.warn({ code: err.code, err: err.message, ...(err.fromPeer ? { peer: 'server' } : {}) }, 'reintegration failed; retrying');
      // The server is away: when it is back, its records come first (holdForStream).
      if (err.code === 'PEER_UNREACHABLE') s.holdForStream();
      // A full disk (here or the server's) is retried every few seconds at most: space may come back any time.
      await s.wake.wait(backoff.next(err.code === 'DISK_FULL'));
    }
  }
}

/** One round: returns false when there was nothing to do. */
async function step(d: ReintegratorDeps, s: ReintState): Promise<boolean> {
  if (s.offline) return false;
  const waiting = s.resyncing > 0 || s.waitFor !== null || s.awaitStream !== null;
  // A holder that waits (for the stream, for a resync) gives a recalled token back at once: others must not wait on it.
  if (waiting && s.tokens.anyRecalled()) await s.tokens.release(true, true);
  if (s.resyncing > 0) {
    if (d.clock.monotonic() < s.resyncing) {
      await s.wake.wait(200);
      return true;
    }
    s.resyncing = 0; // the resync never reported back: try again anyway
  }
  if (s.awaitStream !== null) {
    if (d.clock.monotonic() < s.awaitStream) {
      await s.wake.wait(200);
      return true;
    }
    s.awaitStream = null;
  }
  if (s.waitFor !== null) {
    if (d.db.lastRcvdOf(d.serverNode()) < s.waitFor && d.clock.monotonic() < s.waitUntil) {
      await s.wake.wait(200);
      return true;
    }
    s.waitFor = null;
  }
  if (s.streamFirst !== null) {
    // The server's records of the last answer first (reint-answer.ts STREAM_FIRST_MS); each one applied wakes this.
    if (d.db.lastRcvdOf(d.serverNode()) < s.streamFirst.tid && d.clock.monotonic() < s.streamFirst.until) {
      await s.wake.wait(50);
      return true;
    }
    s.streamFirst = null;
  }
  optimise(d, s);
  // What this node had applied of the server's records when it read the batch: a change the server made after
  // it to another name of a file written here is a conflict there (net/unseen-change.ts).
  const seen = formatTid(d.db.lastRcvdOf(d.serverNode()));
  const lml = d.db.readLml(0n, MAX_BATCH_RECORDS);
  if (lml.length === 0) {
    await s.tokens.release(false);
    return false;
  }
  await d.beforeSend?.(lml);
  s.tokens.active();
  const built = await buildBatch(d, lml, seen);
  if (built === null) return true;
  const { batch, frames } = built;
  const paths = batch.flatMap((r) => (r.newPath === null ? [r.path] : [r.path, r.newPath]));
  await s.tokens.take(scopesFor(paths, d.scopeMode()));
  const exclusive = d.exclusive ?? (<T>(fn: () => Promise<T>): Promise<T> => fn());
  return exclusive(async () => {
    // A server record applied since the batch was read may have rewritten or dropped some of it (the
    // conflict step): read again, from the LML as it is now.
    const read = lml.slice(0, batch.length);
    if (read.some((r) => !sameLml(r, d.db.lmlRecord(r.seq)))) return true;
    if (d.pipeline?.() !== true || lml.length < MAX_BATCH_RECORDS) return exchange(d, s, batch, frames);
    // Pipelined: while the server applies this batch, the next one is read, built and sent (its hello names this
    // one's last record: the server applies it only after this one applied whole). Each answer is taken in
    // turn; the next one's only when this one was accepted whole (else it was skipped there and goes again).
    const first = send(d, batch, frames);
    let next: { batch: readonly LmlRecord[]; sent: Sent } | null = null;
    try {
      next = await sendNext(d, s, batch, seen);
    } catch (e) {
      d.log.debug({ err: (e as Error).message }, 'next batch not sent ahead');
    }
    let whole = false;
    try {
      const res = await first.answer;
      whole = res.results.length === batch.length && res.results.every((x) => x.status === 'accepted');
      await takeAnswer(d, s, batch, first.sentBefore, res);
    } finally {
      const ahead = next === null ? null : await next.sent.answer.then((r) => r, () => null);
      if (whole && next !== null && ahead !== null) await takeAnswer(d, s, next.batch, next.sent.sentBefore, ahead);
    }
    return true;
  });
}

/**
 * The batch after `batch` (the LML's next records), built and sent while `batch` is in flight; null when there is
 * none, or when it needs a token not held for `batch` (a token wait would hold up the answer of the one in flight).
 */
async function sendNext(d: ReintegratorDeps, s: ReintState, batch: readonly LmlRecord[], seen: string): Promise<{ batch: readonly LmlRecord[]; sent: Sent } | null> {
  const lastSeq = batch[batch.length - 1]!.seq;
  const lml = d.db.readLml(lastSeq, MAX_BATCH_RECORDS);
  if (lml.length === 0) return null;
  const scopes = (rs: readonly LmlRecord[]): Set<string> => new Set(scopesFor(rs.flatMap((r) => (r.newPath === null ? [r.path] : [r.path, r.newPath])), d.scopeMode()));
  const held = scopes(batch);
  if ([...scopes(lml)].some((x) => !held.has(x))) return null;
  await d.beforeSend?.(lml);
  const made = new Set(batch.filter((r) => r.kind === 'create' || r.kind === 'link').map((r) => r.fid));
  const built = await buildBatch(d, lml, seen, { seq: lastSeq, made });
  if (built === null || built.batch.length === 0) return null;
  const read = lml.slice(0, built.batch.length);
  if (read.some((r) => !sameLml(r, d.db.lmlRecord(r.seq)))) return null;
  s.tokens.active();
  return { batch: built.batch, sent: send(d, built.batch, built.frames) };
}

/** The same pending record, unchanged (a conflict step rewrites names and versions, or drops it). */
function sameLml(a: LmlRecord, b: LmlRecord | undefined): boolean {
  return b !== undefined && a.kind === b.kind && a.fid === b.fid && a.path === b.path && a.newPath === b.newPath
    && a.preVersion === b.preVersion && a.target === b.target && a.hash === b.hash && a.mode === b.mode;
}
