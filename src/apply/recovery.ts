import { join } from 'node:path';
import type { RecordDraft } from '#core/record.js';
import { finishMove, hashFile, lstatOrNull, readTargetOrNull } from '#fsio/disk.js';

/**
 * Start-up recovery of the apply path: did a change that was in flight when
 * the process died reach the disk? Yes: it is journaled now, as the record it
 * was. No: it is dropped, and the peer sends it again (it was never
 * acknowledged). Either way the disk and the journal agree, and the change is
 * never mistaken for a local one.
 */
export async function reachedDisk(root: string, d: RecordDraft): Promise<boolean> {
  const at = (p: string) => lstatOrNull(join(root, p));
  const st = at(d.path);
  switch (d.kind) {
    case 'create':
    case 'write':
    case 'truncate':
      return st?.type === 'file' && st.size === d.size && (await hashFile(join(root, d.path), st.size)) === d.hash;
    case 'mkdir':
      return st?.type === 'dir';
    case 'symlink':
      return st?.type === 'symlink' && readTargetOrNull(join(root, d.path)) === d.target;
    case 'link':
      return st?.type === 'file' && st.nlink > 1;
    case 'rename':
      // Both names one inode: the move was cut between its link and its unlink (moveNoReplace), and ends now.
      if (finishMove(join(root, d.path), join(root, d.newPath!))) return true;
      return st === null && at(d.newPath!) !== null;
    case 'unlink':
    case 'rmdir':
      return st === null;
    case 'setattr':
      return st !== null && (st.type === 'symlink' || st.mode === d.mode);
  }
}
