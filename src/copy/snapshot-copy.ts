import type { Tid } from '#core/ids.js';
import type { Snapshot, SnapshotEntry } from '#net/snapshot-source.js';
import type { AttrPolicy } from '#policy/attr-policy.js';
import type { CopyDeps, CopyProgress, CopyResult } from './copy-deps.js';
import { finish, writebackEvery } from './copy-flush.js';
import { batchesOf, contentOf, isLarge, type Content, type Inline } from './fetch-plan.js';
import { placeLarge, placeRun, type PlaceContext } from './place.js';
import { dropLeftovers, toPlace } from './resync-compare.js';
import { misplaced, putBackAside, type PutBack } from './resync-protect.js';

/** Content requests in flight while a batch is written. */
const PREFETCH = 2;

const yieldToIo = (): Promise<void> => new Promise((r) => setImmediate(r));

/**
 * A copy from a snapshot (a resync, or a first copy resumed): what differs is placed in batches whose
 * content is requested ahead, then the local versions saved by protectLocal come back beside their names.
 */
export async function placeSnapshot(
  d: CopyDeps, snap: Snapshot, tid: Tid, t0: number, t1: number, skip: Set<string>, putBack: PutBack, entries: SnapshotEntry[],
  here: (e: SnapshotEntry) => SnapshotEntry, policy: AttrPolicy,
): Promise<CopyResult> {
  const inSnap = new Set(snap.entries.map((e) => e.fid));
  dropLeftovers(d, inSnap, tid);
  // Into an empty table (the usual first copy) no snapshot entry can be here already: no lookups needed,
  // and files are written straight at their names.
  const fresh = d.db.objectCount() === 0;
  if (fresh) d.db.deferHashIndex();
  const { apart, todo } = toPlace(d, entries, skip, fresh, policy);
  const p: CopyProgress = { files: 0, totalFiles: todo.length, bytes: 0, totalBytes: todo.reduce((n, e) => n + (e.size ?? 0), 0) };
  d.onProgress(p);
  const batches = batchesOf(todo);
  const ctx: PlaceContext = { d, tid, fresh, p, skipped: snap.entries.length - todo.length, policy, apart, here, inSnap };
  // One request brings the content of many small files. The next batches' requests go out (the yield lets
  // them leave) before this batch is written, so the server reads them while this process writes.
  const inFlight: Array<Promise<Content>> = [];
  let asked = 0;
  const ask = (): void => {
    while (inFlight.length < PREFETCH && asked < batches.length) {
      const c = contentOf(d, batches[asked++]!);
      c.catch(() => undefined); // awaited in its turn; a failure then ends the copy
      inFlight.push(c);
    }
  };
  ask();
  const writeback = writebackEvery(d, p);
  for (const batch of batches) {
    const content = await inFlight.shift()!;
    ask();
    await yieldToIo();
    // Small entries are placed in runs, each run one transaction; a large file is staged on its own in between.
    let run: Array<[SnapshotEntry, Inline | undefined]> = [];
    for (const e of batch) {
      if (!isLarge(e)) {
        run.push([e, content.get(e.fid)]);
        continue;
      }
      placeRun(ctx, run);
      run = [];
      await placeLarge(ctx, e);
    }
    placeRun(ctx, run);
    d.onProgress(p);
    writeback();
  }
  // Kept local changes of objects a moved directory did not bring to the server's name: kept beside instead.
  const again = misplaced(d, skip, entries.map(here), putBack);
  if (again.length > 0) {
    const content = await contentOf(d, again);
    for (const e of again) {
      if (isLarge(e)) await placeLarge(ctx, e);
      else placeRun(ctx, [[e, content.get(e.fid)]]);
    }
  }
  const ms = finish(d, tid, t0, t1);
  // Local versions that lost their name come back beside it, as local changes capture will journal.
  const keptAside = putBackAside(d, putBack, tid);
  return { tid: snap.tid, files: p.files, bytes: p.bytes, skipped: ctx.skipped, keptAside, ms };
}
