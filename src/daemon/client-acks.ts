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
      s.apply.flush(); // durable before acknowledged
      s.client.ack(s.db.meta.nodeId, tid).then(
        () => {
          this.#acked = tid;
        },
        (e: unknown) => s.log.debug({ err: (e as Error).message }, 'ack failed'),
      );
    }, Math.max(0, Math.min(100, this.#ackDue - now)));
    this.#ackTimer.unref();
  }

  /** No ack after stop. */
  stop(): void {
    if (this.#ackTimer !== undefined) clearTimeout(this.#ackTimer);
  }
}
