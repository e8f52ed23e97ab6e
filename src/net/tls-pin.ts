import type { TLSSocket } from 'node:tls';
import { buildConnector } from 'undici';
import { IntersyncError } from '#core/errors.js';
import { formatFingerprint } from './protocol/endpoint.js';

/**
 * Certificate pinning, as Syncthing pins device ids: a client that joined with a token trusts the one
 * certificate whose SHA-256 fingerprint the token carries, self-signed or not, and nothing else.
 * This returns an undici `connect` function that accepts only a server whose certificate has
 * fingerprint `pin`, checked before any request is written on the connection.
 */
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
