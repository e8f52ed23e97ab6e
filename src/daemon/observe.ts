/**
 * How a running node is observed: the metrics view of a server or a client, and the observation port.
 */
import type { FastifyInstance } from 'fastify';
import type { Tid } from '#core/ids.js';
import type { FilesetDb } from '#journal/fileset-db.js';
import { peerLag } from '#journal/in-flight.js';
import type { Capture } from '#presto/capture.js';
import type { FilesetServer } from '#net/server.js';
import type { ClientStatus } from './client-node.js';
import type { WireBytes } from '#net/wire-bytes.js';
import type { MetricsView, PromMetrics } from './prom-metrics.js';
import type { Dashboard } from './dashboard.js';

export function conflictsOf(db: FilesetDb): { open: number; settled: number } {
  const all = db.conflicts(true);
  const open = all.filter((c) => c.status === 'open').length;
  return { open, settled: all.length - open };
}

/** A server's peers: every registered node with its acknowledged last_rcvd. */
export function serverPeers(db: FilesetDb, server: FilesetServer | null, now: number): Array<{ peer: string; lagRecords: number; lagSeconds: number; connected: boolean; lastRcvd: bigint; lastSeen: number | null; replicate: boolean }> {
  const acked = new Map(db.lastRcvd().map((p) => [p.peer, p.tid]));
  const connected = new Set(server?.connectedPeers() ?? []);
  return db.peers().map((p) => {
    const tid = acked.get(p.node) ?? 0n;
    const lag = peerLag(db, tid as Tid, now);
    return { peer: p.node, lagRecords: lag.records, lagSeconds: lag.seconds, connected: connected.has(p.node), lastRcvd: tid, lastSeen: p.lastSeen ?? null, replicate: p.replicate };
  });
}

export function serverView(node: { db: FilesetDb; capture: Capture; server: FilesetServer | null }, now: () => number): MetricsView {
  return {
    role: 'server',
    lastTid: () => node.db.lastTid,
    capturePending: () => node.capture.status().pending,
    conflicts: () => conflictsOf(node.db),
    resyncs: () => 0,
    pendingLocal: () => 0,
    peers: () => serverPeers(node.db, node.server, now()),
    bytes: () => node.server?.bytes.totals ?? { in: 0, out: 0 },
  };
}

export function clientView(node: { db: FilesetDb; capture: Capture; client: { bytes: WireBytes }; status(): ClientStatus }): MetricsView {
  return {
    role: 'client',
    lastTid: () => node.db.lastTid,
    capturePending: () => node.capture.status().pending,
    conflicts: () => conflictsOf(node.db),
    resyncs: () => node.status().resyncs,
    pendingLocal: () => node.db.lmlCount(),
    peers: () => {
      const s = node.status();
      // The same definition as the server's for this node (journal/in-flight.ts); seconds unknown for a moment
      // when records are announced whose time has not come yet.
      return [{ peer: s.serverNode ?? 'server', lagRecords: s.lagRecords ?? 0, lagSeconds: s.lagSeconds, connected: s.connected }];
    },
    bytes: () => node.client.bytes.totals,
  };
}

/**
 * The observation port (`--metrics ADDR:PORT`): `/metrics` without a credential, and on a client (which
 * has no port of its own) the dashboard too when asked. Bind it where only the monitoring can reach it.
 */
export async function serveObserve(host: string, port: number, prom: PromMetrics, dash: Dashboard | null): Promise<{ close(): Promise<void>; port: number }> {
  const { default: Fastify } = await import('fastify');
  const app = Fastify({ logger: false });
  app.get('/metrics', async (_req, reply) => reply.type(prom.contentType).send(await prom.text()));
  dash?.routes(app as unknown as FastifyInstance, () => undefined);
  await app.listen({ host, port });
  const a = app.server.address();
  app.server.unref();
  return { close: () => app.close(), port: typeof a === 'object' && a !== null ? a.port : port };
}
