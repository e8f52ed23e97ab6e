/**
 * The Prometheus face of a daemon (prom-client): counters fed by the core through the `Metrics`
 * interface, gauges read from the node when scraped (lag per peer, conflicts, capture queue, records
 * journaled, resyncs, bytes on the wire). Invariant: a scrape reads, never changes, the node.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Metrics } from '#core/metrics.js';

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

  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
