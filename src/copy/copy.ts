import { parseTid } from '#core/ids.js';
import { IntersyncError } from '#core/errors.js';
import type { SnapshotEntry } from '#net/snapshot-source.js';
import { parseNext } from '#net/protocol/lag-fields.js';
import type { CopyDeps, CopyProgress, CopyResult } from './copy-deps.js';
import { streamedCopy } from './copy-stream.js';
import { checkedEntry, dropUnjournaled } from './place.js';
import { pendingPutBack, protectLocal, putBackAside } from './resync-protect.js';
import { placeSnapshot } from './snapshot-copy.js';

// The entry points of a copy from the server. Its parts: copy-stream.ts (a first copy into an empty table),
// snapshot-copy.ts (from a snapshot: a resync, a first copy resumed) with resync-compare.ts and
// resync-protect.ts, fetch-plan.ts (what is fetched in what runs), place.ts (placing and journaling an
// entry), copy-flush.ts (durability), copy-deps.ts (what a copy is given and gives back).

export type { CopyDeps, CopyProgress, CopyResult } from './copy-deps.js';
export { draftOf, dropUnjournaled } from './place.js';

/** A whole copy from the server: the first one (or its resumption after a kill), or a resync's. */
export type CopyKind = 'first copy' | 'resync';

/**
 * Who shows a copy's progress to a person (the CLI: a bar or lines). Invariant: each copy is `begin`, then
 * its reports in order, then `end`, also when it fails half-way; copies never overlap.
 */
export interface CopyObserver {
  begin(kind: CopyKind): void;
  progress(p: CopyProgress): void;
  end(): void;
}

/**
 * A client's first copy of the whole fileset, the server's object table at
 * one TID, through the apply path: streamed into an empty table, else from a
 * snapshot. Resumable: an object already here with the snapshot's fid and
 * content is skipped, leftovers of an older snapshot are removed, local
 * changes not accepted yet are protected. When done the forwarded stream
 * follows from that TID, so nothing changed on the server during the copy is
 * lost; the capture that starts after it journals what changed here meanwhile.
 */
export async function firstCopy(d: CopyDeps): Promise<CopyResult> {
  dropUnjournaled(d);
  if (d.db.objectCount() === 0 && d.db.lmlCount() === 0) return streamedCopy(d);
  const t0 = d.clock.monotonic();
  // This node's last_rcvd: the server names the first record after it, where the lag counts from during a resync.
  const raw = await d.client.snapshot(d.db.lastRcvdOf(d.serverNode));
  const t1 = d.clock.monotonic();
  const tid = parseTid(raw.tid);
  if (tid === undefined || !Array.isArray(raw.entries)) throw IntersyncError.PROTOCOL('the snapshot must name its TID and list its entries');
  d.onServerTid?.(tid, parseNext(raw.next));
  const policy = d.apply.attrs;
  const snap = { ...raw, entries: raw.entries.map((e) => checkedEntry(d, e)).filter((e): e is SnapshotEntry => e !== null) };
  const earlier = pendingPutBack(d);
  const { skip, putBack, entries, here } = protectLocal(d, snap.entries, tid, earlier);
  try {
    return await placeSnapshot(d, snap, tid, t0, t1, skip, putBack, entries, here, policy);
  } catch (e) {
    // Whatever was placed or not, the local versions saved above come back into the tree now (beside their
    // names), so a failed resync never holds them out of it; the next one places the rest.
    try {
      putBackAside(d, putBack, tid);
    } catch (e2) {
      d.log.error({ err: (e2 as Error).message }, 'resync: cannot put back the saved local versions yet; the next try will');
    }
    throw e;
  }
}
