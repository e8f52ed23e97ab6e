import type { ObjectType } from './record.js';
import { sha256Hex } from './sha256.js';

/**
 * The state digest: the sum modulo 2^256 of SHA-256 over each object's entry
 * (path, type, mode, content hash, symlink target). Order independent, so two
 * nodes that hold the same state have the same digest whatever order their
 * changes came in; adding an object adds its hash, removing it subtracts.
 */
export interface DigestEntry {
  readonly path: string;
  readonly type: ObjectType;
  readonly mode: number;
  readonly hash: string | null;
  readonly target: string | null;
}

const MOD = 1n << 256n;
const MASK = MOD - 1n;

export const EMPTY_DIGEST = 0n;

export function entryHash(e: DigestEntry): bigint {
  // Symlink permission bits are meaningless on Linux; leave them out.
  const mode = e.type === 'symlink' ? 0 : e.mode & 0o7777;
  const text = `${e.type}\0${e.path}\0${mode.toString(8)}\0${e.hash ?? ''}\0${e.target ?? ''}`;
  return BigInt(`0x${sha256Hex(text)}`);
}

export function digestAdd(d: bigint, e: DigestEntry): bigint {
  return (d + entryHash(e)) & MASK;
}

export function digestSub(d: bigint, e: DigestEntry): bigint {
  return (d - entryHash(e) + MOD) & MASK;
}

export function formatDigest(d: bigint): string {
  return d.toString(16).padStart(64, '0');
}

export function parseDigest(s: string): bigint {
  if (!/^[0-9a-f]{64}$/.test(s)) throw new RangeError(`not a state digest: ${s}`);
  return BigInt(`0x${s}`);
}
