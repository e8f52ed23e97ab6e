/**
 * `intersync reconnect DIR --dry-run`: what the reconnection would decide (reint/reconnect-plan.ts), from
 * this client's pending records (read-only) and the server's records after its last_rcvd (asked with its own
 * credential, not following: the server registers nothing). The offline flag stays as it is.
 */
import { IntersyncError } from '#core/errors.js';
import { formatTid, type Fid } from '#core/ids.js';
import type { KmlRecord, LmlRecord } from '#core/record.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { findFileset } from '#journal/layout.js';
import { readSecretFile, statePaths } from '#journal/state-dir.js';
import { PeerClient } from '#net/peer-client.js';
import { parseWireRecord } from '#net/protocol/wire-record.js';
import { parsePolicy, type PolicyConfig } from '#policy/conflict-policy.js';
import { planReconnect, type ObjectLookup, type ReconnectPlan } from '#reint/reconnect-plan.js';
import { resolveStateDir } from './state-dir.js';

type Print = (line: string) => void;

export async function reconnectDryRun(dir: string, o: { fileset?: string; json: boolean; stateDir?: string; tlsCa?: string }, print: Print): Promise<void> {
  const paths = findFileset(dir, o.fileset);
  const db = FilesetDb.open(paths.db, { readonly: true });
  try {
    if (db.getMeta('role') !== 'client') throw IntersyncError.BAD_ARGUMENT(`${paths.dir} is not a client; only a client reconnects to its server`);
    const url = db.getMeta('server_url');
    const serverNode = db.getMeta('server_node');
    if (url === undefined || serverNode === undefined) throw IntersyncError.BAD_ARGUMENT(`${paths.dir} has not met its server yet`, 'start it once: intersync --server URL DIR');
    const sp = statePaths(resolveStateDir(o.stateDir, paths.dir, paths.name), db.meta.nodeId, paths.name);
    const credential = readSecretFile(sp.credential, 'this client\'s credential');
    if (credential === undefined) throw IntersyncError.NO_CREDENTIAL('this client\'s credential', sp.credential, 'is missing', 'give the --state-dir the client runs with');
    const pin = readSecretFile(sp.serverPin);
    const client = new PeerClient(url, credential, { uuid: db.meta.uuid, ...(o.tlsCa === undefined ? {} : { ca: o.tlsCa }), ...(pin === undefined ? {} : { pin }) });
    const since = db.lastRcvdOf(serverNode);
    const pending: LmlRecord[] = db.readLml(0n, 1_000_000);
    const policy: PolicyConfig = parsePolicy(db.getMeta('conflict-policy') ?? 'keep-both') ?? { name: 'keep-both', discard: false };
    let server: KmlRecord[] | null = [];
    let resync = false;
    try {
      for await (const f of client.records(since)) {
        if (f.type === 'record') server.push(parseWireRecord((f.header as { r: unknown }).r));
      }
    } catch (e) {
      if (!(e instanceof IntersyncError) || e.code !== 'RESYNC_NEEDED') throw e;
      resync = true;
      server = null;
    } finally {
      await client.close();
    }
    const objects: ObjectLookup = { byFid: (f: Fid) => db.objectByFid(f), byPath: (p: string) => db.objectByPath(p) };
    const plan = server === null ? null : planReconnect(pending, server, objects, policy, db.meta.nodeId);
    show(paths.dir, { since: formatTid(since), pending: pending.length, policy: policy.discard ? `${policy.name}:discard` : policy.name, resync, plan }, o.json, print);
  } finally {
    db.close();
  }
}

interface Shown {
  readonly since: string;
  readonly pending: number;
  readonly policy: string;
  readonly resync: boolean;
  readonly plan: ReconnectPlan | null;
}

function show(dir: string, s: Shown, json: boolean, print: Print): void {
  if (json) {
    print(JSON.stringify({ dryRun: true, dir, lastRcvd: s.since, pending: s.pending, policy: s.policy, resync: s.resync, ...(s.plan ?? {}) }));
    return;
  }
  print(`dry run: reconnecting ${dir} (last_rcvd ${s.since}, ${s.pending} local records pending, conflict policy ${s.policy}) would:`);
  if (s.plan === null) {
    print('  resync in full: the server no longer holds the records since last_rcvd. Local changes the server has not');
    print('  changed since go as they are; objects it changed give their name to its version, the local one kept beside.');
  } else {
    const p = s.plan;
    print(`  apply ${p.serverRecords} records of the server first`);
    print(`  send  ${p.goAsTheyAre.records} local records (${p.goAsTheyAre.objects} objects) as they are`);
    print(`  meet  ${p.conflicts.length} conflicts${p.conflicts.length === 0 ? '' : ':'}`);
    for (const c of p.conflicts) print(`    ${c.path}  ${c.kind} -> ${c.decision}: ${c.outcome}`);
  }
  print('nothing was changed (the client stays disconnected)');
}

