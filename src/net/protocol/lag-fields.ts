/**
 * Optional fields of a stream's `hello` that tell a client what it misses (journal/in-flight.ts has
 * their meaning): `next`, the first server record after the client's position ({ tid, time }), and
 * `waiting`, the records, files and bytes to come. A copy's answer (the snapshot, the copy stream's
 * hello) carries `next` too, after the `since` query the client sends (its last_rcvd; 0 when absent).
 * Added within protocol 3: a client that does not know them ignores them, one that gets none (an older
 * server, which also ignores `since`) knows less, nothing worse.
 */
import { parseTid, type Tid } from '#core/ids.js';

export interface WireWaiting {
  readonly records: number;
  readonly files: number;
  readonly bytes: number;
  readonly atLeast: boolean;
}

/** `next`, checked: null when absent or not a TID and a finite time. */
export function parseNext(v: unknown): { tid: Tid; time: number } | null {
  if (typeof v !== 'object' || v === null) return null;
  const o = v as { tid?: unknown; time?: unknown };
  const tid = typeof o.tid === 'string' ? parseTid(o.tid) : undefined;
  return tid === undefined || typeof o.time !== 'number' || !Number.isFinite(o.time) ? null : { tid, time: o.time };
}

/** `waiting`, checked: a count that is not a whole number of 0 or more reads as 0. */
export function parseWaiting(v: unknown): WireWaiting {
  const o = typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {};
  const n = (k: string): number => {
    const x = o[k];
    return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0 ? x : 0;
  };
  return { records: n('records'), files: n('files'), bytes: n('bytes'), atLeast: o.atLeast === true };
}
