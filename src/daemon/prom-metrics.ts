/**
 * The Prometheus face of a daemon (prom-client): counters fed by the core through the `Metrics`
 * interface (its named events, and its generic count, gauge and observe, each made at its first use),
 * gauges read from the node when scraped (lag per peer, conflicts, capture queue, records journaled,
 * resyncs, bytes on the wire). Invariant: a scrape reads, never changes, the node.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { MetricLabels, Metrics } from '#core/metrics.js';

type Family = Counter | Gauge | Histogram;
type FamilyOptions = { name: string; help: string; labelNames: string[]; registers: Registry[] };

/** What a scrape reads from the running node. */
export interface MetricsView {
  readonly role: 'server' | 'client';
  lastTid(): bigint;
  capturePending(): number;
  conflicts(): { open: number; settled: number };
  resyncs(): number;
  pendingLocal(): number;
  /** Lag seconds null: records are missing whose journal time is not known here yet (the gauge skips it). */
  peers(): ReadonlyArray<{ readonly peer: string; readonly lagRecords: number; readonly lagSeconds: number | null; readonly connected: boolean }>;
  /** Bytes received and sent on this node's HTTP connections so far. */
  bytes(): { readonly in: number; readonly out: number };
}

export class PromMetrics implements Metrics {
  readonly registry = new Registry();
  #view: MetricsView | null = null;
  readonly #applied: Counter;
  readonly #forwarded: Counter<'peer'>;
  readonly #refused: Counter<'code'>;
  readonly #tokenWaits: Counter;
  readonly #disconnections: Counter<'peer'>;
  readonly #errors: Counter<'code'>;
  /** The families of the generic calls, by their full name, made at first use with that use's label names. */
  readonly #made = new Map<string, Family>();

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'intersync_' });
    this.#applied = new Counter({ name: 'intersync_records_applied_total', help: 'Records from peers applied through the apply path', registers });
    this.#forwarded = new Counter({ name: 'intersync_records_forwarded_total', help: 'Records sent to peers on their forwarded streams', labelNames: ['peer'], registers });
    this.#refused = new Counter({ name: 'intersync_records_refused_total', help: 'Records of peers refused (conflicts, records this node cannot take), by code', labelNames: ['code'], registers });
    this.#tokenWaits = new Counter({ name: 'intersync_token_waits_total', help: 'Rounds a write-token request waited for another holder (each recalls it)', registers });
    this.#disconnections = new Counter({ name: 'intersync_disconnections_total', help: 'Forwarded streams of peers that ended', labelNames: ['peer'], registers });
    this.#errors = new Counter({ name: 'intersync_errors_total', help: 'Errors answered or met, by stable code', labelNames: ['code'], registers });
    const view = (): MetricsView | null => this.#view;
    let journaledFrom: bigint | null = null;
    new Gauge({
      name: 'intersync_records_journaled', help: 'KML records journaled since the daemon started', registers,
      collect() {
        const v = view();
        if (v === null) return;
        journaledFrom ??= v.lastTid();
        this.set(Number(v.lastTid() - journaledFrom));
      },
    });
    new Gauge({ name: 'intersync_last_tid', help: 'The last TID of this node\'s KML', registers, collect() { const v = view(); if (v !== null) this.set(Number(v.lastTid())); } });
    new Gauge({ name: 'intersync_capture_queue', help: 'Change hints waiting in the capture queue', registers, collect() { const v = view(); if (v !== null) this.set(v.capturePending()); } });
    new Gauge({ name: 'intersync_lml_pending', help: 'Local records the server has not accepted yet (a client\'s LML)', registers, collect() { const v = view(); if (v !== null) this.set(v.pendingLocal()); } });
    new Gauge({ name: 'intersync_resyncs', help: 'Full resyncs this node went through (kept across restarts)', registers, collect() { const v = view(); if (v !== null) this.set(v.resyncs()); } });
    new Gauge({
      name: 'intersync_conflicts', help: 'Conflicts, by state (open: a version kept beside the name awaits a person)', labelNames: ['state'], registers,
      collect() {
        const v = view();
        if (v === null) return;
        const c = v.conflicts();
        this.set({ state: 'open' }, c.open);
        this.set({ state: 'settled' }, c.settled);
      },
    });
    const peerGauge = (name: string, help: string, pick: (p: ReturnType<MetricsView['peers']>[number]) => number | null): void => {
      new Gauge({
        name, help, labelNames: ['peer'], registers,
        collect() {
          const v = view();
          if (v === null) return;
          this.reset();
          for (const p of v.peers()) {
            const x = pick(p);
            if (x !== null) this.set({ peer: p.peer }, x);
          }
        },
      });
    };
    peerGauge('intersync_lag_records', 'Records of the server\'s KML after the peer\'s last_rcvd', (p) => p.lagRecords);
    peerGauge('intersync_lag_seconds', 'Seconds since the oldest record the peer has not received was journaled', (p) => p.lagSeconds);
    peerGauge('intersync_peer_connected', '1 while the peer\'s forwarded stream (or this client\'s link) is open', (p) => (p.connected ? 1 : 0));
    new Gauge({
      name: 'intersync_bytes', help: 'Bytes on this node\'s HTTP connections (a counter: in and out; a client counts its connections to the server)', labelNames: ['direction'], registers,
      collect() {
        const v = view();
        if (v === null) return;
        const b = v.bytes();
        this.set({ direction: 'in' }, b.in);
        this.set({ direction: 'out' }, b.out);
      },
    });
  }

  attach(view: MetricsView): void {
    this.#view = view;
  }

  applied(n: number): void {
    this.#applied.inc(n);
  }

  forwarded(peer: string, n: number): void {
    this.#forwarded.inc({ peer }, n);
  }

  refused(code: string): void {
    this.#refused.inc({ code });
  }

  tokenWait(): void {
    this.#tokenWaits.inc();
  }

  disconnected(peer: string): void {
    this.#disconnections.inc({ peer });
  }

  error(code: string): void {
    this.#errors.inc({ code });
  }

  count(name: string, labels: MetricLabels = {}, n = 1): void {
    this.#use(`intersync_${name}_total`, labels, (o) => new Counter(o), (m) => m instanceof Counter && m.inc(labels, n));
  }

  gauge(name: string, value: number, labels: MetricLabels = {}): void {
    this.#use(`intersync_${name}`, labels, (o) => new Gauge(o), (m) => m instanceof Gauge && m.set(labels, value));
  }

  observe(name: string, value: number, labels: MetricLabels = {}): void {
    this.#use(`intersync_${name}`, labels, (o) => new Histogram(o), (m) => m instanceof Histogram && m.observe(labels, value));
  }

  /**
   * The family `full`, made at its first use with that use's label names, given to `fn`. A call never throws:
   * a name prom-client refuses, one used again as another kind or with other label names, is dropped.
   */
  #use(full: string, labels: MetricLabels, make: (o: FamilyOptions) => Family, fn: (m: Family) => unknown): void {
    try {
      let m = this.#made.get(full);
      if (m === undefined) {
        m = make({ name: full, help: full.replace(/^intersync_/, '').replace(/_/g, ' '), labelNames: Object.keys(labels), registers: [this.registry] });
        this.#made.set(full, m);
      }
      fn(m);
    } catch {
      // dropped, as said above
    }
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
