import { rmdirSync, unlinkSync } from 'node:fs';
import type { Logger } from 'pino';
import type { RecordDraft } from '#core/record.js';
import { moveNoReplace } from '#fsio/disk.js';

/**
 * The journal refused a change already made on disk (disk full, say): take
 * back what can be taken back, so the disk does not hold what the journal
 * does not. A rewritten file's old content is gone; capture journals the
 * new one as a local change, so nothing is lost either way.
 */
export function undo(log: Logger, d: RecordDraft, abs: string, after: string | null): void {
  try {
    if (d.kind === 'create' || d.kind === 'symlink' || d.kind === 'link') rmIfThere(() => unlinkSync(abs));
    else if (d.kind === 'mkdir') rmIfThere(() => rmdirSync(abs));
    else if (d.kind === 'rename' && after !== null && !moveNoReplace(after, abs)) throw new Error('its old name is taken now');
  } catch (e) {
    log.error({ path: d.path, err: (e as Error).message }, 'cannot undo a change the journal refused');
  }
}

/** Run the removal `fn`; nothing there to remove (ENOENT) is no error. */
export function rmIfThere(fn: () => void): void {
  try {
    fn();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}
