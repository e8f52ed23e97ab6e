/**
 * What is in flight for `intersync status` (and the dashboard): files and bytes waiting in each
 * direction and token scopes in words; lag and conflict counts come from daemon/observe.ts.
 */
import { asTid, type Tid } from '#core/ids.js';
import type { FilesetDb } from '#journal/fileset-db.js';

/** Records looked at, at most, to count what waits (a peer far behind shows "at least"). */
export const WAIT_SCAN_CAP = 50_000;

export interface Waiting {
  readonly records: number;
  /** Distinct names with new content, and the bytes of that content. */
  readonly files: number;
  readonly bytes: number;
  /** More records wait than were counted (WAIT_SCAN_CAP). */
  readonly atLeast: boolean;
}

function tally(recs: ReadonlyArray<{ path: string; newPath: string | null; hash: string | null; size: number | null }>, files: Map<string, number>): void {
  for (const r of recs) if (r.hash !== null) files.set(r.newPath ?? r.path, r.size ?? 0);
}

/** Server side: what the KML holds after `since` (a peer's last_rcvd), as that peer will receive it. */
export function waitingAfter(db: FilesetDb, since: Tid): Waiting {
  return waiting((after) => db.readKml(after === null ? since : asTid(after), PAGE), (r) => r.tid);
}

/** Client side: the LML (local changes the server has not accepted yet). */
export function waitingLocal(db: FilesetDb): Waiting {
  return waiting((after) => db.readLml(after ?? 0n, PAGE), (r) => r.seq);
}

const PAGE = 5000;

/** Records and the files they leave, read a page at a time (`read(after)`, `key` the paging key), up to WAIT_SCAN_CAP. */
function waiting<R extends { path: string; newPath: string | null; hash: string | null; size: number | null }>(
  read: (after: bigint | null) => readonly R[], key: (r: R) => bigint,
): Waiting {
  const files = new Map<string, number>();
  let after: bigint | null = null;
  let records = 0;
  for (;;) {
    const page = read(after);
    tally(page, files);
    records += page.length;
    if (page.length < PAGE || records >= WAIT_SCAN_CAP) break;
    after = key(page[page.length - 1]!);
  }
  return { records, files: files.size, bytes: [...files.values()].reduce((a, b) => a + b, 0), atLeast: records >= WAIT_SCAN_CAP };
}

/**
 * Lag, the one definition the status and the metrics use: records of the server's KML after the peer's
 * acknowledged last_rcvd, and seconds since the oldest of them was journaled (daemon/observe.ts).
 */
export { peerLag as lagOf, conflictsOf as conflictCounts } from '#daemon/observe.js';

/** "/" is the whole fileset; "/docs" the top-level folder docs. */
export function scopeWords(scope: string): string {
  return scope === '/' || scope === '' ? 'the whole fileset' : `the folder ${scope.replace(/^\//, '')}/ and everything below it`;
}
