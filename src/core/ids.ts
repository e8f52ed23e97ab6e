/**
 * Identifiers: transaction ids (TIDs), object ids (fids) and node ids.
 * TIDs are 64-bit, strictly increasing per fileset and printed as 0x%016x.
 */
declare const tidBrand: unique symbol;
declare const fidBrand: unique symbol;
declare const nodeBrand: unique symbol;

export type Tid = bigint & { readonly [tidBrand]: true };
export type Fid = string & { readonly [fidBrand]: true };
export type NodeId = string & { readonly [nodeBrand]: true };

/** The version of an object that does not exist yet (pre-version of a create). */
export const NO_VERSION = 0n as Tid;

const TID_MAX = (1n << 63n) - 1n; // SQLite INTEGER is signed 64-bit

export function asTid(n: bigint | number): Tid {
  const b = BigInt(n);
  if (b < 0n || b > TID_MAX) throw new RangeError(`TID out of range: ${b}`);
  return b as Tid;
}

export function formatTid(t: bigint): string {
  return `0x${t.toString(16).padStart(16, '0')}`;
}

/** Parse "0x…" hex or a decimal number; undefined when it is not a TID. */
export function parseTid(s: string): Tid | undefined {
  const text = s.trim();
  if (!/^(0x[0-9a-fA-F]{1,16}|[0-9]{1,19})$/.test(text)) return undefined;
  const b = BigInt(text);
  return b <= TID_MAX ? (b as Tid) : undefined;
}

export function isNodeId(s: string): s is NodeId {
  return /^[0-9a-f]{16}$/.test(s);
}

/** A fid is `<node id>-<sequence in hex>`: unique across nodes without coordination. */
export function makeFid(node: NodeId, seq: bigint): Fid {
  return `${node}-${seq.toString(16)}` as Fid;
}

/** The fid of a fileset's root directory, the same on every node. */
export const ROOT_FID = 'root' as Fid;
