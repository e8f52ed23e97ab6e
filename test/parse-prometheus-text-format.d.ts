// Types of the parts of parse-prometheus-text-format (a dev dependency without its own) the tests use.
declare module 'parse-prometheus-text-format' {
  export interface PromSample {
    readonly value?: string;
    readonly labels?: Readonly<Record<string, string>>;
    readonly timestamp_ms?: string;
    readonly buckets?: Readonly<Record<string, string>>;
    readonly quantiles?: Readonly<Record<string, string>>;
    readonly count?: string;
    readonly sum?: string;
  }
  export interface PromFamily {
    readonly name: string;
    readonly help: string;
    /** COUNTER, GAUGE, HISTOGRAM, SUMMARY or UNTYPED. */
    readonly type: string;
    readonly metrics: readonly PromSample[];
  }
  /** Parse the Prometheus text format (0.0.4); throws on a line that is not valid. */
  export default function parsePrometheusTextFormat(text: string): PromFamily[];
}
