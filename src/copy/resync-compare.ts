import { NO_VERSION, formatTid, type Fid, type NodeId, type Tid } from '#core/ids.js';
import { depthOf } from '#core/paths.js';
import { lstatOrNull } from '#fsio/disk.js';
import type { SnapshotEntry } from '#net/snapshot-source.js';
import type { AttrPolicy } from '#policy/attr-policy.js';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { CopyDeps } from './copy-deps.js';
import { linkGroupsApart } from './link-groups.js';
import { draftOf, sameMode } from './place.js';
import { evacuate, keepIfChanged } from './resync-protect.js';

// A copy from a snapshot compares this node's table and disk with the server's: what the server does not
// have goes, what is here as the server has it stays, and what a resync places again is said, with why.

/**
 * Before a snapshot is placed: objects here that it does not hold are removed (what they hold that the
 * server never acknowledged kept beside), and a local object with no pending record is forgotten.
 */
export function dropLeftovers(d: CopyDeps, inSnap: ReadonlySet<string>, tid: Tid): void {
  // Leftovers of an interrupted copy of an older snapshot (not local creations, which have no version yet).
  const leftovers = [...d.db.allObjects()].filter((o) => !inSnap.has(o.fid) && o.version !== NO_VERSION && !d.db.hasPendingLocal(o.fid));
  leftovers.sort((a, b) => depthOf(b.path) - depthOf(a.path));
  if (leftovers.length > 0) d.log.warn({ n: leftovers.length, removed: leftovers.slice(0, 20).map((o) => o.path) }, 'resync: objects the server does not have are removed here');
  for (const o of leftovers) {
    if (d.db.objectByFid(o.fid) === undefined) continue; // below a leftover directory removed already
    if (o.type === 'dir') evacuate(d, o.path, tid);
    else keepIfChanged(d, o.path, tid);
    rmSync(join(d.root, o.path), { recursive: true, force: true });
    d.db.forget(o.fid);
  }
  // A file or symlink made here with no pending record (the record went with an earlier step) would stay
  // here and nowhere else for good, through every resync: forgotten, the scan after the resync journals it
  // again as new, and it ships.
  for (const o of [...d.db.allObjects()]) {
    if (o.type !== 'dir' && o.version === NO_VERSION && !inSnap.has(o.fid) && !d.db.hasPendingLocal(o.fid)) {
      d.log.warn({ path: o.path, fid: o.fid }, 'resync: a local object with no pending record is journaled again as new');
      d.db.forget(o.fid);
    }
  }
}

/**
 * The snapshot's entries to place (those not in `skip`): all of them into an empty table (`fresh`), else
 * those not here as the server has them, logged with how each differs; and the names whose hard-link
 * grouping here is not the server's.
 */
export function toPlace(
  d: CopyDeps, entries: readonly SnapshotEntry[], skip: ReadonlySet<string>, fresh: boolean, policy: AttrPolicy,
): { todo: SnapshotEntry[]; apart: Set<string> } {
  // Names whose hard-link grouping here is not the server's are placed again, however equal their content.
  const apart = fresh ? new Set<string>() : linkGroupsApart(d.root, entries.filter((e) => !skip.has(e.fid)), (e) => d.db.objectByFid(e.fid as Fid)?.path === e.path);
  const have = (e: SnapshotEntry): boolean => {
    if (apart.has(e.path)) return false;
    const o = d.db.objectByFid(e.fid as Fid);
    // The mode as this fileset takes it from a peer (set-id bits may be dropped), not as the server has it.
    const mode = o === undefined || o.type === 'symlink' ? 0 : d.apply.localize(draftOf(e, d.serverNode as NodeId, 0), policy).mode;
    return o !== undefined && o.path === e.path && o.hash === e.hash && o.type === e.type && sameMode(o.mode, { ...e, mode }) && lstatOrNull(join(d.root, e.path)) !== null;
  };
  const todo = entries.filter((e) => !skip.has(e.fid) && (fresh || !have(e)));
  if (!fresh && todo.length > 0) {
    // What a resync changes, said: a person (or a test) can then tell how this node went astray.
    const why = (e: SnapshotEntry): string => {
      const o = d.db.objectByFid(e.fid as Fid);
      if (o === undefined) return 'not here';
      const all = [
        o.path === e.path ? null : `here at ${o.path}`,
        o.type === e.type ? null : `a ${o.type} here`,
        o.hash === e.hash ? null : 'other content',
        o.target === e.target ? null : 'other symlink target',
        o.mode === e.mode ? null : 'other mode',
        formatTid(o.version) === e.version ? null : `version ${formatTid(o.version)} here, ${e.version} there`,
        apart.has(e.path) ? 'hard links grouped otherwise' : null,
        lstatOrNull(join(d.root, o.path)) === null ? 'not on disk' : null,
      ].filter((x) => x !== null);
      return all.length === 0 ? 'differs' : all.join(', ');
    };
    d.log.warn({ n: todo.length, differs: todo.slice(0, 20).map((e) => `${e.path}: ${why(e)}`) }, 'resync: objects that differ from the server\'s are placed again');
  }
  return { todo, apart };
}
