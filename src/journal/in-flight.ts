/**
 * What is in flight between two nodes, read from the journal: THE definition of lag, and the files and
 * bytes waiting in each direction. The server's status, its metrics and its forwarded stream's hello use
 * it; a client computes the same lag from the same record times (daemon/client-node.ts).
 *
 * Lag of a peer: the records of the server's KML after the peer's last_rcvd, and `since`, the time
 * journaled (`KmlRecord.time`) of the first of them: the oldest change the peer does not have yet.
 * Lag in seconds is `now - since`, 0 when nothing is missing. The server counts from the last_rcvd the
 * peer acknowledged; the client from the one it applied (an ack follows within a second). Both read
 * `since` from the same record, so both ends show the same `lagSince` and, read at the same moment, the
 * same seconds.
 */
import { asTid, type Tid } from '#core/ids.js';
import type { FilesetDb } from './fileset-db.js';

export interface Lag {
  readonly records: number;
  /** When the oldest missing record was journaled (epoch ms), null when nothing is missing. */
  readonly since: number | null;
  readonly seconds: number;
}

/** Seconds of lag from `since` (the oldest missing record's time), 0 when none. */
export function lagSeconds(since: number | null, now: number): number {
  return since === null ? 0 : Math.max(0, Math.round((now - since) / 1000));
}

/** The lag of a peer whose last_rcvd is `after`, on the node that journaled the records (the server). */
export function peerLag(db: FilesetDb, after: Tid, now: number): Lag {
  const records = Number(db.lastTid - after);
  if (records <= 0) return { records: 0, since: null, seconds: 0 };
  const first = db.readKml(after, 1)[0];
  const since = first === undefined ? null : first.time;
  return { records, since, seconds: lagSeconds(since, now) };
}

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

export const NOTHING_WAITING: Waiting = { records: 0, files: 0, bytes: 0, atLeast: false };

function tally(recs: ReadonlyArray<{ path: string; newPath: string | null; hash: string | null; size: number | null }>, files: Map<string, number>): void {
  for (const r of recs) if (r.hash !== null) files.set(r.newPath ?? r.path, r.size ?? 0);
}

/** Server side: what the KML holds after `since` (a peer's last_rcvd), as that peer will receive it. */
export function waitingAfter(db: FilesetDb, since: Tid): Waiting {
  if (db.lastTid <= since) return NOTHING_WAITING;
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
