import { IntersyncError } from '#core/errors.js';
import { ensureStateDir, readSecretFile, writeFileAtomic, type StatePaths } from '#journal/state-dir.js';
import type { PeerClient } from '#net/peer-client.js';

/** How a client proves who it is before it has a credential of its own. */
export interface ClientTrust {
  /** The fileset secret (`--secret-file`): scripts from before per-node credentials. */
  readonly secret?: string;
  /** The one-time enrolment secret of a join token. */
  readonly invite?: string;
  /** The SHA-256 fingerprint of the server's certificate, from a join token. */
  readonly pin?: string;
}

/** The bearer token to start with: the credential kept in the state directory, else the invitation or secret. */
export function initialBearer(sp: StatePaths | null, t: ClientTrust): string {
  return (sp === null ? undefined : readSecretFile(sp.credential)) ?? t.invite ?? t.secret ?? '';
}

/** The pinned fingerprint: the one given now (kept for the next start), else the one kept. */
export function pinOf(sp: StatePaths | null, t: ClientTrust): string | undefined {
  return t.pin ?? (sp === null ? undefined : readSecretFile(sp.serverPin));
}

/**
 * Make `client` speak with this node's own credential: the one kept in the state directory (0600), or
 * a new one from enrolling with the invitation or the fileset secret, kept at once. A pin given now is
 * kept beside it, so a restart without the token still pins the server.
 */
export async function ensureCredential(client: PeerClient, sp: StatePaths, node: string, replicate: boolean, t: ClientTrust): Promise<'kept' | 'enrolled'> {
  ensureStateDir(sp);
  if (t.pin !== undefined) writeFileAtomic(sp.serverPin, `${t.pin}\n`, 0o644);
  const kept = readSecretFile(sp.credential);
  if (kept !== undefined) {
    client.bearer = kept;
    return 'kept';
  }
  const with_ = t.invite ?? t.secret;
  if (with_ === undefined) {
    throw IntersyncError.BAD_ARGUMENT(
      `this client has no credential for its server (none in ${sp.dir})`,
      'join with a token: intersync invite DIR on the server, then intersync join TOKEN DIR here; or give --secret-file (and the same --state-dir as before)',
    );
  }
  client.bearer = with_;
  const r = await client.enrol(node, replicate);
  writeFileAtomic(sp.credential, `${r.credential}\n`, 0o600);
  client.bearer = r.credential;
  return 'enrolled';
}
