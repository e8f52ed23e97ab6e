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
      const tid = s.db.lastRcvdOf(s.serverNode());
      if (tid <= this.#acked || s.stopped) return;
      try {
        s.apply.flush(); // durable before acknowledged
      } catch (e) {
        // Not durable, so not acknowledged: tried again in a moment. A full disk (the checkpoint grows the
        // database file) is this node's state, said once by DiskFullState; before, the throw in this timer
        // ended the daemon.
        const full = s.disk.note('ack', e, 'make applied records durable');
        if (full === null) s.log.warn({ err: (e as Error).message }, 'cannot make applied records durable; the ack waits');
        this.#retryLater();
        return;
      }
      s.disk.ok('ack');
      this.#retry.reset();
      s.client.ack(s.db.meta.nodeId, tid).then(
        () => {
          this.#acked = tid;
        },
        (e: unknown) => s.log.debug({ err: (e as Error).message }, 'ack failed'),
      );
    }, Math.max(0, Math.min(100, this.#ackDue - now)));
    this.#ackTimer.unref();
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
