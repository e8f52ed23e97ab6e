/**
 * `disconnect` and `reconnect`: a client leaving its server on purpose (a laptop going away) and coming
 * back. Both only flip the offline file the running client looks at every 200 ms; `reconnect` then waits
 * for the outcome the daemon reaches (the server's changes applied, conflicts met, the LML reintegrated)
 * and says what it was, unless --no-wait.
 */
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { IntersyncError } from '#core/errors.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { findFileset, type FilesetPaths } from '#journal/layout.js';
import { readPidFile } from '#journal/pid-file.js';
import { readStatusFile } from '#daemon/status-file.js';
import type { ClientStatus } from '#daemon/client-node.js';
import type { ReintStatus } from '#reint/reintegrator.js';
import { fmtAge } from './output.js';

type Print = (line: string) => void;

/** How long a client must have made no progress since a refusal before `reconnect` calls it stuck. */
const STUCK_MS = 15_000;

function clientRole(paths: FilesetPaths): void {
  const db = FilesetDb.open(paths.db, { readonly: true });
  try {
    if (db.getMeta('role') !== 'client') throw IntersyncError.BAD_ARGUMENT(`${paths.dir} is not a client; only a client disconnects from its server`);
  } finally {
    db.close();
  }
}

/** Voluntary disconnection: the running client notices within 200 ms and keeps journaling to its LML. */
export function cmdDisconnect(dir: string, o: { fileset?: string; json: boolean }, print: Print): void {
  const paths = findFileset(dir, o.fileset);
  clientRole(paths);
  const already = existsSync(paths.offlineFile);
  if (!already) writeFileSync(paths.offlineFile, `${new Date().toISOString()}\n`);
  if (o.json) print(JSON.stringify({ dir: paths.dir, offline: true, already }));
  else print(already ? `${paths.dir} was disconnected already` : `${paths.dir} disconnected: changes are journaled and reintegrated at reconnect`);
}

interface Snapshot {
  readonly pending: number;
  readonly openConflicts: number[];
  readonly conflictIds: Set<number>;
  readonly resyncs: number;
}

function snapshot(paths: FilesetPaths): Snapshot {
  const db = FilesetDb.open(paths.db, { readonly: true });
  try {
    const all = db.conflicts(true);
    return {
      pending: db.lmlCount(), openConflicts: all.filter((c) => c.status === 'open').map((c) => c.id),
      conflictIds: new Set(all.map((c) => c.id)), resyncs: Number(db.getMeta('resyncs') ?? '0'),
    };
  } finally {
    db.close();
  }
}

/** What the running daemon publishes about its connection (undefined: no daemon runs). */
function daemonView(paths: FilesetPaths): { client: ClientStatus | null; reint: ReintStatus | null } | undefined {
  const pid = readPidFile(paths.pidFile);
  const s = readStatusFile(paths.statusFile);
  if (pid === undefined || s === undefined || s.pid !== pid) return undefined;
  return { client: (s.client ?? null) as ClientStatus | null, reint: (s.reint ?? null) as ReintStatus | null };
}

/**
 * Back online: the server's changes come first, then the local ones. Waits (at most `timeout` seconds) until
 * the daemon is connected with nothing pending, or stuck, and prints what the reconnection decided.
 */
export async function cmdReconnect(dir: string, o: { fileset?: string; json: boolean; wait: boolean; timeout: number }, print: Print): Promise<void> {
  const paths = findFileset(dir, o.fileset);
  clientRole(paths);
  const was = existsSync(paths.offlineFile);
  const before = snapshot(paths);
  rmSync(paths.offlineFile, { force: true });
  const running = daemonView(paths) !== undefined;
  if (!o.wait || !was || !running) {
    if (o.json) print(JSON.stringify({ dir: paths.dir, offline: false, was, running, waited: false }));
    else if (!was) print(`${paths.dir} was not disconnected`);
    else if (!running) print(`${paths.dir} reconnects when its daemon starts (none runs now): ${before.pending} local records wait`);
    else print(`${paths.dir} reconnecting: the server's changes come first, then the local ones are reintegrated`);
    return;
  }
  if (!o.json) print(`${paths.dir} reconnecting: ${before.pending} local records to reintegrate…`);
  const start = Date.now();
  let outcome: 'done' | 'stuck' | 'timeout' | 'stopped' = 'timeout';
  let seenConnected = false;
  let last: ReturnType<typeof daemonView>;
  while (Date.now() - start < o.timeout * 1000) {
    await sleep(200);
    last = daemonView(paths);
    if (last === undefined) {
      outcome = 'stopped';
      break;
    }
    const c = last.client;
    if (c?.connected === true) seenConnected = true;
    // Connected with nothing pending here and nothing behind: what the reconnection had to do is done.
    if (seenConnected && c?.connected === true && snapshot(paths).pending === 0 && (c.lagRecords ?? 0) === 0) {
      outcome = 'done';
      break;
    }
    // A refusal is often passing (the stream brings the server's side, then it applies): stuck is a client
    // that has made no progress for STUCK_MS since one.
    if (c?.stuckSince !== null && c?.stuckSince !== undefined && Date.now() - c.stuckSince >= STUCK_MS) {
      outcome = 'stuck';
      break;
    }
  }
  const after = snapshot(paths);
  const met = [...after.conflictIds].filter((id) => !before.conflictIds.has(id));
  const conflicts = met.length;
  const result = {
    dir: paths.dir, offline: false, was, running, waited: true, outcome, seconds: Math.round((Date.now() - start) / 100) / 10,
    reintegrated: Math.max(0, before.pending - after.pending), pending: after.pending, conflicts, resyncs: after.resyncs - before.resyncs,
    lastRefusal: last?.reint?.lastRefusal ?? null,
  };
  if (o.json) {
    print(JSON.stringify(result));
  } else {
    const what = `${result.reintegrated} local records reintegrated, ${conflicts} conflicts met${result.resyncs > 0 ? `, ${result.resyncs} resyncs` : ''}`;
    if (outcome === 'done') print(`reconnected in ${fmtAge(Date.now() - start)}: ${what}`);
    else if (outcome === 'stuck') print(`reconnected but STUCK: ${what}, ${after.pending} pending; see intersync status ${paths.dir}`);
    else if (outcome === 'stopped') print(`the daemon stopped while reconnecting: ${what}, ${after.pending} pending`);
    else print(`still reconnecting after ${o.timeout} s: ${what}, ${after.pending} pending (it goes on; intersync status ${paths.dir} follows it)`);
    if (conflicts > 0) print(`  list them: intersync conflicts ${paths.dir}`);
  }
  if (outcome === 'stuck' || outcome === 'stopped') process.exitCode = 1;
}
