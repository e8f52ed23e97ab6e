import { formatTid } from '#core/ids.js';
import type { ClientState } from './client-state.js';
import type { ClientStatus } from './client-types.js';

/* A client's status (ClientNode#status), and the status file it publishes (ClientNode#writeStatus). */

/** What ClientNode#status answers: the connection, the lag, transfers, conflicts, the copy, errors and resyncs. */
export function clientStatus(s: ClientState): ClientStatus {
  const lastRcvd = s.db.lastRcvdOf(s.serverNode());
  const lag = s.lag.view(lastRcvd, s.o.clock.now(), s.copy);
  const bytes = s.client.bytes.totals;
  return {
    connected: s.connected, offline: s.offline, disconnectedSince: s.connected ? null : s.disconnectedSince, server: s.client.url, serverNode: s.hello?.node ?? s.db.getMeta('server_node') ?? null,
    serverTid: lag.serverTid === null ? null : formatTid(lag.serverTid), lastRcvd: formatTid(lastRcvd),
    lagRecords: lag.lagRecords, lagSince: lag.lagSince, lagSeconds: lag.lagSeconds, waitingDown: lag.waitingDown,
    transfers: [...s.transfers.current()], bytesIn: bytes.in, bytesOut: bytes.out, bwlimit: s.client.bwlimit?.rate ?? null,
    stale: s.stale.size, conflicts: s.resolver.count, copy: s.copy, lastError: s.lastError ?? s.reint.status().lastError,
    resyncs: Number(s.db.getMeta('resyncs') ?? '0'), stuckSince: earliest(s.applyStuckSince, s.reint.status().stuckSince),
  };
}

/** Publish the status file (status-file.ts): this node, capture, the disk, the client and reintegration. */
export function writeStatus(s: ClientState): void {
  s.status.publish(() => ({
    pid: process.pid, startedAt: s.startedAt, updatedAt: s.o.clock.now(), role: 'client',
    fileset: s.paths.name, uuid: s.db.meta.uuid, nodeId: s.db.meta.nodeId, dir: s.paths.dir,
    logFile: s.logFile, debug: s.o.debug, capture: s.capture.status(), diskFull: s.disk.status(), client: clientStatus(s),
    reint: s.reint.status(),
  }));
}

function earliest(a: number | null, b: number | null): number | null {
  return a === null ? b : b === null ? a : Math.min(a, b);
}
