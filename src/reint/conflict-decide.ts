import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { Tid } from '#core/ids.js';
import type { KmlRecord } from '#core/record.js';
import type { ObjectRow } from '#journal/fileset-db.js';
import { decide, formatPolicy, type ConflictKind, type Decision } from '#policy/conflict-policy.js';
import type { ResolverState } from './conflict-state.js';

// The site's policy decides a conflict (its hook script too), and every conflict is recorded in the journal.

/** What the site's policy decides for a conflict of `kind` at `path` (`local`: the object here, if any). */
export function decideConflict(s: ResolverState, r: Pick<KmlRecord, 'origin' | 'mtimeMs'>, path: string, kind: ConflictKind, local: ObjectRow | undefined): Decision {
  const policy = s.d.policy();
  const facts = {
    kind, path, localNode: s.d.node, remoteNode: r.origin, localMtimeMs: local?.mtimeMs ?? 0, remoteMtimeMs: r.mtimeMs,
  };
  let answer: string | undefined;
  if (policy.name === 'hook') answer = runHook(s, kind, path, local);
  return decide(policy, facts, answer);
}

/** The site's script: `HOOK KIND PATH LOCAL_FILE` prints local, remote or both. */
function runHook(s: ResolverState, kind: string, path: string, local: ObjectRow | undefined): string | undefined {
  const hook = s.d.hook();
  if (hook === null) return undefined;
  const localFile = local === undefined ? '' : join(s.d.root, local.path);
  const r = spawnSync(hook, [kind, path, localFile], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) {
    s.d.log.error({ hook, status: r.status, err: r.stderr?.slice(0, 200) }, 'conflict hook failed; keeping both');
    return undefined;
  }
  return r.stdout.trim();
}

/** Record a conflict in the journal, and count it. */
export function record(s: ResolverState, r: Pick<KmlRecord, 'tid' | 'origin'>, path: string, kind: string, decision: string, kept: string | null, status: 'open' | 'resolved', resolution: string | null): void {
  s.count++;
  s.d.db.addConflict({
    time: s.d.clock.now(), path, kind, policy: formatPolicy(s.d.policy()), decision, remoteTid: r.tid as Tid, remoteNode: r.origin,
    kept, status, resolution,
  });
}
