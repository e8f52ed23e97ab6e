/**
 * What the core tells the outside about work done, as events. The daemon installs an implementation
 * (Prometheus, daemon/prom-metrics.ts); the default does nothing, so a core file calls
 * `metrics().applied(1)` without knowing whether anyone counts. Invariant: a call never throws and
 * never blocks.
 */
export interface Metrics {
  /** Records applied from a peer through the apply path. */
  applied(n: number): void;
  /** Records sent to a peer on its forwarded stream. */
  forwarded(peer: string, n: number): void;
  /** A peer's record refused (a conflict or a record this node cannot take), by code. */
  refused(code: string): void;
  /** A write-token request waited one round for another holder. */
  tokenWait(): void;
  /** A peer's forwarded stream ended (a disconnection). */
  disconnected(peer: string): void;
  /** An error answered or met, by its stable code. */
  error(code: string): void;
}

export const NO_METRICS: Metrics = {
  applied: () => undefined,
  forwarded: () => undefined,
  refused: () => undefined,
  tokenWait: () => undefined,
  disconnected: () => undefined,
  error: () => undefined,
};

let current: Metrics = NO_METRICS;

/** The process's metrics sink (one daemon per process). */
export function metrics(): Metrics {
  return current;
}

export function setMetrics(m: Metrics): void {
  current = m;
}
