import { Backoff, DISK_FULL_CAP_MS } from '#core/backoff.js';
import { NO_VERSION, type Tid } from '#core/ids.js';
import type { ClientState } from './client-state.js';

/**
 * A client's acknowledgements to the server of what it applied (scheduleAck (daemon/client-acks.ts)): the timer, and the
 * last TID acknowledged. The follow loop schedules them; stop clears the timer.
 */
export class ClientAcks {
  readonly #s: ClientState;
  #ackTimer: NodeJS.Timeout | undefined;
  #ackDue: number | undefined;
  #acked: Tid = NO_VERSION;
  /** A flush before an ack is in progress; `#again`: an ack came due meanwhile (scheduled once it is done). */
  #flushing = false;
  #again = false;
  /** After a flush that failed (a full disk cannot take the journal's checkpoint): the wait before the next try. */
  readonly #retry = new Backoff(500, DISK_FULL_CAP_MS);

  constructor(s: ClientState) {
    this.#s = s;
  }

  /** The last TID this node acknowledged to the server (and the server answered). */
  get acked(): Tid {
    return this.#acked;
  }

  /**
   * Acknowledge what was applied once the stream is quiet for 100 ms, or at the latest 1 s after the first
   * record not acknowledged: each ack makes everything durable first (syncfs), which a busy stream must not
   * pay per record.
   */
  schedule(): void {
    const s = this.#s;
    const now = s.o.clock.monotonic();
    this.#ackDue ??= now + 1000;
    if (this.#ackTimer !== undefined) clearTimeout(this.#ackTimer);
    this.#ackTimer = setTimeout(() => {
      this.#ackTimer = undefined;
      this.#ackDue = undefined;
      void this.#flushAndAck();
    }, Math.max(0, Math.min(100, this.#ackDue - now)));
    this.#ackTimer.unref();
  }

  /**
   * Make what was applied up to the last TID received durable, then acknowledge that TID. The flush does not hold
   * this thread (ApplyPath#flushAsync: the syncfs runs in a child process), so records go on being applied
   * meanwhile; those are not in this ack (the TID is read before the flush starts) but in the next one, scheduled
   * once this flush is done. Before, the flush blocked the thread for the whole syncfs, once a second while
   * records flowed (1.5 CPU-seconds of a 5,000-file burst's client).
   */
  async #flushAndAck(): Promise<void> {
    const s = this.#s;
    if (this.#flushing) {
      this.#again = true; // after the flush in progress
      return;
    }
    const tid = s.db.lastRcvdOf(s.serverNode());
    if (tid <= this.#acked || s.stopped) return;
    this.#flushing = true;
    try {
      await s.apply.flushAsync(); // durable before acknowledged
    } catch (e) {
      if (s.stopped) return; // the journal closed under the flush: nothing to acknowledge any more
      // Not durable, so not acknowledged: tried again in a moment. A full disk (the checkpoint grows the
      // database file) is this node's state, said once by DiskFullState; before, the throw in this timer
      // ended the daemon.
      const full = s.disk.note('ack', e, 'make applied records durable');
      if (full === null) s.log.warn({ err: (e as Error).message }, 'cannot make applied records durable; the ack waits');
      this.#again = false;
      this.#retryLater();
      return;
    } finally {
      this.#flushing = false;
    }
    if (s.stopped) return;
    s.disk.ok('ack');
    this.#retry.reset();
    s.client.ack(s.db.meta.nodeId, tid).then(
      () => {
        this.#acked = tid;
      },
      (e: unknown) => s.log.debug({ err: (e as Error).message }, 'ack failed'),
    );
    if (this.#again) {
      this.#again = false;
      this.schedule();
    }
  }

  #retryLater(): void {
    this.#ackTimer = setTimeout(() => {
      this.#ackTimer = undefined;
      this.schedule();
    }, this.#retry.next(true));
    this.#ackTimer.unref();
  }

  /** No ack after stop. */
  stop(): void {
    if (this.#ackTimer !== undefined) clearTimeout(this.#ackTimer);
  }
}
