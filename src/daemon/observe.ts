/**
 * How a running node is observed: the metrics view of a server or a client, and the observation port.
 */
import type { FastifyInstance } from 'fastify';
import type { Tid } from '#core/ids.js';
import type { FilesetDb } from '#journal/fileset-db.js';
import type { WatchCapture } from '#presto/watch-capture.js';
import type { FilesetServer } from '#net/server.js';
import type { ClientStatus } from './client-node.js';
import type { MetricsView, PromMetrics, SocketBytes } from './prom-metrics.js';
import type { Dashboard } from './dashboard.js';

/** Records after a peer's last_rcvd, and seconds since the oldest of them was journaled. */
export function peerLag(db: FilesetDb, since: Tid, now: number): { records: number; seconds: number } {
  const records = Number(db.lastTid - since);
  if (records <= 0) return { records: 0, seconds: 0 };
  const first = db.readKml(since, 1)[0];
  return { records, seconds: first === undefined ? 0 : Math.max(0, Math.round((now - first.time) / 1000)) };
}

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

export function serverView(node: { db: FilesetDb; capture: WatchCapture; server: FilesetServer | null }, bytes: SocketBytes, now: () => number): MetricsView {
  return {
    role: 'server',
    lastTid: () => node.db.lastTid,
    capturePending: () => node.capture.status().pending,
    conflicts: () => conflictsOf(node.db),
    resyncs: () => 0,
    pendingLocal: () => 0,
    peers: () => serverPeers(node.db, node.server, now()),
    bytes: () => bytes.totals,
  };
}

export function clientView(node: { db: FilesetDb; capture: WatchCapture; status(): ClientStatus }): MetricsView {
  return {
    role: 'client',
    lastTid: () => node.db.lastTid,
    capturePending: () => node.capture.status().pending,
    conflicts: () => conflictsOf(node.db),
    resyncs: () => node.status().resyncs,
    pendingLocal: () => node.db.lmlCount(),
    peers: () => {
      const s = node.status();
      return [{ peer: s.serverNode ?? 'server', lagRecords: s.lagRecords ?? 0, lagSeconds: Math.round((s.lagMs ?? 0) / 1000), connected: s.connected }];
    },
    // A client's HTTP traffic goes through undici, which this view does not count (see docs/operations.md).
    bytes: () => ({ in: 0, out: 0 }),
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
