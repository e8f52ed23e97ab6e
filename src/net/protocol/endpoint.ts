import { X509Certificate } from 'node:crypto';
import { IntersyncError } from '#core/errors.js';

/**
 * What identifies the other end of a link, without any HTTP library: certificate fingerprints (written
 * `sha256:<64 lowercase hex>`, as join tokens carry them) and whether an address stays on this machine.
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

/** 127.0.0.0/8, ::1, localhost: traffic that never leaves the machine. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || /^::ffff:127\./.test(h);
}
