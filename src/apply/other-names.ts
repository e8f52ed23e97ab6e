import { join } from 'node:path';
import type { Fid } from '#core/ids.js';
import type { RecordDraft } from '#core/record.js';
import type { FilesetDb, ObjectRow } from '#journal/fileset-db.js';
import { lstatOrNull, type DiskStat } from '#fsio/disk.js';

/** A name noted as journaled before a change of ours, with its stat then. */
export interface NotedName {
  readonly row: ObjectRow;
  readonly st: DiskStat;
}

/**
 * A change this node makes through one name of a hard-linked file (a rename, a removal, the name replaced by
 * a link to another inode or by a copy of its own) moves the inode's change time under its other names, and
 * inotify says nothing of them. Their rows then look written here since journaled: the link steps skip them
 * and the apply path refuses a server change that names them ("a name the server links to this file was
 * written here since it was journaled") with nothing to make capture look at them, three times, then a
 * resync (chaos seeds 9205, 9209, 9215, 9217, 9218). So the caller notes those that are as journaled before
 * its change (`namesAsJournaled`) and renews them after it (`renewNames`).
 */
export function namesAsJournaled(db: FilesetDb, root: string, ino: string | null, except: Fid | null): NotedName[] {
  if (ino === null) return [];
  const out: NotedName[] = [];
  for (const row of db.objectsByIno(ino)) {
    if (row.fid === except || row.type !== 'file') continue;
    const st = lstatOrNull(join(root, row.path));
    if (st !== null && st.ino === row.ino && st.mtimeNs === row.mtimeNs && st.ctimeNs === row.ctimeNs) out.push({ row, st });
  }
  return out;
}

/**
 * The names `namesAsJournaled` noted take their stat now, if only the change time moved: one written or
 * chmodded since (its mtime, size, mode or owner moved, or it is another file now) is left for capture.
 */
export function renewNames(db: FilesetDb, root: string, noted: readonly NotedName[]): void {
  for (const { row, st } of noted) {
    const now = lstatOrNull(join(root, row.path));
    // A chmod or chown made through another name meanwhile moves the ctime too: not ours to renew.
    if (now === null || now.ino !== st.ino || now.mtimeNs !== st.mtimeNs || now.size !== st.size || now.mode !== st.mode || now.uid !== st.uid || now.gid !== st.gid) continue;
    db.setIdentity(row.fid, { ino: now.ino, mtimeNs: now.mtimeNs, ctimeNs: now.ctimeNs, racy: row.racy });
  }
}

/**
 * The names of `existing`'s inode other than `d.path`, as journaled and on disk now; null when they are not all
 * of its names (one the journal does not know as one of them: replacing the others would split it off).
 */
export function otherNamesOnDisk(db: FilesetDb, root: string, d: RecordDraft, existing: DiskStat): ObjectRow[] | null {
  const others = db.objectsByIno(existing.ino)
    .filter((x) => x.fid !== d.fid && x.path !== d.path && x.type === 'file' && lstatOrNull(join(root, x.path))?.ino === existing.ino);
  return others.length + 1 === existing.nlink ? others : null;
}

/** The first of `d`'s server names of the inode (links) that is a file of its own here, changed on disk since it was journaled. */
export function apartWrittenSince(db: FilesetDb, root: string, d: RecordDraft & { readonly links?: readonly Fid[] | null }): string | null {
  if ((d.kind !== 'write' && d.kind !== 'truncate' && d.kind !== 'setattr') || d.links === undefined || d.links === null) return null;
  const own = db.objectByFid(d.fid);
  for (const fid of d.links) {
    if (fid === d.fid) continue;
    const x = db.objectByFid(fid);
    if (x?.type !== 'file' || x.ino === null || (own?.ino !== null && x.ino === own?.ino)) continue;
    const st = lstatOrNull(join(root, x.path));
    if (st !== null && (st.ino !== x.ino || st.mtimeNs !== x.mtimeNs || st.ctimeNs !== x.ctimeNs)) return x.path;
  }
  return null;
}
