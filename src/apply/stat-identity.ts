import type { ObjectRow, StatIdentity } from '#journal/fileset-db.js';
import type { DiskStat } from '#fsio/disk.js';

/** The file's stat now is the one its row journaled (same inode, size, mtime and ctime). */
export function unchangedSince(o: ObjectRow, st: DiskStat): boolean {
  return o.ino === st.ino && o.size === st.size && o.mtimeNs === st.mtimeNs && o.ctimeNs === st.ctimeNs;
}

/** A file whose content on disk the journal does not vouch for: changed since its row, or its row racy. */
export function changedSinceJournaled(o: ObjectRow | undefined, st: DiskStat | null): boolean {
  if (o === undefined || st === null || o.type !== 'file') return false;
  return o.racy || !unchangedSince(o, st);
}

/** Content this node wrote itself is known exactly: its stat is not racy. */
export function appliedIdentity(st: DiskStat): StatIdentity {
  return { ino: st.ino, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, racy: false };
}
