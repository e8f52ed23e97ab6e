import { scopesFor } from '#policy/token-table.js';
import type { ReintegratorDeps } from './reint-types.js';

export type TokenDeps = Pick<ReintegratorDeps, 'db' | 'client' | 'node' | 'clock' | 'leaseMs' | 'scopeMode'>;

/**
 * The write tokens a Reintegrator holds for the scopes its batches touch, and the server's recalls of them.
 * A recalled token goes back once nothing pending needs it (or at once when asked); every token goes back
 * when idle for half a lease.
 */
export class ReintTokens {
  readonly #d: TokenDeps;
  readonly #held = new Map<string, number>(); // scope -> when renewed
  readonly #recalled = new Set<string>();
  #lastActivity = 0;

  constructor(d: TokenDeps) {
    this.#d = d;
  }

  /** The scopes whose token is held, sorted. */
  held(): string[] {
    return [...this.#held.keys()].sort();
  }

  /** Forget every token held, giving none back (the connection is gone). */
  forgetHeld(): void {
    this.#held.clear();
  }

  /** The server wants the token of `scope` back. */
  recall(scope: string): void {
    this.#recalled.add(scope);
  }

  /** True while a recalled token is not given back yet. */
  anyRecalled(): boolean {
    return this.#recalled.size > 0;
  }

  /** A batch is about to go: idleness counts from now. */
  active(): void {
    this.#lastActivity = this.#d.clock.monotonic();
  }

  /** Hold the token of every scope in `scopes`, renewing a lease a third gone. */
  async take(scopes: string[]): Promise<void> {
    const d = this.#d;
    const now = d.clock.monotonic();
    for (const scope of scopes) {
      const renewed = this.#held.get(scope);
      if (renewed !== undefined && now - renewed < d.leaseMs() / 3) continue;
      await d.client.token(d.node, scope, 'acquire', 5000);
      this.#held.set(scope, d.clock.monotonic());
    }
  }

  /** Give every held token back. */
  async releaseAll(): Promise<void> {
    for (const scope of [...this.#held.keys()]) {
      await this.#d.client.token(this.#d.node, scope, 'release');
      this.#held.delete(scope);
      this.#recalled.delete(scope);
    }
  }

  /** Give back recalled tokens once nothing pending needs them; all of them when idle for half a lease. */
  async release(onlyRecalled: boolean, evenIfPending = false): Promise<void> {
    const d = this.#d;
    const idle = d.clock.monotonic() - this.#lastActivity > d.leaseMs() / 2;
    for (const scope of [...this.#held.keys()]) {
      const recalled = this.#recalled.has(scope);
      if (!recalled && (onlyRecalled || !idle)) continue;
      if (recalled && !evenIfPending && d.db.lmlCount() > 0) {
        const pendingPaths = d.db.readLml(0n, 100_000).flatMap((r) => (r.newPath === null ? [r.path] : [r.path, r.newPath]));
        if (scopesFor(pendingPaths, d.scopeMode()).includes(scope)) continue;
      }
      await d.client.token(d.node, scope, 'release');
      this.#held.delete(scope);
      this.#recalled.delete(scope);
    }
    for (const scope of [...this.#recalled]) if (!this.#held.has(scope)) this.#recalled.delete(scope);
  }
}
