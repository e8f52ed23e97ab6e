import { execFileSync } from 'node:child_process';
import { X509Certificate, createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { IntersyncError } from '#core/errors.js';
import { ensureStateDir, readCredentialFile, readSecretFile, writeFileAtomic, type StatePaths } from '#journal/state-dir.js';
import { fingerprintOfPem } from '#net/protocol/endpoint.js';

/**
 * The fileset secret of a server, in its state directory (0600). A secret left inside the backing
 * directory by an older release (`DIR/.intermezzo/<fileset>/secret`, which a web server serving DIR
 * could hand out) is moved there and removed from the tree. A new one is made only for a fileset that
 * never had one: `recorded` is the state directory the fileset's meta names (mkfs and every start
 * record it), and a secret missing there was deleted or lost, which is NO_CREDENTIAL, never silently
 * replaced (scripts and clients enrolling with it would be refused with no word why).
 */
export function ensureSecret(sp: StatePaths, legacyFile: string, recorded?: string): { secret: string; moved: boolean } {
  ensureStateDir(sp);
  const legacy = readSecretFile(legacyFile, 'the fileset secret');
  let secret = readSecretFile(sp.secret, 'the fileset secret');
  let moved = false;
  if (secret === undefined) {
    if (legacy === undefined && recorded !== undefined) throw missingSecret(sp, recorded);
    secret = legacy ?? randomBytes(32).toString('hex');
    writeFileAtomic(sp.secret, `${secret}\n`, 0o600);
    moved = legacy !== undefined;
  }
  if (legacy !== undefined) rmSync(legacyFile, { force: true });
  return { secret, moved };
}

function missingSecret(sp: StatePaths, recorded: string): IntersyncError {
  const here = resolve(sp.dir, '..', '..');
  if (resolve(recorded) !== here) {
    const was = join(resolve(recorded), relative(here, sp.dir));
    return IntersyncError.NO_CREDENTIAL('the fileset secret', sp.secret, `is missing: this fileset keeps its state in ${recorded}`,
      `start with --state-dir ${recorded}, or move ${was} to ${sp.dir} (secret, TLS key and enrolled nodes together)`);
  }
  return IntersyncError.NO_CREDENTIAL('the fileset secret', sp.secret, 'is missing (deleted?)',
    `restore it from a backup of ${sp.dir}; if it is lost, make a new one: (umask 077; openssl rand -hex 32 > ${sp.secret}). ` +
    'Enrolled clients keep working with their own credentials; only scripts and clients that use --secret-file need the new secret');
}

/**
 * A self-signed certificate for the server, made once: the key with node:crypto (EC P-256, 0600), the
 * X.509 certificate with the `openssl` binary (Node 20 cannot sign a certificate by itself). Clients
 * pin its fingerprint from their join token, so no CA is involved. Returns the fingerprint. One of the
 * pair without the other is NO_CREDENTIAL, never a new pair made over it: every client pinned the old
 * certificate and would be refused with no word why.
 */
export function ensureSelfSignedCert(sp: StatePaths, commonName: string): string {
  ensureStateDir(sp);
  const hasCert = existsSync(sp.tlsCert);
  if (hasCert !== existsSync(sp.tlsKey)) {
    const [gone, kept] = hasCert ? [sp.tlsKey, sp.tlsCert] : [sp.tlsCert, sp.tlsKey];
    throw IntersyncError.NO_CREDENTIAL(hasCert ? 'the TLS key' : 'the TLS certificate', gone, `is missing (deleted?) while ${kept} is there`, selfSignedHint(sp));
  }
  if (hasCert) return readTlsPair({ cert: sp.tlsCert, key: sp.tlsKey }, sp).fingerprint;
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  writeFileAtomic(sp.tlsKey, privateKey.export({ type: 'pkcs8', format: 'pem' }), 0o600);
  const tmp = `${sp.tlsCert}.tmp`;
  try {
    execFileSync('openssl', [
      'req', '-new', '-x509', '-key', sp.tlsKey, '-out', tmp, '-days', '3650', '-sha256',
      '-subj', `/CN=${commonName}`, '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    rmSync(tmp, { force: true });
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
    throw new IntersyncError('IO', `cannot make a self-signed certificate: ${missing ? 'the openssl command is not installed' : (e as Error).message.split('\n')[0]}`, {
      hint: missing ? 'install it (apt-get install openssl), or give your own with --tls-cert FILE --tls-key FILE' : 'give your own certificate with --tls-cert FILE --tls-key FILE',
      cause: e,
    });
  }
  writeFileAtomic(sp.tlsCert, readFileSync(tmp), 0o644);
  rmSync(tmp, { force: true });
  return fingerprintOfPem(readFileSync(sp.tlsCert));
}

/** What to do about a self-signed pair that cannot be used: restore it, or make a new one and have the clients join again. */
function selfSignedHint(sp: StatePaths): string {
  return `restore tls-cert.pem and tls-key.pem together from a backup of ${sp.dir}; if they are lost, remove both and start again: ` +
    'a new self-signed pair is made, and each client joins again with a new token (intersync invite DIR here, intersync join TOKEN DIR there)';
}

/** A server's certificate and key as read, and the certificate's fingerprint (what clients pin). */
export interface TlsPair {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly fingerprint: string;
}

/**
 * Read the server's certificate and key (PEM) once, for the fingerprint and the HTTPS server both. A file
 * that is missing, unreadable, or not a certificate or a private key is NO_CREDENTIAL naming it, with what
 * to do: for the self-signed pair of the state directory `sp`, restore it or make a new one; for files
 * given with --tls-cert and --tls-key, fix the path or the permissions. Before, any of these was
 * `[INTERNAL] … this is a bug`.
 */
export function readTlsPair(files: { readonly cert: string; readonly key: string }, sp: StatePaths | null): TlsPair {
  const hint = sp === null
    ? 'give --tls-cert and --tls-key files in PEM that the user the daemon runs as can read (chmod 600 the key)'
    : selfSignedHint(sp);
  const cert = readCredentialFile('the TLS certificate', files.cert, hint);
  const key = readCredentialFile('the TLS key', files.key, hint);
  let fingerprint: string;
  try {
    fingerprint = fingerprintOfPem(cert);
  } catch (e) {
    throw IntersyncError.NO_CREDENTIAL('the TLS certificate', files.cert, `is not a certificate in PEM (${(e as Error).message})`, hint, e);
  }
  try {
    const k = createPrivateKey(key);
    if (!new X509Certificate(cert).checkPrivateKey(k)) throw new Error('it is not the key of the certificate');
  } catch (e) {
    throw IntersyncError.NO_CREDENTIAL('the TLS key', files.key, `is not the certificate's private key in PEM (${(e as Error).message})`, hint, e);
  }
  return { cert, key, fingerprint };
}
