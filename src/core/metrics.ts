/**
 * What the core tells the outside about work done. A node is given its `Metrics` beside its logger and hands
 * it to the parts that count (the apply path, the server and its routes); the default, NO_METRICS, does
 * nothing, so a part counts without knowing whether anyone listens. Two kinds of call: the named events below
 * (the counters /metrics has always exported), and generic `count`, `gauge` and `observe` for a new number,
 * which an exporter names after `name` (daemon/prom-metrics.ts: `intersync_<name>`, a count with `_total`).
 * Invariant: a call never throws and never blocks; a name keeps one kind and one set of label names.
 */
export type MetricLabels = Readonly<Record<string, string>>;

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
  /** Add `n` (default 1) to the counter `name` (snake_case, no prefix). */
  count(name: string, labels?: MetricLabels, n?: number): void;
  /** Set the gauge `name` to `value`. */
  gauge(name: string, value: number, labels?: MetricLabels): void;
  /** One observation of `name` (a duration in seconds, a size in bytes) into its histogram. */
  observe(name: string, value: number, labels?: MetricLabels): void;
}

export const NO_METRICS: Metrics = {
  applied: () => undefined,
  forwarded: () => undefined,
  refused: () => undefined,
  tokenWait: () => undefined,
  disconnected: () => undefined,
  error: () => undefined,
  count: () => undefined,
  gauge: () => undefined,
  observe: () => undefined,
};
