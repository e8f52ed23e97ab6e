import { unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { RecordDraft } from '#core/record.js';
import { finishMove, hashFile, lstatOrNull, readTargetOrNull } from '#fsio/disk.js';
import type { FilesetDb } from '#journal/fileset-db.js';
import type { ApplyPath } from './apply-path.js';
import { UNFINISHED_MODE } from './new-file.js';
import type { InflightNote, Recovering } from './record-applier.js';

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

/** What recoverInFlight works on: the fileset's journal, its apply path, its backing directory and a logger. */
export interface RecoveryDeps {
  readonly db: Pick<FilesetDb, 'inflight' | 'clearInflight'>;
  readonly apply: Pick<ApplyPath, 'check'>;
  readonly root: string;
  readonly log: Logger;
}

/**
 * Start-up recovery of the records a direction was applying when the process died (their in-flight notes,
 * written by applyRecord): each one that is not journaled yet, still applies, and reached the disk is
 * journaled through `j` now; every note is cleared, an unreadable one with a warning. A create of a run written
 * straight at its name (`direct`) that did not reach the disk whole leaves the file it began there, with no
 * permission bits (writeNewFile's `marked`): it is removed, and the peer sends the record again. Left, capture
 * took it for a program's new file, and its half content went to the peer against the peer's own file: a conflict.
 */
export async function recoverInFlight<D extends RecordDraft>(x: RecoveryDeps, j: Recovering<D>): Promise<void> {
  for (const { id, intent } of x.db.inflight()) {
    try {
      const note = JSON.parse(intent) as InflightNote;
      const d = j.fromNote(note);
      if (d !== null && !j.journaled(d) && x.apply.check(d) === null) {
        // Unfinished: its mode not set yet, whatever it holds (a record whose mode is none at all: not whole).
        const unfinished = note.direct === true && d.kind === 'create' && isUnfinished(x.root, d.path);
        if (unfinished && (d.mode !== UNFINISHED_MODE || !(await reachedDisk(x.root, d)))) {
          unlinkSync(join(x.root, d.path));
          x.log.info({ path: d.path }, 'removed a file a run of a peer\'s records left half-written; the peer sends it again');
        } else if (await reachedDisk(x.root, d)) {
          const st = lstatOrNull(join(x.root, d.newPath ?? d.path));
          j.recovered(d, st === null ? null : { ino: st.ino, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, racy: true });
        }
      }
    } catch (e) {
      x.log.warn({ err: (e as Error).message }, 'dropping an unreadable in-flight note');
    }
    x.db.clearInflight(id);
  }
}

/** At `path`, a file as a run leaves one it began and did not finish: a regular file of one name with no permission bits. */
function isUnfinished(root: string, path: string): boolean {
  const st = lstatOrNull(join(root, path));
  return st?.type === 'file' && st.mode === UNFINISHED_MODE && st.nlink === 1;
}
