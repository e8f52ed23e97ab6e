import type { Fid, Tid } from '#core/ids.js';
import { isUnder } from '#core/paths.js';
import type { KmlRecord, LmlRecord } from '#core/record.js';

/** What serverRenames reads: the LML. */
export interface PendingRenamesDeps {
  pendingRenames(): LmlRecord[];
  localRecordsOf(fid: Fid): LmlRecord[];
}

const MAKES = new Set(['create', 'mkdir', 'symlink', 'link']);

/**
 * The pending renames, oldest first, for localPath and localNamesOf, each of an object made here (its create
 * or mkdir still pending) marked with that record's seq (`made`). The server never had such an object at its
 * old name, so a server path below that name is below what the server has there (a directory removed here,
 * its removal pending, before the new one took its name), not below the new object: its rename moves only
 * what an earlier pending rename had moved into it (see localPath). Before, the path followed the new
 * directory to its new name: the server's file went into it here, and the removal of the server's directory,
 * which holds the file there, was refused for ever ("directory is not empty here", a resync; chaos seed 9212,
 * c2: rmdir gamma/deep, mkdir -p gamma/deep, mv gamma/deep beta/sub, a file made in gamma/deep there).
 */
export function serverRenames(db: PendingRenamesDeps): NameChange[] {
  return db.pendingRenames().map((x) => {
    const made = db.localRecordsOf(x.fid).find((y) => y.seq < x.seq && MAKES.has(y.kind));
    return made === undefined ? x : { ...x, made: made.seq };
  });
}

/**
 * A rename that changes names: a pending local one (with its `seq`, and `made`, the seq of its object's
 * pending create or mkdir, for an object made here), or one in the journal already.
 */
export type NameChange = Pick<LmlRecord, 'kind' | 'path' | 'newPath'> & { readonly fid?: Fid; readonly seq?: bigint; readonly made?: bigint };

/** What `renamesOver` reads from the fileset database. */
export interface RenamesDeps extends PendingRenamesDeps {
  renamesAfter(tid: Tid): readonly NameChange[];
}

/**
 * The renames that take the names of a server record of TID `tid` to this client's names, in order: this
 * node's own changes the server accepted after that record (in the journal from the reintegration's answer
 * before the stream brings the older record: on the server they came after it), then the pending ones that
 * move names the server knows (`serverRenames`; the LML replays after the journal). Before, only the pending ones counted: a server write of alpha/e, older than
 * this node's own `mv alpha beta` the server had accepted, kept the name alpha/e for an object with a change
 * pending here, and the conflict step put the file back there, where no directory was: "parent alpha does not
 * exist here", three times, and a resync (chaos seed 9208, c3; test/long/stream-lag.test.ts).
 */
export function renamesOver(db: RenamesDeps, tid: Tid): NameChange[] {
  return [...db.renamesAfter(tid), ...serverRenames(db)];
}

/**
 * Where a server path is on this client: the server has not seen the client's pending renames yet, so a
 * name below a directory renamed here is below the directory's local name. `renames` are the pending LML
 * renames, oldest first (after the journal's renames newer than the path's record, see renamesOver): replayed over a server path in that order they give its local path (each one's
 * path is the name at the time, after the ones before it). Only names strictly below a renamed object
 * move: another object may hold the very name a renamed object left.
 */
export function localPath(p: string, renames: readonly NameChange[]): string {
  return follow(p, renames, false);
}

/**
 * `p` through `renames` in order. The rename of an object made here moves the path only when an earlier
 * pending rename, after that object was made, moved the path (or a directory above it) into the object: it
 * is then the object's content, not the server's object that had the name before (serverRenames). Before,
 * such a rename was never followed: a server directory moved here into a new directory, the new one moved on
 * since, the server's records named a place below the new directory's first name, where nothing is ("parent
 * … does not exist here", three times, a resync; chaos s31 seed 9224, c1; test/long/moved-into-new-dir).
 */
function follow(p: string, renames: readonly NameChange[], self: boolean): string {
  let out = p;
  const entries: Array<{ seq: bigint; at: string; i: number }> = []; // where renames moved the path, at today's names
  // The objects an earlier rename of the list moved, with that rename's place in the list.
  const brought = new Map<Fid, number>();
  for (const [i, r] of renames.entries()) {
    if (r.kind !== 'rename' || r.newPath === null) continue;
    const since = r.fid === undefined ? undefined : brought.get(r.fid);
    if (r.fid !== undefined) brought.set(r.fid, i);
    const itself = out === r.path;
    if (itself ? !self : !isUnder(out, r.path)) continue;
    if (r.made !== undefined && (itself || !entries.some((e) => e.seq > r.made! && isUnder(e.at, r.path)))) continue;
    // An object an earlier rename brought to its name (the server still has it where it was): the server's path
    // at or below that name is the server's object there (a directory it replaced here, say), and this rename
    // moves only what the earlier ones moved in. Before, it moved the server's path too: the server's entry went
    // into this node's directory (chaos s76 seed 9259, c3: `mv alpha beta/sub` over the empty beta/sub, then
    // `mv beta/sub beta/deep`; test/long/moved-over-then-on.test.ts).
    if (since !== undefined && !entries.some((e) => e.i >= since && isUnder(e.at, r.path))) continue;
    const move = (q: string): string => (isUnder(q, r.path) ? `${r.newPath}${q.slice(r.path.length)}` : q);
    out = move(out);
    for (const e of entries) e.at = move(e.at);
    entries.push({ seq: r.seq ?? -1n, at: r.newPath, i });
  }
  return out;
}

/**
 * A server record expressed in this client's names (see localPath): its path, new path and hard-link
 * target. The same record when no pending rename concerns it.
 */
export function localNamesOf(r: KmlRecord, renames: readonly NameChange[]): KmlRecord {
  if (renames.length === 0) return r;
  const path = localPath(r.path, renames);
  const newPath = r.newPath === null ? null : localPath(r.newPath, renames);
  const target = r.kind === 'link' && r.target !== null ? localTarget(r.target, renames) : r.target;
  return path === r.path && newPath === r.newPath && target === r.target ? r : { ...r, path, newPath, target };
}

/**
 * Where the object a server path names is on this client: as localPath, and an object renamed here itself
 * (its rename not accepted yet) is followed to its local name. For a hard link's target, which names the
 * server's object at that path, not whatever holds the name here now.
 */
export function localTarget(p: string, renames: readonly NameChange[]): string {
  return follow(p, renames, true);
}
