import { formatTid, type Tid } from '#core/ids.js';
import type { Service } from '#core/service.js';
import { runLoop } from './reint-loop.js';
import { ReintState } from './reint-state.js';
import type { ReintegratorDeps, ReintStatus } from './reint-types.js';

export type { ReintegratorDeps, ReintStatus } from './reint-types.js';

/**
 * Ships the client's LML to the server (reintegration), oldest first, in
 * batches, holding the write token for every scope a batch touches. Accepted
 * records leave the LML (acceptOwn); a conflict waits until the forwarded
 * stream has brought the server's side, whose arrival resolves it.
 */
export class Reintegrator implements Service {
  readonly #d: ReintegratorDeps;
  readonly #s: ReintState;
  #running: Promise<void> | null = null;

  constructor(d: ReintegratorDeps) {
    this.#d = d;
    this.#s = new ReintState(d);
    d.db.onCommit(() => this.#s.wake.fire());
  }

  wake(): void {
    this.#s.wake.fire();
  }

  /**
   * Send nothing until the forwarded stream has applied the server's records up to `tid` (or 30 s passed):
   * on (re)connection the server's changes come first, the conflict step runs on them, then the LML goes.
   */
  holdUntil(tid: Tid): void {
    this.#s.awaitStream = null;
    this.#s.wake.fire();
    if (this.#d.db.lastRcvdOf(this.#d.serverNode()) >= tid) return;
    this.#s.waitFor = tid;
    this.#s.waitUntil = this.#d.clock.monotonic() + 30_000;
  }

  /**
   * A connection to the server begins (a start, or after a cut): send nothing until the forwarded stream has
   * said hello (then holdUntil), so that the server's records come first, as the reconnection sequence says,
   * not whichever request reaches the server first. Before, a client started with pending changes sent them
   * at once: its removal of one name of a hard link went to a server whose stream was about to tell it to
   * resync, or a write through a new link reached a restarted server before the stream brought its change of
   * the file (chaos seed 9218). Armed when the client starts or comes back on line, and after a try that
   * could not reach the server (armed again at each such try); 30 s at most.
   */
  holdForStream(): void {
    this.#s.holdForStream();
  }

  /** The resync asked for by onStuck is done (or failed for good): reintegrate again. */
  resumeAfterResync(): void {
    this.#s.resyncing = 0;
    this.#s.optimisedAt = null; // the resync moved local objects made on names the server has now: their records too
    this.#s.wake.fire();
  }

  /** The server wants a token back: reintegrate what is pending, then release it. */
  onRecall(scope: string): void {
    this.#s.tokens.recall(scope);
    this.#s.wake.fire();
  }

  /** Disconnected on purpose: keep journaling, send nothing until reconnected. */
  setOffline(offline: boolean): void {
    this.#s.offline = offline;
    if (offline) this.#s.tokens.forgetHeld(); // the server lets leases lapse; ask again after reconnecting
    this.#s.wake.fire();
  }

  /** Ends the loop at its next turn (a round under way finishes first); resolves once run has returned. */
  async stop(): Promise<void> {
    this.#s.stopped = true;
    this.#s.wake.fire();
    await this.#running?.catch(() => undefined);
  }

  status(): ReintStatus {
    return {
      pending: this.#d.db.lmlCount(), sent: this.#s.sent, heldTokens: this.#s.tokens.held(),
      waitingForTid: this.#s.waitFor === null ? null : formatTid(this.#s.waitFor), lastError: this.#s.lastError, rejected: this.#s.rejected,
      optimisedAway: this.#s.optimisedAway, refused: this.#s.refused, lastRefusal: this.#s.lastRefusal,
      // Nothing pending is no longer stuck, but not while a resync it asked for runs: that resync drops the
      // refused change and puts its content back beside, which capture journals again a moment later. Before,
      // the status published in that moment said "lag 0" for a client stuck for good (CI, test/status-stuck).
      stuckSince: this.#d.db.lmlCount() === 0 && this.#s.resyncing === 0 ? null : this.#s.stuckSince,
    };
  }

  /** Reintegrate until stopped (reint-loop.ts). */
  run(): Promise<void> {
    this.#running ??= runLoop(this.#d, this.#s);
    return this.#running;
  }
}
