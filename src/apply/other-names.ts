import { join } from 'node:path';
import type { Fid } from '#core/ids.js';
import type { FilesetDb, ObjectRow } from '#journal/fileset-db.js';
import { lstatOrNull } from '#presto/disk.js';

/**
 * A change this node makes through one name of a hard-linked file (a rename, a removal, the name replaced by
 * a link to another inode or by a copy of its own) moves the inode's change time under its other names, and
 * inotify says nothing of them. Their rows then look written here since journaled: the link steps skip them
 * and the apply path refuses a server change that names them ("a name the server links to this file was
 * written here since it was journaled") with nothing to make capture look at them, three times, then a
 * resync (chaos seeds 9205, 9209, 9215, 9217, 9218). So the caller notes those that are as journaled before
 * its change (`namesAsJournaled`) and renews them after it (`renewNames`).
 */
export function namesAsJournaled(db: FilesetDb, root: string, ino: string | null, except: Fid | null): ObjectRow[] {
  if (ino === null) return [];
  return db.objectsByIno(ino).filter((x) => {
    if (x.fid === except || x.type !== 'file') return false;
    const st = lstatOrNull(join(root, x.path));
    return st !== null && st.ino === x.ino && st.mtimeNs === x.mtimeNs && st.ctimeNs === x.ctimeNs;
  });
}

/**
 * The names `namesAsJournaled` noted take their stat now, if only the change time moved: one written or
 * chmodded since (its mtime, size, mode or owner moved, or it is another file now) is left for capture.
 */
export function renewNames(db: FilesetDb, root: string, noted: readonly ObjectRow[]): void {
  for (const x of noted) {
    const now = lstatOrNull(join(root, x.path));
    // A chmod or chown made through another name meanwhile moves the ctime too: not ours to renew.
    if (now === null || now.ino !== x.ino || now.mtimeNs !== x.mtimeNs || now.size !== x.size || now.mode !== x.mode || now.uid !== x.uid || now.gid !== x.gid) continue;
    db.setIdentity(x.fid, { ino: now.ino, mtimeNs: now.mtimeNs, ctimeNs: now.ctimeNs, racy: x.racy });
  }
}
