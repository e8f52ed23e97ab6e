import { join } from 'node:path';
import type { Fid } from '#core/ids.js';
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
