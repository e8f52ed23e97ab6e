import { ROOT_FID, type Fid } from '#core/ids.js';
import { joinRel, parentOf } from '#core/paths.js';
import type { RecordDraft } from '#core/record.js';
import type { ObjectRow } from '#journal/fileset-db.js';

/** What `placedHere` reads: the object table by fid. */
export interface PlacedDeps {
  objectByFid(fid: Fid): ObjectRow | undefined;
}

const NAMING = new Set(['create', 'mkdir', 'symlink', 'link']);

/**
 * A peer's record at this node's names of the objects it names. A record names objects by path as its
 * origin saw them, and this node's names may differ: a directory moved or kept beside here, or at the origin,
 * by a change the other side has not seen yet. By identity instead:
 * - a change of an object this node has (write, truncate, setattr, unlink, rmdir, the old name of a rename)
 *   happens where the object is here;
 * - a new name (create, mkdir, symlink, link, the new name of a rename) goes into its directory
 *   (RecordDraft.parent) where that directory is here, with the name the origin gave it;
 * - a link links to the name its origin linked to (RecordDraft.targetFid), wherever that name is here.
 * `ownNames(fid)` true: that object's name here is its own business (a client's pending changes of it, which
 * the conflict step meets at the server's name), so its path stays the record's.
 * What this node does not have by fid keeps the record's path: the apply path's check then says why it does
 * not apply, as before. Before, a file made in a directory that a peer had moved meanwhile was refused
 * ("parent … does not exist here"), again and again, until a resync; or it went into another directory that
 * had taken the name meanwhile.
 */
export function placedHere<T extends RecordDraft>(db: PlacedDeps, d: T, ownNames?: (fid: Fid) => boolean): T {
  let path = d.path;
  let newPath = d.newPath;
  let target = d.target;
  if (NAMING.has(d.kind)) {
    path = inDir(db, d.parent, path);
    const t = d.kind === 'link' && d.targetFid !== undefined && d.targetFid !== null ? db.objectByFid(d.targetFid) : undefined;
    if (t?.type === 'file') target = t.path;
  } else {
    const here = db.objectByFid(d.fid);
    if (here !== undefined && ownNames?.(d.fid) !== true) path = here.path;
    if (d.kind === 'rename' && newPath !== null) newPath = inDir(db, d.parent, newPath);
  }
  return path === d.path && newPath === d.newPath && target === d.target ? d : { ...d, path, newPath, target };
}

/**
 * PlacedDeps for the records of a run that only adds names (apply/record-applier.ts applyRun, placed before it and
 * again at each record's turn, with nothing else running in between): a directory found is remembered for the
 * rest of the run, since its name and type cannot change while only new names are made; one not found is looked
 * up again (the run may make it).
 */
export function runPlaces(db: PlacedDeps): PlacedDeps {
  const dirs = new Map<Fid, ObjectRow>();
  return {
    objectByFid: (fid) => {
      const known = dirs.get(fid);
      if (known !== undefined) return known;
      const o = db.objectByFid(fid);
      if (o?.type === 'dir') dirs.set(fid, o);
      return o;
    },
  };
}

/** `name` moved into the directory `dir` names, where that directory is here (unchanged when it is not here). */
function inDir(db: PlacedDeps, dir: Fid | null | undefined, name: string): string {
  if (dir === undefined || dir === null) return name;
  const base = name.slice(name.lastIndexOf('/') + 1);
  if (dir === ROOT_FID) return base;
  const o = db.objectByFid(dir);
  if (o === undefined || o.type !== 'dir') return name;
  return o.path === parentOf(name) ? name : joinRel(o.path, base);
}
