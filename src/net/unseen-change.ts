import { formatTid, type Tid } from '#core/ids.js';
import { IntersyncError } from '#core/errors.js';
import type { RecordDraft } from '#core/record.js';
import type { FilesetDb } from '#journal/fileset-db.js';

/**
 * A client's write or truncate goes into a file whose other names here (a hard link) a peer changed after
 * what the client had applied (`seen`, the position of its stream when it read the batch): the client did not
 * see that change, so its write is a conflict, as it is through a name the change gave its version. The
 * pre-version check alone misses it when the write's name joined the inode after the change (a link made on
 * the client in the same batch): its version is the link's own. Before, the peer's change was written over
 * here and lost, and the client, applying it late through its other names only, held two inodes where the
 * server held one (chaos seed 9218, c3; test/long/link-unseen-write.test.ts).
 */
export function unseenChange(db: FilesetDb, d: RecordDraft, seen: Tid, node: string): IntersyncError | null {
  if (d.kind !== 'write' && d.kind !== 'truncate') return null;
  const o = db.objectByFid(d.fid);
  if (o?.type !== 'file' || o.ino === null) return null;
  for (const x of db.objectsByIno(o.ino)) {
    if (x.fid === d.fid || x.type !== 'file' || x.version <= seen) continue;
    const at = db.kmlAt(x.version);
    const r = at !== undefined && at.origin !== node && ['write', 'truncate', 'setattr'].includes(at.kind) ? at : db.foreignContentAfter(x.fid, seen, node);
    if (r === undefined) continue;
    return IntersyncError.CONFLICT(d.path, `${x.path}, another name of this file, was changed here at ${formatTid(r.tid)}, after what the client had applied (${formatTid(seen)})`);
  }
  return null;
}
