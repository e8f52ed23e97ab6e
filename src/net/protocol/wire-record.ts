import { IntersyncError } from '#core/errors.js';
import { formatTid, isNodeId, parseTid, type Fid, type NodeId, type Tid } from '#core/ids.js';
import { checkRelPath } from '#core/paths.js';
import { RECORD_KINDS, type KmlRecord, type LmlRecord, type ObjectState, type RecordDraft, type RecordKind } from '#core/record.js';

/**
 * Records on the wire: JSON with TIDs as "0x%016x" strings and sequence numbers as decimal strings.
 * Everything that arrives from a peer goes through parseWire* once, at the edge: a bad field is a
 * BAD_REQUEST (or BAD_PATH) and nothing of it is applied.
 */
export type WireRecord = Record<string, unknown>;

export function recordToWire(r: KmlRecord): WireRecord {
  return {
    ...draftFields(r), tid: formatTid(r.tid), postVersion: formatTid(r.postVersion), digest: r.digest,
    originSeq: r.originSeq === null ? null : r.originSeq.toString(),
    ...(r.links === undefined || r.links === null ? {} : { links: r.links }),
  };
}

export function lmlToWire(r: LmlRecord): WireRecord {
  return { ...draftFields(r), seq: r.seq.toString() };
}

function draftFields(d: RecordDraft): WireRecord {
  return {
    kind: d.kind, fid: d.fid, path: d.path, newPath: d.newPath, target: d.target, preVersion: formatTid(d.preVersion),
    mode: d.mode, uid: d.uid, gid: d.gid, mtimeMs: d.mtimeMs, size: d.size, hash: d.hash, origin: d.origin, time: d.time,
    ...(d.parent === undefined || d.parent === null ? {} : { parent: d.parent }),
    ...(d.targetFid === undefined || d.targetFid === null ? {} : { targetFid: d.targetFid }),
  };
}

const KINDS = new Set<string>(RECORD_KINDS);
const bad = (field: string, why: string): IntersyncError => IntersyncError.BAD_REQUEST(`record field ${field}: ${why}`);

function obj(v: unknown): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw IntersyncError.BAD_REQUEST('record is not an object');
  return v as Record<string, unknown>;
}

function int(o: Record<string, unknown>, k: string, min: number, max: number): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(k, `not an integer in ${min}..${max}`);
  return v;
}

/** Times are milliseconds within the range of a JS Date (±8.64e15). */
const MAX_TIME_MS = 8.64e15;

function finite(o: Record<string, unknown>, k: string): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isFinite(v) || Math.abs(v) > MAX_TIME_MS) throw bad(k, 'not a time in range');
  return v;
}

function tid(o: Record<string, unknown>, k: string): Tid {
  const v = o[k];
  const t = typeof v === 'string' ? parseTid(v) : undefined;
  if (t === undefined) throw bad(k, 'not a TID');
  return t;
}

function seq(o: Record<string, unknown>, k: string): bigint {
  const v = o[k];
  if (typeof v !== 'string' || !/^[0-9]{1,19}$/.test(v)) throw bad(k, 'not a sequence number');
  return BigInt(v);
}

function optPath(o: Record<string, unknown>, k: string): string | null {
  const v = o[k];
  if (v === null || v === undefined) return null;
  if (typeof v !== 'string') throw bad(k, 'not a string');
  return checkRelPath(v);
}

export function parseFid(v: unknown, field = 'fid'): Fid {
  if (typeof v !== 'string' || !/^(root|[0-9a-f]{16}-[0-9a-f]{1,16})$/.test(v)) throw bad(field, 'malformed');
  return v as Fid;
}

function parseDraft(o: Record<string, unknown>): RecordDraft {
  const kind = o.kind;
  if (typeof kind !== 'string' || !KINDS.has(kind)) throw bad('kind', `unknown kind ${JSON.stringify(kind)}`);
  const k = kind as RecordKind;
  if (typeof o.path !== 'string') throw bad('path', 'not a string');
  const path = checkRelPath(o.path);
  const newPath = optPath(o, 'newPath');
  if (k === 'rename' && newPath === null) throw bad('newPath', 'a rename needs one');
  let target: string | null = null;
  if (k === 'symlink') {
    if (typeof o.target !== 'string' || o.target.length === 0 || o.target.length > 4096 || o.target.includes('\0')) throw bad('target', 'bad symlink target');
    target = o.target;
  } else if (k === 'link') {
    target = optPath(o, 'target');
    if (target === null) throw bad('target', 'a link needs the existing name');
  }
  const hash = o.hash === null || o.hash === undefined ? null : o.hash;
  if (hash !== null && (typeof hash !== 'string' || !/^[0-9a-f]{64}$/.test(hash))) throw bad('hash', 'not a SHA-256 in hex');
  const size = o.size === null || o.size === undefined ? null : int(o, 'size', 0, Number.MAX_SAFE_INTEGER);
  if ((k === 'create' || k === 'write' || k === 'truncate') && (hash === null || size === null)) throw bad('hash', `${k} needs size and hash`);
  if (typeof o.origin !== 'string' || !isNodeId(o.origin)) throw bad('origin', 'not a node id');
  return {
    kind: k, fid: parseFid(o.fid), path, newPath, target, preVersion: tid(o, 'preVersion'),
    mode: int(o, 'mode', 0, 0o7777), uid: int(o, 'uid', 0, 0xffffffff), gid: int(o, 'gid', 0, 0xffffffff),
    mtimeMs: finite(o, 'mtimeMs'), size, hash: hash as string | null, origin: o.origin as NodeId, time: finite(o, 'time'),
    ...(o.parent === null || o.parent === undefined ? {} : { parent: parseFid(o.parent, 'parent') }),
    ...(o.targetFid === null || o.targetFid === undefined ? {} : { targetFid: parseFid(o.targetFid, 'targetFid') }),
  };
}

export function parseWireRecord(v: unknown): KmlRecord {
  const o = obj(v);
  const d = parseDraft(o);
  if (typeof o.digest !== 'string' || !/^[0-9a-f]{64}$/.test(o.digest)) throw bad('digest', 'not a state digest');
  return {
    ...d, tid: tid(o, 'tid'), postVersion: tid(o, 'postVersion'), digest: o.digest,
    originSeq: o.originSeq === null || o.originSeq === undefined ? null : seq(o, 'originSeq'),
    ...(o.links === null || o.links === undefined ? {} : { links: parseLinks(o.links) }),
  };
}

/** A file has at most this many names a record lists (Linux allows 65,000 links to an inode on ext4). */
const MAX_LINKS = 65_000;

function parseLinks(v: unknown): Fid[] {
  if (!Array.isArray(v) || v.length > MAX_LINKS) throw bad('links', `not a list of at most ${MAX_LINKS} fids`);
  return v.map((x) => parseFid(x));
}

export function parseWireLml(v: unknown): LmlRecord {
  const o = obj(v);
  return { ...parseDraft(o), seq: seq(o, 'seq') };
}

/** One object of a server's snapshot (first copy, resync) as a client takes it: its state, version as a TID text. */
export type WireEntry = Omit<ObjectState, 'version' | 'type'> & {
  readonly type: 'file' | 'dir' | 'symlink';
  readonly version: string;
  /** A hard link: the first name of its inode. */
  readonly linkOf: string | null;
};

/**
 * A snapshot entry from a server, checked once at the edge like a record: a normalised relative path
 * (and link name), a known type, a mode within 0o7777, a symlink's target, a file's hash and size.
 */
export function parseWireEntry(v: unknown): WireEntry {
  const o = obj(v);
  const type = o.type;
  if (type !== 'file' && type !== 'dir' && type !== 'symlink') throw bad('type', `unknown type ${JSON.stringify(type)}`);
  if (typeof o.path !== 'string') throw bad('path', 'not a string');
  const path = checkRelPath(o.path);
  tid(o, 'version');
  let target: string | null = null;
  if (type === 'symlink') {
    if (typeof o.target !== 'string' || o.target.length === 0 || o.target.length > 4096 || o.target.includes('\0')) throw bad('target', 'bad symlink target');
    target = o.target;
  }
  const linkOf = type === 'file' ? optPath(o, 'linkOf') : null;
  let hash: string | null = null;
  let size: number | null = null;
  if (type === 'file') {
    if (typeof o.hash !== 'string' || !/^[0-9a-f]{64}$/.test(o.hash)) throw bad('hash', 'not a SHA-256 in hex');
    hash = o.hash;
    size = int(o, 'size', 0, Number.MAX_SAFE_INTEGER);
  }
  return {
    fid: parseFid(o.fid), path, type, version: o.version as string, mode: int(o, 'mode', 0, 0o7777), uid: int(o, 'uid', 0, 0xffffffff),
    gid: int(o, 'gid', 0, 0xffffffff), mtimeMs: finite(o, 'mtimeMs'), size, hash, target, linkOf,
  };
}
