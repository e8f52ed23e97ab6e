import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { FilesetDb } from '#journal/fileset-db.js';
import { findFileset, listFilesets } from '#journal/layout.js';

/**
 * The state directory (secrets, TLS key, enrolled nodes, credentials; never inside a served tree):
 * --state-dir, else the one a daemon of this fileset recorded, else $INTERSYNC_STATE_DIR, else
 * /var/lib/intersync for root and $XDG_STATE_HOME/intersync (~/.local/state/intersync) for others.
 */
export function resolveStateDir(flag: string | undefined, dir?: string, fileset?: string): string {
  if (flag !== undefined) return resolve(flag);
  const recorded = dir === undefined ? undefined : recordedStateDir(dir, fileset);
  if (recorded !== undefined) return recorded;
  const env = process.env.INTERSYNC_STATE_DIR;
  if (env !== undefined && env !== '') return resolve(env);
  if (process.getuid?.() === 0) return '/var/lib/intersync';
  const xdg = process.env.XDG_STATE_HOME;
  return join(xdg !== undefined && xdg !== '' ? xdg : join(homedir(), '.local', 'state'), 'intersync');
}

function recordedStateDir(dir: string, fileset?: string): string | undefined {
  try {
    if (fileset === undefined && listFilesets(dir).length !== 1) return undefined;
    const db = FilesetDb.open(findFileset(dir, fileset).db, { readonly: true, check: false });
    try {
      return db.getMeta('state_dir');
    } finally {
      db.close();
    }
  } catch {
    return undefined;
  }
}
