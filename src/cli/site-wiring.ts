/**
 * Wires what a site watches into a daemon: the Prometheus metrics (`prom`, the core's `Metrics` the runner
 * passes to the node it starts),
 * `/metrics` on the server's port behind the credential, the dashboard (`--ui`), and the observation
 * port (`--metrics ADDR:PORT`). Loaded only when a daemon runs.
 */
import { readFileSync } from 'node:fs';
import { IntersyncError } from '#core/errors.js';
import type { FilesetDb } from '#journal/fileset-db.js';
import type { HttpExtension } from '#net/server.js';
import { Dashboard, type DashboardSource } from '#daemon/dashboard.js';
import { PromMetrics, type MetricsView } from '#daemon/prom-metrics.js';
import { serveObserve } from '#daemon/observe.js';
import { parseListen } from './output.js';

export interface SiteOptions {
  readonly metrics?: string;
  readonly ui?: boolean;
  readonly adminPasswordFile?: string;
}

function readSecretFile(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (e) {
    throw IntersyncError.IO(`read ${what}`, file, e);
  }
}

export class SiteWiring {
  readonly prom = new PromMetrics();
  readonly dashboard: Dashboard | null;
  readonly #o: SiteOptions;
  readonly #admin: string | null;
  #source: DashboardSource | null = null;
  #observe: { close(): Promise<void>; port: number } | null = null;

  constructor(o: SiteOptions) {
    this.#o = o;
    this.#admin = o.adminPasswordFile === undefined ? null : readSecretFile(o.adminPasswordFile, 'admin password file');
    if (this.#admin === '') throw IntersyncError.BAD_ARGUMENT(`${o.adminPasswordFile} is empty`, 'put a password in it (one line)');
    this.dashboard = o.ui === true ? new Dashboard(() => this.#source) : null;
  }

  /** Routes on the server's own port: /metrics (credential required) and the dashboard. */
  http(): HttpExtension {
    const dash = this.dashboard;
    return {
      ...(dash === null ? {} : { openPrefix: '/ui/' }),
      extend: (app, edge) => {
        app.get('/metrics', async (_req, reply) => reply.type(this.prom.contentType).send(await this.prom.text()));
        // /ui (no slash) redirects; it is under the open prefix only with the slash, so answer it here too.
        dash?.routes(app, edge.trust);
      },
    };
  }

  /** The node runs: attach the views and open the observation port. Returns its URL, or null. */
  async started(o: { db: FilesetDb; dir: string; role: 'server' | 'client'; view: MetricsView; tokens: DashboardSource['tokens']; secrets: readonly string[]; withUi: boolean }): Promise<string | null> {
    this.prom.attach(o.view);
    this.#source = {
      db: o.db, dir: o.dir, role: o.role, view: o.view, tokens: o.tokens,
      passwords: () => [...o.secrets, ...(this.#admin === null ? [] : [this.#admin])].filter((p) => p !== ''),
    };
    if (this.#o.metrics === undefined) return null;
    const l = parseListen(this.#o.metrics);
    if (l === null) return null;
    this.#observe = await serveObserve(l.host, l.port, this.prom, o.withUi ? this.dashboard : null);
    return `http://${l.host.includes(':') ? `[${l.host}]` : l.host}:${this.#observe.port}`;
  }

  async stop(): Promise<void> {
    await this.#observe?.close();
  }
}
