import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { buildConnector } from 'undici';
import { IntersyncError } from '#core/errors.js';

/**
 * Certificate pinning, as Syncthing pins device ids: a client that joined with a token trusts the one
 * certificate whose SHA-256 fingerprint the token carries, self-signed or not, and nothing else.
 * Fingerprints are written `sha256:<64 lowercase hex>`.
 */
export function formatFingerprint(hexOrColons: string): string {
  const hex = hexOrColons.replace(/^sha256:/i, '').replace(/:/g, '').toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) throw IntersyncError.BAD_ARGUMENT(`${hexOrColons} is not a SHA-256 certificate fingerprint`);
  return `sha256:${hex}`;
}

/** The fingerprint of a PEM certificate. */
export function fingerprintOfPem(pem: string | Buffer): string {
  return formatFingerprint(new X509Certificate(pem).fingerprint256);
}

/** An undici `connect` function that accepts only a server whose certificate has fingerprint `pin`. */
export function pinnedConnector(pin: string, url: string): buildConnector.connector {
  const want = formatFingerprint(pin);
  // The CA check is replaced by the pin; sessions are not resumed, so every connection shows its certificate.
  const base = buildConnector({ rejectUnauthorized: false, maxCachedSessions: 0 });
  return (opts, cb) => {
    base(opts, (err, socket) => {
      if (err !== null) {
        cb(err, null);
        return;
      }
      const cert = (socket as TLSSocket).getPeerCertificate?.();
      const got = cert?.fingerprint256 === undefined ? 'no certificate' : formatFingerprint(cert.fingerprint256);
      if (got !== want) {
        socket.destroy();
        cb(IntersyncError.TLS_PIN_MISMATCH(url, want, got), null);
        return;
      }
      cb(null, socket);
    });
  };
}

/** 127.0.0.0/8, ::1, localhost: traffic that never leaves the machine. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || /^::ffff:127\./.test(h);
}
