import { copyFileSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { IntersyncError } from '#core/errors.js';
import type { ConflictRow, FilesetDb } from '#journal/fileset-db.js';

export type Keep = 'local' | 'remote' | 'both';

/**
 * Settle one open conflict by hand (CLI `resolve` and the dashboard): keep the local (kept-beside)
 * version at the name, the remote one (the copy goes), or both. Only ordinary file changes: the running
 * daemon (or the next start-up scan) journals and ships them.
 */
export function resolveOpenConflict(db: FilesetDb, dir: string, which: { path?: string; id?: number }, keep: Keep, now: number): ConflictRow {
  const c = db.conflicts(false).find((x) => (which.id !== undefined ? x.id === which.id : x.path === which.path || x.kept === which.path));
  if (c === undefined) {
    throw IntersyncError.BAD_ARGUMENT(`no open conflict on ${which.path ?? `#${which.id}`}`, `list them with: intersync conflicts ${dir}`);
  }
  const kept = c.kept === null ? null : c.kept.startsWith('/') ? c.kept : join(dir, c.kept);
  const name = join(dir, c.path);
  if (keep === 'local' && kept !== null && existsSync(kept)) {
    copyFileSync(kept, name);
    rmSync(kept, { force: true });
  } else if (keep === 'remote' && kept !== null) {
    rmSync(kept, { force: true });
  }
  db.resolveConflict(c.id, `by hand: kept ${keep}`, now);
  return c;
}
