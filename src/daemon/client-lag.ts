/**
 * A client's lag behind its server, counted as the server counts it for this node (journal/in-flight.ts
 * has the one definition): records of the server's KML after this node's last_rcvd, and `lagSince`, the
 * time the oldest of them was journaled. A client cannot read the server's KML, so it learns both from
 * the server's frames (net/protocol/lag-fields.ts): a stream's hello (`tid`, `next`, `waiting`), each
 * forwarded record (its own TID and time, and `last`, the server's last TID as it left), each ping
 * (`tid`), and a copy's answer (the snapshot, or the copy stream's hello), which names the first record after
 * this node's last_rcvd, so a resync's lag counts in seconds too.
 * Invariant: the server's TID known here only grows within a stream, so a client busy applying a record
 * is never "lag 0" while the server counts it behind.
 */
import type { Tid } from '#core/ids.js';
import { NOTHING_WAITING, lagSeconds, type Waiting } from '#journal/in-flight.js';
import type { WireWaiting } from '#net/protocol/lag-fields.js';

/** A first copy's progress, as far as the lag needs it. */
export interface CopyCounts {
  readonly done: boolean;
  readonly files: number;
  readonly totalFiles: number;
  readonly bytes: number;
  readonly totalBytes: number;
}

export interface LagView {
  /** The server's last TID as far as this node knows (null: not known yet). */
  readonly serverTid: Tid | null;
  readonly lagRecords: number | null;
  /** When the oldest missing record was journaled (epoch ms); null when none, or not known yet. */
  readonly lagSince: number | null;
  /** 0 when caught up; null when records are missing whose time is not known here yet. */
  readonly lagSeconds: number | null;
  readonly waitingDown: Waiting;
}

export class ClientLag {
  #serverTid: Tid | null = null;
  /** The oldest server record known and not applied here (its TID and journal time): where the lag counts from. */
  #next: { tid: Tid; time: number } | null = null;
  /** What the server said waits for this node when the stream opened, and what was applied since. */
  #down: { at: WireWaiting; files: number; bytes: number } = { at: NOTHING_WAITING, files: 0, bytes: 0 };

  /** A stream opened: the server's last TID, the first record this node misses, and what waits. */
  onHello(tid: Tid, next: { tid: Tid; time: number } | null, waiting: WireWaiting): void {
    this.#serverTid = tid;
    this.#next = next;
    this.#down = { at: waiting, files: 0, bytes: 0 };
  }

  /** A ping names the server's last TID (records sent before it are applied by now). */
  onPing(tid: Tid): void {
    this.#serverTid = tid;
  }

  /**
   * A copy (first copy or resync) names the TID it brings this node to, and the first record after this
   * node's last_rcvd when the server says. When it does not (an older server), the oldest missing record
   * already known here stays where the lag counts from (view() drops it once applied).
   */
  onCopy(tid: Tid, next: { tid: Tid; time: number } | null): void {
    this.#serverTid = tid;
    if (next !== null) this.#next = next;
  }

  /**
   * A forwarded record arrived, to be applied now. Records come in TID order and one at a time: this one
   * is the oldest missing here, and the server had at least it (and `last`) while it is applied.
   */
  onRecord(r: { tid: Tid; time: number }, last: Tid | undefined, lastRcvd: Tid): void {
    if (r.tid > lastRcvd) this.#next = { tid: r.tid, time: r.time };
    const known = last !== undefined && last > r.tid ? last : r.tid;
    if (this.#serverTid === null || known > this.#serverTid) this.#serverTid = known;
  }

  /** A forwarded record was applied: one file (and its bytes) less to come when it brought content. */
  onApplied(r: { hash: string | null; size: number | null }): void {
    if (r.hash !== null) this.#down = { ...this.#down, files: this.#down.files + 1, bytes: this.#down.bytes + (r.size ?? 0) };
  }

  view(lastRcvd: Tid, now: number, copy: CopyCounts | null): LagView {
    const s = this.#serverTid;
    const lagRecords = s === null ? null : Number(s > lastRcvd ? s - lastRcvd : 0n);
    // The oldest missing record is the one being applied, or the next the stream brings; its time is known
    // once its frame (or the stream's hello) came.
    const lagSince = lagRecords !== null && lagRecords > 0 && this.#next !== null && this.#next.tid > lastRcvd ? this.#next.time : null;
    return {
      serverTid: s, lagRecords, lagSince,
      lagSeconds: lagRecords === null ? null : lagRecords === 0 ? 0 : lagSince === null ? null : lagSeconds(lagSince, now),
      waitingDown: this.#waitingDown(lagRecords, copy),
    };
  }

  /** Files and bytes still to come from the server: a first copy's rest, else the stream's count less what was applied. */
  #waitingDown(lagRecords: number | null, c: CopyCounts | null): Waiting {
    if (c !== null && !c.done) {
      return { records: lagRecords ?? 0, files: Math.max(0, c.totalFiles - c.files), bytes: Math.max(0, c.totalBytes - c.bytes), atLeast: false };
    }
    if (lagRecords === null || lagRecords === 0) return NOTHING_WAITING;
    const d = this.#down;
    return { records: lagRecords, files: Math.max(0, d.at.files - d.files), bytes: Math.max(0, d.at.bytes - d.bytes), atLeast: d.at.atLeast };
  }
}
