import type { Tid } from '#core/ids.js';
import { Signal } from '#core/mutex.js';
import { ReintTokens, type TokenDeps } from './reint-tokens.js';
import type { ReintStatus } from './reint-types.js';

/**
 * The state of one Reintegrator that its parts share: its public methods (reintegrator.ts), the run loop
 * (reint-loop.ts), the handling of the server's answer (reint-answer.ts) and the optimiser's call
 * (reint-optimise.ts). Nothing outside src/reint/ sees it.
 */
export class ReintState {
  readonly wake = new Signal();
  readonly tokens: ReintTokens;
  readonly tries = new Map<string, number>();
  /** When each refused record was first refused (monotonic ms): a resync waits REFUSAL_PATIENCE_MS from then. */
  readonly firstRefused = new Map<string, number>();
  stopped = false;
  sent = 0;
  rejected = 0;
  waitFor: Tid | null = null;
  waitUntil = 0;
  /** Waiting for the forwarded stream's hello until then (monotonic ms); null when not. */
  awaitStream: number | null = null;
  /**
   * After a batch accepted whole: the server's last TID in its answer, whose records the forwarded stream applies
   * here before the next batch goes, until `until` (monotonic ms) at most (reint-answer.ts STREAM_FIRST_MS).
   */
  streamFirst: { readonly tid: Tid; readonly until: number } | null = null;
  resyncing = 0; // monotonic deadline while a resync asked for runs, else 0
  lastError: string | null = null;
  offline = false;
  optimisedAway = 0;
  refused = 0;
  lastRefusal: ReintStatus['lastRefusal'] = null;
  stuckSince: number | null = null;
  optimisedAt: { covered: bigint; sent: bigint } | null = null;
  readonly #clock: TokenDeps['clock'];

  constructor(d: TokenDeps) {
    this.#clock = d.clock;
    this.tokens = new ReintTokens(d);
  }

  /** Send nothing until the forwarded stream has said hello, 30 s at most (Reintegrator#holdForStream says why). */
  holdForStream(): void {
    this.awaitStream = this.#clock.monotonic() + 30_000;
  }

  /** A refused record settled (rewritten, moved, resynced): its count of tries starts again. */
  forgetRefusals(seq: string): void {
    this.tries.delete(seq);
    this.firstRefused.delete(seq);
  }
}
