import { setTimeout as sleep } from 'node:timers/promises';
import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { D_REINT } from '#core/debug.js';
import { IntersyncError, isDiskFull } from '#core/errors.js';
import { formatTid, isNodeId, NO_VERSION, parseTid, type Tid } from '#core/ids.js';
import { Mutex } from '#core/mutex.js';
import { parentOf } from '#core/paths.js';
import type { LmlRecord } from '#core/record.js';
import { placedHere } from '#apply/placed.js';
import { applyRecord } from '#apply/record-applier.js';
import { modeChange } from '#policy/attr-policy.js';
import { NODE_RE } from './identity-gate.js';
import { readFrameRuns, type Frame } from './protocol/frames.js';
import { applyNewNames } from './reint-run.js';
import { lmlToWire, parseWireLml, recordToWire } from './protocol/wire-record.js';
import { toWire } from './protocol/wire-errors.js';
import { throttled } from './rate-limit.js';
import { ReintJournaler } from './reint-journaler.js';
import { STREAM_BODY_LIMIT, type ServedFileset, type ServerState } from './server-state.js';

/** How often a record is placed and checked again while this node's capture catches up with its disk. */
const PLACE_ATTEMPTS = 4;

/**
 * A FilesetServer's reintegration route: a client's LML batch, applied in order through the apply path (one batch
 * at a time), each record answered accepted, skipped, retry, need-content or conflict.
 */
export function reintRoutes(app: FastifyInstance, s: ServerState): void {
  const f = s.f;
  const db = f.db;
  const reint = new Mutex();
  const last: LastBatch = new Map();

  app.post('/v1/filesets/:uuid/reint', {
    bodyLimit: STREAM_BODY_LIMIT,
    schema: { params: s.params, querystring: { type: 'object', required: ['node'], properties: { node: { type: 'string', pattern: NODE_RE } } } },
  }, async (req) => {
    const { node } = req.query as { node: string };
    if (!(req.body instanceof Readable)) throw IntersyncError.BAD_REQUEST('send the records as frames with content-type application/octet-stream');
    if (node === db.meta.nodeId) throw IntersyncError.BAD_REQUEST('a client cannot reintegrate as the server');
    s.gate.actsFor(req, node);
    const t0 = performance.now();
    const out = await reint.run(() => reintegrate(s, node, throttled(req.body as Readable, s.bw), last));
    // Durable before answered; outside the lock, so the next batch (sent while this one is answered) is applied
    // meanwhile. The flush starts after this batch's changes, so it covers them.
    const tf = performance.now();
    await f.apply.flushAsync();
    const flushMs = performance.now() - tf;
    f.log.child({ component: 'reint', peer: node }).info({ records: out.results.length, durMs: Math.round(performance.now() - t0), flushMs: Math.round(flushMs) }, 'reintegration batch');
    return out;
  });
}

/** Per client, how its last batch ended: its last record's sequence number, and whether every record of it was accepted. */
type LastBatch = Map<string, { readonly seq: bigint; readonly whole: boolean }>;

/** Apply a client's LML batch in order; stop at the first record that cannot apply. */
async function reintegrate(s: ServerState, node: string, body: AsyncIterable<Buffer>, lastBatch: LastBatch): Promise<{ results: Array<Record<string, unknown>>; lastTid: string }> {
  const f = s.f;
  const db = f.db;
  const log = f.log.child({ component: 'reint', peer: node });
  const results: Array<Record<string, unknown>> = [];
  let stopped = false;
  let hello = false;
  let seen: Tid | null = null;
  // A head of a run of frames that arrived together, records that each make a new name here: applied as one
  // run (one transaction, one staging pass; reint-run.ts). What is left of the run goes record by record.
  const runs = readFrameRuns(body);
  const frames: Frame[] = [];
  for (;;) {
    if (frames.length === 0) {
      const next = await runs.next();
      if (next.done === true) break;
      frames.push(...next.value);
    }
    if (hello && !stopped && frames.length > 1 && frames[0]!.type === 'record') {
      const n = applyNewNames(f, node, seen, frames, results, log);
      if (n > 0) {
        frames.splice(0, n);
        continue;
      }
    }
    const frame = frames.shift()!;
    if (frame.type === 'hello') {
      if (frame.header.uuid !== db.meta.uuid) throw IntersyncError.BAD_REQUEST('reintegration names another fileset');
      hello = true;
      // How far the client had applied this node's records when it read the batch (absent from an older client).
      if (frame.header.seen !== undefined) {
        seen = typeof frame.header.seen === 'string' ? parseTid(frame.header.seen) ?? null : null;
        if (seen === null) throw IntersyncError.BAD_REQUEST(`a reintegration's seen must be a TID, not ${JSON.stringify(frame.header.seen)}`);
      }
      // Sent while the batch before it was answered (pipelined): it follows that batch, whose last record is `after`.
      // Unless that batch was applied whole, here, just before, nothing of this one is (every record skipped, the
      // client sends it again): records are applied in their order or not at all.
      if (frame.header.after !== undefined) {
        const after = typeof frame.header.after === 'string' && /^[0-9]{1,19}$/.test(frame.header.after) ? BigInt(frame.header.after) : null;
        if (after === null) throw IntersyncError.BAD_REQUEST(`a reintegration's after must be a sequence number, not ${JSON.stringify(frame.header.after)}`);
        const prev = lastBatch.get(node);
        if (prev === undefined || prev.seq !== after || !prev.whole) {
          stopped = true;
          log.info({ after: after.toString() }, 'a batch sent ahead of the one before it was answered: skipped, the batch before did not apply whole');
        }
      }
      continue;
    }
    if (frame.type === 'end') break;
    if (frame.type !== 'record') throw IntersyncError.PROTOCOL(`unexpected ${frame.type} frame in a reintegration`);
    const sent = parseWireLml(frame.header.r);
    if (sent.origin !== node || !isNodeId(sent.origin)) throw IntersyncError.BAD_REQUEST('a client reintegrates only its own records');
    const creates = sent.kind === 'create' || sent.kind === 'mkdir' || sent.kind === 'symlink' || sent.kind === 'link';
    if (creates && !sent.fid.startsWith(`${node}-`)) throw IntersyncError.BAD_REQUEST(`a client names new objects with its own fids (${node}-…), not ${sent.fid}`);
    // Found by the route fuzzer: a create with a pre-version passed the apply path's check and failed in the commit, a 500.
    if (creates && sent.preVersion !== NO_VERSION) throw IntersyncError.BAD_REQUEST(`a ${sent.kind} has no pre-version (it names ${formatTid(sent.preVersion)})`);
    let d = sent;
    const done = db.kmlByOrigin(d.origin, d.seq);
    if (done !== undefined) {
      results.push({ seq: d.seq.toString(), status: 'accepted', r: recordToWire(done) });
      continue;
    }
    if (stopped) {
      results.push({ seq: d.seq.toString(), status: 'skipped' });
      continue;
    }
    try {
      await f.syncPaths?.(d.newPath === null ? [d.path] : [d.path, d.newPath]);
      // At this node's names of the objects it names (a directory moved here meanwhile takes the new name along).
      let placed = placedHere(db, sent);
      if (placed !== sent) {
        await f.syncPaths?.(placed.newPath === null ? [placed.path] : [placed.path, placed.newPath]);
        placed = placedHere(db, sent); // what capture journaled meanwhile counts
      }
      // A directory on the record's way that the journal holds and the disk no longer does: moved or removed
      // here a moment ago, not journaled yet. Capture journals it first, so the record is placed at the new
      // name, or refused against a journal that says so. Before, the refusal ("parent … does not exist here")
      // came with a last TID that did not hold the move: the client, caught up by it, took the directory for
      // gone, made it again under a new fid, and resynced (chaos seed 9205).
      if (f.settle !== undefined && ancestorUnjournaled(f, placed)) {
        await f.settle();
        placed = placedHere(db, sent);
      }
      let attempt = 1;
      const localized = (): LmlRecord => {
        // Modes, owners and symlink targets as this fileset takes them from a peer: what is applied is what is journaled.
        d = f.apply.localize(placed);
        if (d.path !== sent.path || d.newPath !== sent.newPath) {
          log.info({ seq: d.seq.toString(), kind: d.kind, path: sent.path, newPath: sent.newPath ?? undefined, here: d.path, newHere: d.newPath ?? undefined }, 'placed at this node\'s names of its objects');
        }
        const mode = modeChange(d.kind, sent.mode, d.mode);
        if (mode !== null) log[mode.warn ? 'warn' : 'info']({ seq: d.seq.toString(), path: d.path, mode: sent.mode.toString(8), applied: d.mode.toString(8) }, mode.message);
        return d;
      };
      // Checked right before the change, in the same tick as the commit (ReintJournaler: the apply path's check,
      // a change the client had not seen, a parent missing here): nothing can slip in between.
      const rec = await applyRecord(f.apply, localized(), { inline: frame.payload, source: null }, new ReintJournaler(f, { node, seen }), async (err) => {
        // A directory on the way the journal holds and the disk lost after the settle above (a local move made in
        // that moment, its event not read yet): capture journals it, and the record is placed again, a few times.
        // Before, the refusal ("parent … does not exist here") went out against a journal that still held the
        // directory: the client took it for gone, made it again under a new fid, and resynced at the server's
        // move of it (chaos s71 seed 9265: the server's `mv gamma/deep epsilon/sub` as c1's gamma/deep/e came).
        const lagging = err.reason?.kind === 'missing-parent' && f.settle !== undefined && ancestorUnjournaled(f, placed);
        if (!lagging || attempt === PLACE_ATTEMPTS) return null;
        await sleep(10 * attempt++);
        await f.settle!();
        placed = placedHere(db, sent);
        return localized();
      });
      f.disk?.ok('reint');
      if ((f.debug & D_REINT) !== 0) log.debug({ seq: d.seq.toString(), tid: formatTid(rec.tid), kind: d.kind, path: d.path }, 'accepted');
      results.push({ seq: d.seq.toString(), status: 'accepted', r: recordToWire(rec) });
    } catch (caught) {
      const errno = (caught as NodeJS.ErrnoException).code;
      if (isDiskFull(caught, { local: true })) {
        // No room here: a state of this node, not a conflict. The client sends it again (status `retry`), and
        // nothing after it in this batch was applied.
        const e = IntersyncError.DISK_FULL(`apply ${d.kind} ${d.path}`, caught);
        f.disk?.note('reint', e);
        stopped = true;
        log.warn({ seq: d.seq.toString(), code: e.code, path: d.path, err: e.message }, 'reintegration waits: the disk is full');
        results.push({ seq: d.seq.toString(), status: 'retry', error: toWire(e).error });
        s.metrics.refused(e.code);
        continue;
      }
      if (!(caught instanceof IntersyncError) && errno === undefined) throw caught;
      // A name this file system cannot hold is the peer's error, not a conflict: the request fails with a 4xx.
      if (errno === 'ENAMETOOLONG' || errno === 'EILSEQ') throw IntersyncError.NAME_REFUSED(d.newPath ?? d.path, errno);
      // An errno from the disk means this record does not fit this node's tree: a conflict, not a crash.
      const e = caught instanceof IntersyncError ? caught : IntersyncError.CONFLICT(d.path, (caught as Error).message);
      stopped = true;
      log.info({ seq: d.seq.toString(), code: e.code, path: d.path, parent: sent.parent ?? undefined, parentHere: sent.parent === undefined || sent.parent === null ? undefined : (db.objectByFid(sent.parent)?.path ?? null), err: e.message }, 'reintegration stopped');
      results.push({ seq: d.seq.toString(), status: e.code === 'NEED_CONTENT' ? 'need-content' : 'conflict', error: toWire(e).error, lml: lmlToWire(d) });
      s.metrics.refused(e.code);
    }
  }
  if (!hello) throw IntersyncError.PROTOCOL('empty reintegration: no hello frame');
  const end = results.at(-1);
  if (end !== undefined) lastBatch.set(node, { seq: BigInt(String(end.seq)), whole: results.every((x) => x.status === 'accepted') });
  return { results, lastTid: formatTid(db.lastTid) };
}

/** A directory above the record's names (or a link's target file) that the journal holds and the disk does not (not journaled yet). */
function ancestorUnjournaled(f: ServedFileset, r: { kind: string; path: string; newPath: string | null; target: string | null }): boolean {
  const gone = (p: string, type: 'dir' | 'file'): boolean =>
    f.db.objectByPath(p)?.type === type && lstatSync(join(f.root, p), { throwIfNoEntry: false }) === undefined;
  // A link's target too, and the target itself: refused as "parent … does not exist here" or "link target … is
  // not a file here" against a journal that still has them, the client took the directory for gone and made
  // it again under a new fid (chaos s45 seed 9287: the server's `mv gamma beta` a moment before c2's link to
  // gamma/c.conflict-…; then "object … does not exist here" and a resync), or sent the link as a file of its own.
  const names = [r.path, ...(r.newPath === null ? [] : [r.newPath]), ...(r.kind === 'link' && r.target !== null ? [r.target] : [])];
  if (r.kind === 'link' && r.target !== null && gone(r.target, 'file')) return true;
  for (const name of names) {
    for (let p = parentOf(name); p !== ''; p = parentOf(p)) {
      if (gone(p, 'dir')) return true;
    }
  }
  return false;
}
