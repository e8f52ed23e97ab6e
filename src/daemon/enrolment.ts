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
  const kept = readSecretFile(sp.credential, 'this client\'s credential');
  if (kept !== undefined) {
    client.bearer = kept;
    return 'kept';
  }
  const with_ = t.invite ?? t.secret;
  if (with_ === undefined) throw noCredential(sp);
  client.bearer = with_;
  const r = await client.enrol(node, replicate);
  writeFileAtomic(sp.credential, `${r.credential}\n`, 0o600);
  client.bearer = r.credential;
  return 'enrolled';
}

/**
 * Refuse at once, before the server is asked (it may be away), a client that could never authenticate:
 * no credential kept (or one that cannot be read) and neither an invitation nor the fileset secret to
 * enrol with. Without this an offline start ran on, journaling, and failed at every reconnection.
 */
export function requireCredential(sp: StatePaths, t: ClientTrust): void {
  if (readSecretFile(sp.credential, 'this client\'s credential') !== undefined) return;
  if (t.invite === undefined && t.secret === undefined) throw noCredential(sp);
}

function noCredential(sp: StatePaths): IntersyncError {
  return IntersyncError.NO_CREDENTIAL('this client\'s credential', sp.credential, 'is missing (deleted, or another --state-dir than before?)',
    'restore it from a backup of the state directory, or start with the --state-dir it was in. It cannot be made again for this ' +
    'node (the server knows its id): otherwise join from a new, empty directory (intersync invite on the server, intersync join TOKEN ' +
    'NEWDIR here) and copy over what this one had not sent');
}
