import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { IntersyncError } from '#core/errors.js';

/**
 * Where a node keeps what must not sit in the served tree: the fileset secret, the TLS key and
 * certificate, the enrolled nodes and invitations (server), its own credential (client). One folder per
 * node and fileset, `<state dir>/<node id>/<fileset>/`, mode 0700; secret files 0600. The node id keys
 * it because a server and its clients can share one machine (and one state dir) but never a node id.
 */
export interface StatePaths {
  readonly dir: string;
  /** The fileset's shared secret (server): scripts that predate per-node credentials still use it. */
  readonly secret: string;
  readonly tlsKey: string;
  readonly tlsCert: string;
  /** Enrolled nodes and invitations (server). */
  readonly identityDb: string;
  /** This node's own credential for its server (client). */
  readonly credential: string;
  /** The fingerprint of the server's certificate this client pins (client; not secret, kept with the credential). */
  readonly serverPin: string;
}

export function statePaths(stateDir: string, nodeId: string, fileset: string): StatePaths {
  const dir = join(resolve(stateDir), nodeId, fileset);
  return {
    dir,
    secret: join(dir, 'secret'),
    tlsKey: join(dir, 'tls-key.pem'),
    tlsCert: join(dir, 'tls-cert.pem'),
    identityDb: join(dir, 'identity.db'),
    credential: join(dir, 'credential'),
    serverPin: join(dir, 'server-pin'),
  };
}

/** Create the state folder (and its parents) readable by this user only. */
export function ensureStateDir(p: StatePaths): void {
  try {
    mkdirSync(p.dir, { recursive: true, mode: 0o700 });
    chmodSync(p.dir, 0o700);
  } catch (e) {
    throw IntersyncError.IO('create state directory', p.dir, e).wrap('set up the state directory (--state-dir)');
  }
}

/** Write a file through a temp name and rename, with `mode` (0600 for anything secret). */
export function writeFileAtomic(file: string, text: string | Buffer, mode: number): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, text, { mode, flush: true });
  chmodSync(tmp, mode);
  renameSync(tmp, file);
}

/**
 * A credential file (a certificate, a key) read whole: one missing or unreadable is NO_CREDENTIAL naming it,
 * with `hint` (what to do). Before, either was `[INTERNAL] … this is a bug`.
 */
export function readCredentialFile(what: string, file: string, hint: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'is missing' : `cannot be read (${(e as Error).message})`;
    throw IntersyncError.NO_CREDENTIAL(what, file, why, hint, e);
  }
}

/**
 * A one-line secret file, trimmed; undefined when absent. One that exists but cannot be read, or is
 * empty, is NO_CREDENTIAL: an empty secret must never stand for one (a peer sending none would match).
 */
export function readSecretFile(file: string, what = 'the secret file', restore = 'restore it from a backup of the state directory'): string | undefined {
  if (!existsSync(file)) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (e) {
    throw IntersyncError.NO_CREDENTIAL(what, file, `cannot be read (${(e as Error).message})`,
      `it must be a file readable by the user the daemon runs as (chown that user, chmod 600); otherwise ${restore}`, e);
  }
  if (text === '') throw IntersyncError.NO_CREDENTIAL(what, file, 'is empty', `it holds the secret on one line: ${restore}`);
  return text;
}
