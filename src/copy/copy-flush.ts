import type { Tid } from '#core/ids.js';
import type { CopyDeps, CopyProgress, CopyResult } from './copy-deps.js';

// Durability of a copy: written back in the background as it goes, flushed once at the end, and only then
// marked done (the forwarded stream follows from the copy's TID).

/** Written back in the background every so many files or bytes, so that the final flush is short. */
const WRITEBACK_FILES = 4_000;
const WRITEBACK_BYTES = 64 << 20;

/** A check to call after each run: starts a background writeback every WRITEBACK_FILES files or WRITEBACK_BYTES bytes. */
export function writebackEvery(d: CopyDeps, p: CopyProgress): () => void {
  let written = 0;
  let made = 0;
  return () => {
    if (p.bytes - written < WRITEBACK_BYTES && p.files - made < WRITEBACK_FILES) return;
    d.apply.startWriteback();
    written = p.bytes;
    made = p.files;
  };
}

/** Make the copy durable, then mark it done at `tid` (the stream follows from there); where the time went. */
export function finish(d: CopyDeps, tid: Tid, t0: number, t1: number): CopyResult['ms'] {
  const t2 = d.clock.monotonic();
  d.apply.flush();
  d.db.finishCopy(d.serverNode, tid, d.clock.now());
  return { snapshot: Math.round(t1 - t0), place: Math.round(t2 - t1), flush: Math.round(d.clock.monotonic() - t2) };
}
