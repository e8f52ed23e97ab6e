/**
 * What a reconnection would decide, computed read-only for `intersync reconnect DIR --dry-run`. The sequence
 * (conflict-resolver.ts, reintegrator.ts): the server's records after last_rcvd are applied first; each that
 * meets local changes not accepted yet (the same object, or a local create at the name it takes) is a
 * conflict the policy decides; then the pending local records are reintegrated. This follows the resolver's
 * classification (its `kind` formula and its name/name step) for the first server record meeting each
 * object; it does not replay the later ones, hard-link propagation, directory moves carrying pending
 * entries, nor the rmdir/gained cases (shown as `other`, decided when met).
 */
import { NO_VERSION, formatTid, type Fid } from '#core/ids.js';
import type { KmlRecord, LmlRecord } from '#core/record.js';
import { conflictKind, decide, type ConflictKind, type PolicyConfig } from '#policy/conflict-policy.js';

export interface PredictedConflict {
  readonly path: string;
  readonly kind: ConflictKind;
  /** keep-both | remote | local, or merged (changes that do not overlap both survive). */
  readonly decision: 'keep-both' | 'remote' | 'local' | 'merged';
  /** What the resolver then does, in words. */
  readonly outcome: string;
  readonly serverTid: string;
  /** Local records of this object that would not go as they are. */
  readonly localRecords: number;
}

export interface ReconnectPlan {
  /** Server records applied first. */
  readonly serverRecords: number;
  /** Local records (and objects) that would be reintegrated as they are. */
  readonly goAsTheyAre: { readonly records: number; readonly objects: number };
  readonly conflicts: readonly PredictedConflict[];
}

export interface ObjectLookup {
  byFid(fid: Fid): { readonly path: string; readonly type: string; readonly version: bigint; readonly mtimeMs: number } | undefined;
  byPath(path: string): { readonly fid: Fid; readonly type: string; readonly version: bigint; readonly mtimeMs: number } | undefined;
}

const CONTENT = new Set(['write', 'truncate', 'create']);
const MAKES = new Set(['create', 'mkdir', 'symlink', 'link']);

export function planReconnect(pending: readonly LmlRecord[], server: readonly KmlRecord[], objects: ObjectLookup, policy: PolicyConfig, node: string): ReconnectPlan {
  const byFid = new Map<Fid, LmlRecord[]>();
  for (const r of pending) byFid.set(r.fid, [...(byFid.get(r.fid) ?? []), r]);
  const met = new Map<Fid, PredictedConflict>();
  const own = (r: KmlRecord): boolean => r.origin === node; // this node's own change, accepted before it went away
  for (const r of server) {
    if (own(r)) continue;
    const mine = byFid.get(r.fid);
    if (mine !== undefined && !met.has(r.fid)) {
      met.set(r.fid, sameObject(r, mine, objects, policy, node));
      continue;
    }
    // A name the server's record takes, held here by a local create not accepted yet.
    const name = MAKES.has(r.kind) ? r.path : r.kind === 'rename' ? r.newPath : null;
    if (name === null) continue;
    const o = objects.byPath(name);
    if (o === undefined || o.fid === r.fid || o.version !== NO_VERSION || met.has(o.fid) || !byFid.has(o.fid)) continue;
    if (r.kind === 'mkdir' && o.type === 'dir') {
      met.set(o.fid, { path: name, kind: 'name/name', decision: 'merged', outcome: 'the same directory made on both sides: merged', serverTid: formatTid(r.tid), localRecords: 0 });
      continue;
    }
    const d = decide(policy, { kind: 'name/name', path: name, localNode: node, remoteNode: r.origin, localMtimeMs: o.mtimeMs, remoteMtimeMs: r.mtimeMs });
    met.set(o.fid, {
      path: name, kind: 'name/name', decision: d, serverTid: formatTid(r.tid), localRecords: 0,
      outcome: d === 'remote' ? (policy.discard ? 'the server\'s object takes the name; the local one is discarded' : 'the server\'s object takes the name; the local one goes to the conflicts folder')
        : d === 'local' ? 'the local object keeps the name; the server\'s goes beside it' : 'the server\'s object takes the name; the local one is kept beside it and sent',
    });
  }
  let records = 0;
  let objectsGoing = 0;
  for (const [fid, recs] of byFid) {
    const c = met.get(fid);
    if (c === undefined || c.decision === 'merged') {
      records += recs.length;
      objectsGoing++;
    }
  }
  return { serverRecords: server.filter((r) => !own(r)).length, goAsTheyAre: { records, objects: objectsGoing }, conflicts: [...met.values()] };
}

/** A server record of an object with pending local records: the resolver's kind, then the policy's decision. */
function sameObject(r: KmlRecord, mine: readonly LmlRecord[], objects: ObjectLookup, policy: PolicyConfig, node: string): PredictedConflict {
  const removedHere = mine.some((x) => x.kind === 'unlink' || x.kind === 'rmdir');
  const contentHere = mine.some((x) => CONTENT.has(x.kind));
  const renamedHere = mine.some((x) => x.kind === 'rename');
  const modeHere = mine.some((x) => x.kind === 'setattr');
  const kind = conflictKind({ removedHere, contentHere, renamedHere, modeHere }, r.kind);
  const o = objects.byFid(r.fid);
  const path = o?.path ?? r.path;
  const base = { path, kind, serverTid: formatTid(r.tid), localRecords: mine.length };
  if (kind === 'setattr/write' || kind === 'write/setattr' || kind === 'write/rename' || (kind === 'other' && !removedHere && !contentHere)) {
    return { ...base, decision: 'merged', localRecords: 0, outcome: 'changes that do not overlap: both survive' };
  }
  if (kind === 'other') return { ...base, decision: 'merged', localRecords: 0, outcome: 'removed on both sides, or a case decided when met' };
  const d = decide(policy, { kind, path, localNode: node, remoteNode: r.origin, localMtimeMs: mine[mine.length - 1]!.mtimeMs, remoteMtimeMs: r.mtimeMs });
  if (kind === 'unlink/write') {
    return { ...base, decision: d === 'local' ? 'local' : 'remote', outcome: d === 'local' ? 'removed again here, and on the server' : 'the server\'s change brings it back here' };
  }
  if (kind === 'rename/rename') {
    return { ...base, decision: d === 'local' ? 'local' : 'remote', outcome: d === 'local' ? 'the local name wins' : 'the server\'s name is kept' };
  }
  const outcome = d === 'local' ? 'the local version replaces the server\'s (the server\'s kept in the conflicts folder)'
    : d === 'remote' ? (policy.discard ? 'the server\'s version kept; the local one discarded' : 'the server\'s version kept; the local one goes to the conflicts folder')
      : 'the server\'s version at the name; the local one kept beside it as a conflict copy, and sent';
  return { ...base, decision: d, outcome };
}
