import { isUnder } from '#core/paths.js';
import type { LmlRecord } from '#core/record.js';

/**
 * The LML optimiser: a pure function from the records a client journaled
 * while it could not reintegrate to fewer records with the same final state.
 * - an object created and removed here never reaches the server (nor does
 *   anything done to it in between);
 * - content changes after a create fold into the create, and successive
 *   content changes of one file ship once (the last one);
 * - a rename of an object renamed again folds into one rename, and a create
 *   followed by renames becomes a create at the final name, when nothing in
 *   between needs the intermediate name;
 * - work inside a directory created and removed here goes with it.
 * Objects taking part in a hard link are left as journaled (a change through
 * one name changes the others).
 * Invariant (property-tested): applying the result to any state gives the same
 * state as applying the input. Records keep their sequence numbers, so the
 * server's idempotence by (origin, seq) still holds.
 */
export interface Optimised {
  readonly ship: LmlRecord[];
  readonly dropped: bigint[];
}

const CREATES = new Set(['create', 'mkdir', 'symlink', 'link']);
const REMOVES = new Set(['unlink', 'rmdir']);

function pathsOf(r: LmlRecord): string[] {
  const out = [r.path];
  if (r.newPath !== null) out.push(r.newPath);
  if (r.kind === 'link' && r.target !== null) out.push(r.target);
  return out;
}

/**
 * The records between a move of a directory from `home` to `away` (index i) and its move back (index j) may be
 * named below its own name instead: each that names something below `away` names only that (not `away` itself,
 * nor a place above it), and none names `home` or a place above either, which the directory holds all along.
 */
function roundTrip(recs: ReadonlyArray<LmlRecord | null>, i: number, j: number, home: string, away: string): boolean {
  return recs.slice(i + 1, j).every((r) => r === null || pathsOf(r).every((p) =>
    (isUnder(p, away) && p !== away) || (!isUnder(p, home) && !isUnder(home, p) && !isUnder(away, p))));
}

/**
 * The records between a move onto `mid` (index i) and the move from there to `final` (index j) may be named below
 * `final` instead: each names only places strictly below `mid`, or places apart from both names (neither
 * below nor above either of them).
 */
function movedThrough(recs: ReadonlyArray<LmlRecord | null>, i: number, j: number, mid: string, final: string): boolean {
  const apart = (p: string): boolean => !isUnder(p, mid) && !isUnder(mid, p) && !isUnder(p, final) && !isUnder(final, p);
  return recs.slice(i + 1, j).every((r) => r === null || pathsOf(r).every((p) => (isUnder(p, mid) && p !== mid) || apart(p)));
}

function underName(r: LmlRecord, from: string, to: string): LmlRecord {
  const move = (p: string): string => (isUnder(p, from) && p !== from ? `${to}${p.slice(from.length)}` : p);
  const path = move(r.path);
  const newPath = r.newPath === null ? null : move(r.newPath);
  const target = r.kind === 'link' && r.target !== null ? move(r.target) : r.target;
  return path === r.path && newPath === r.newPath && target === r.target ? r : { ...r, path, newPath, target };
}

export function optimiseLml(input: readonly LmlRecord[]): Optimised {
  const recs: Array<LmlRecord | null> = [...input];
  // Hard links share an inode: a change through one name is a change of the others, so objects that take
  // part in a link here are left exactly as journaled.
  const linkNames = new Set(input.filter((r) => r.kind === 'link').flatMap((r) => [r.path, r.target ?? '']));
  // By the target's fid too (LmlRecord.targetFid): a link may name its target by a path a directory's move gave
  // it, which none of the target's own records carries.
  const linkTargets = new Set(input.flatMap((r) => (r.kind === 'link' && r.targetFid !== undefined && r.targetFid !== null ? [r.targetFid] : [])));
  const linked = new Set(input.filter((r) => r.kind === 'link' || linkTargets.has(r.fid) || pathsOf(r).some((p) => linkNames.has(p))).map((r) => r.fid));
  const byFid = new Map<string, number[]>();
  recs.forEach((r, i) => {
    if (linked.has(r!.fid)) return;
    const list = byFid.get(r!.fid);
    if (list === undefined) byFid.set(r!.fid, [i]);
    else list.push(i);
  });

  // 1. Born and removed here: drop everything of the object, unless another kept record used one of its names.
  let changed = true;
  while (changed) {
    changed = false;
    for (const [fid, idx] of byFid) {
      const live = idx.filter((i) => recs[i] !== null);
      if (live.length === 0) continue;
      const first = recs[live[0]!]!;
      const last = recs[live[live.length - 1]!]!;
      if (!CREATES.has(first.kind) || !REMOVES.has(last.kind)) continue;
      const names = live.flatMap((i) => [recs[i]!.path, ...(recs[i]!.newPath === null ? [] : [recs[i]!.newPath!])]);
      const lo = live[0]!;
      const hi = live[live.length - 1]!;
      const usedByOthers = recs.some((r, i) => r !== null && r.fid !== fid && i > lo && i < hi + 1 &&
        pathsOf(r).some((p) => names.some((n) => (first.kind === 'mkdir' ? isUnder(p, n) : p === n))));
      // A link made while it lived may name it by a path an ancestor's rename gave it: with links about, keep files.
      const linkedLater = first.kind !== 'mkdir' && recs.some((r, i) => r !== null && i > lo && r.kind === 'link');
      // A directory's names change with its ancestors' renames: with other renames about, keep it.
      const renamesAbout = first.kind === 'mkdir' && recs.some((r, i) => r !== null && r.fid !== fid && i > lo && i < hi && r.kind === 'rename');
      if (usedByOthers || linkedLater || renamesAbout) continue;
      for (const i of live) recs[i] = null;
      changed = true;
    }
  }

  for (const [, idx] of byFid) {
    const live = idx.filter((i) => recs[i] !== null);
    if (live.length < 2) continue;
    // An object the server knows, removed here: its earlier records still ship (the server may hold other
    // names of its inode, which must see the changes).
    if (REMOVES.has(recs[live[live.length - 1]!]!.kind)) continue;
    // 2. Content and attributes fold into the create, or into the last content change.
    const first = recs[live[0]!]!;
    let anchor = first.kind === 'create' ? live[0]! : -1;
    let lastContent = -1;
    for (const i of live.slice(anchor >= 0 ? 1 : 0)) {
      const r = recs[i]!;
      if (r.kind === 'write' || r.kind === 'truncate') {
        if (anchor >= 0) {
          const a = recs[anchor]!;
          recs[anchor] = { ...a, hash: r.hash, size: r.size, mode: r.mode, uid: r.uid, gid: r.gid, mtimeMs: r.mtimeMs };
          recs[i] = null;
        } else {
          if (lastContent >= 0) recs[lastContent] = null;
          lastContent = i;
        }
      } else if (r.kind === 'setattr' && anchor >= 0 && recs[anchor]!.kind === 'create') {
        const a = recs[anchor]!;
        recs[anchor] = { ...a, mode: r.mode, uid: r.uid, gid: r.gid, mtimeMs: r.mtimeMs };
        recs[i] = null;
      } else if (r.kind !== 'setattr') {
        anchor = -1; // a rename: later content changes fold into each other, not into the create
        lastContent = -1;
      }
    }
  }

  // 3. Rename chains: collapse a rename (or a create) followed by a rename of the same object when no record
  // in between uses the intermediate name.
  for (const [, idx] of byFid) {
    let live = idx.filter((i) => recs[i] !== null);
    for (let k = 1; k < live.length; k++) {
      const i = live[k - 1]!;
      const j = live[k]!;
      const a = recs[i]!;
      const b = recs[j]!;
      if (b.kind !== 'rename' || (a.kind !== 'rename' && a.kind !== 'create' && a.kind !== 'symlink')) continue;
      const mid = a.kind === 'rename' ? a.newPath! : a.path;
      if (b.path !== mid) continue;
      // Nothing in between may use the middle name, the final name, or make a directory on the final name's way.
      const between = recs.slice(i + 1, j).some((r) => r !== null &&
        pathsOf(r).some((p) => isUnder(p, mid) || isUnder(p, b.newPath!) || isUnder(b.newPath!, p)));
      // Moved there and back, with records made inside it meanwhile (below the middle name): those are records
      // below its own name, where it stays. Before, the first move went to the server, where a move of the
      // other directory into this one meanwhile made it a cycle: refused for ever, a resync (chaos s42 seed 9246;
      // test/long/moved-there-and-back.test.ts).
      const back = a.kind === 'rename' && a.path === b.newPath && between && roundTrip(recs, i, j, a.path, mid);
      // Moved through the middle name on to another, with records made inside it meanwhile (below the middle
      // name) and nothing else near either name: those are records below the final name, where it goes at once.
      // Before, the move onto the middle name went to the server, where a move of the middle name's directory
      // into this one meanwhile made it a cycle: refused for ever, a resync (chaos s97 seed 9390;
      // test/long/moved-in-and-out-cycle.test.ts).
      const through = !back && a.kind === 'rename' && between && movedThrough(recs, i, j, mid, b.newPath!);
      if (between && !back && !through) continue;
      if (back || through) {
        for (let x = i + 1; x < j; x++) {
          const r = recs[x];
          if (r !== null && r !== undefined) recs[x] = underName(r, mid, back ? a.path : b.newPath!);
        }
      }
      // A rename record carries the object's attributes as they were then (the journal applies them): they win.
      const attrs = { mode: b.mode, uid: b.uid, gid: b.gid, mtimeMs: b.mtimeMs };
      // The final name goes in the directory the last move put it in (RecordDraft.parent: the server places a
      // new name by its directory's fid). Before, it kept the first record's: a file made in a directory and
      // moved out of it was made on the server in that directory (chaos seed 9216, dir-over-empty.test.ts).
      const parent = b.parent === undefined ? {} : { parent: b.parent };
      recs[i] = a.kind === 'rename' ? { ...a, ...attrs, ...parent, newPath: b.newPath } : { ...a, ...attrs, ...parent, path: b.newPath! };
      recs[j] = null;
      // Moved there and back: no move, but what changed meanwhile (a chmod while away) stays.
      if (a.kind === 'rename' && a.path === b.newPath) recs[i] = { ...a, ...attrs, kind: 'setattr', newPath: null };
      live = idx.filter((x) => recs[x] !== null);
      k = 0;
    }
  }

  const ship: LmlRecord[] = [];
  const dropped: bigint[] = [];
  recs.forEach((r, i) => {
    if (r === null) dropped.push(input[i]!.seq);
    else ship.push(r);
  });
  return { ship, dropped };
}
