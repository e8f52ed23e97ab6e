import { IntersyncError } from '#core/errors.js';

/**
 * A join token: everything a new client needs, in one string a person can paste. `isync1-` then
 * base64url of JSON `{ v: 1, url, uuid, fileset, secret, fp, replicate, exp }`: the server's address,
 * the fileset's shared uuid, a one-time enrolment secret, the SHA-256 fingerprint of the server's TLS
 * certificate (null for a plain-HTTP server on a loopback address) and when the invitation expires.
 */
export interface JoinToken {
  readonly url: string;
  readonly uuid: string;
  readonly fileset: string;
  readonly secret: string;
  readonly fingerprint: string | null;
  readonly replicate: boolean;
  readonly expires: number;
}

export const JOIN_TOKEN_PREFIX = 'isync1-';

export function isJoinToken(text: string): boolean {
  return text.startsWith(JOIN_TOKEN_PREFIX);
}

export function encodeJoinToken(t: JoinToken): string {
  const body = { v: 1, url: t.url, uuid: t.uuid, fileset: t.fileset, secret: t.secret, fp: t.fingerprint, replicate: t.replicate, exp: t.expires };
  return `${JOIN_TOKEN_PREFIX}${Buffer.from(JSON.stringify(body), 'utf8').toString('base64url')}`;
}

export function parseJoinToken(text: string): JoinToken {
  if (!isJoinToken(text)) throw IntersyncError.BAD_TOKEN(`it does not start with ${JOIN_TOKEN_PREFIX}`);
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(Buffer.from(text.slice(JOIN_TOKEN_PREFIX.length), 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    throw IntersyncError.BAD_TOKEN('it is cut or altered (not base64url JSON)');
  }
  const str = (k: string, re: RegExp): string => {
    const x = v[k];
    if (typeof x !== 'string' || !re.test(x)) throw IntersyncError.BAD_TOKEN(`its field ${k} is missing or malformed`);
    return x;
  };
  if (v === null || typeof v !== 'object' || v.v !== 1) throw IntersyncError.BAD_TOKEN('unknown token version');
  const fp = v.fp === null ? null : str('fp', /^sha256:[0-9a-f]{64}$/);
  const exp = v.exp;
  if (typeof exp !== 'number' || !Number.isSafeInteger(exp)) throw IntersyncError.BAD_TOKEN('its field exp is missing or malformed');
  return {
    url: str('url', /^https?:\/\/[^\s/]+$/),
    uuid: str('uuid', /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/),
    fileset: str('fileset', /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/),
    secret: str('secret', /^[A-Za-z0-9_-]{20,100}$/),
    fingerprint: fp,
    replicate: v.replicate === true,
    expires: exp,
  };
}
