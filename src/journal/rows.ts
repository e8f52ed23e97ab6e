/**
 * The rows of a fileset database as its readers see them, and the converters from SQLite's rows (bigints,
 * snake_case, NULLs) to them. FilesetDb re-exports the row types: callers import them from fileset-db.ts.
 */
import { asTid, type Fid, type NodeId, type Tid } from '#core/ids.js';
import type { KmlRecord, LmlRecord, ObjectState, ObjectType, RecordDraft, RecordKind } from '#core/record.js';

/** A row as better-sqlite3 returns it (safe integers on: INTEGER columns come as bigint). */
export type Row = Record<string, unknown>;

/** Record kinds that make an object at their path. */
export const CREATE_KINDS: ReadonlySet<string> = new Set(['create', 'mkdir', 'symlink', 'link']);

/** The kinds of record that make a new object, and so a new name (a rename gives one too: its newPath). */
export const NAMING: ReadonlySet<RecordKind> = new Set(['create', 'mkdir', 'symlink', 'link']);

/** A conflict met on reconnection: what happened, what was decided, where the losing version is. */
export interface ConflictRow {
  readonly id: number;
  readonly time: number;
  readonly path: string;
  readonly kind: string;
  readonly policy: string;
  readonly decision: string;
  readonly remoteTid: Tid | null;
  readonly remoteNode: string | null;
  readonly kept: string | null;
  readonly status: 'open' | 'resolved';
  readonly resolution: string | null;
  readonly resolvedAt: number | null;
}

/** A row of a SnapshotReader: an object's state with its version printed as a TID, and its inode. */
export type SnapshotRow = Omit<ObjectState, 'version'> & { readonly version: string; readonly ino: string | null };

/** A row of contentRows(). */
export type ContentRow = Pick<SnapshotRow, 'fid' | 'path' | 'type' | 'version' | 'size' | 'hash'>;

/** What the start-up scan compares with the disk. */
export type StatRow = Pick<ObjectRow, 'type' | 'ino' | 'mode' | 'uid' | 'gid' | 'size' | 'mtimeNs' | 'ctimeNs' | 'racy'>;

export interface ObjectRow extends ObjectState {
  readonly ino: string | null;
  readonly mtimeNs: bigint | null;
  readonly ctimeNs: bigint | null;
  readonly racy: boolean;
}

export function num(v: unknown): number {
  return typeof v === 'bigint' ? Number(v) : (v as number);
}

export function strOrNull(v: unknown): string | null {
  return v === null || v === undefined ? null : String(v);
}

export function toObject(r: Row): ObjectRow {
  return {
    fid: r.fid as Fid,
    path: r.path as string,
    type: r.type as ObjectType,
    version: asTid(r.version as bigint),
    mode: num(r.mode),
    uid: num(r.uid),
    gid: num(r.gid),
    mtimeMs: num(r.mtime_ms),
    size: r.size === null ? null : num(r.size),
    hash: strOrNull(r.hash),
    target: strOrNull(r.target),
    ino: strOrNull(r.ino),
    mtimeNs: r.mtime_ns === null ? null : (r.mtime_ns as bigint),
    ctimeNs: r.ctime_ns === null ? null : (r.ctime_ns as bigint),
    racy: num(r.racy) !== 0,
  };
}

/** The fields a KML row and an LML row share: the record as its origin made it. */
function draftOf(r: Row): RecordDraft {
  return {
    kind: r.kind as RecordKind,
    fid: r.fid as Fid,
    path: r.path as string,
    newPath: strOrNull(r.new_path),
    target: strOrNull(r.target),
    preVersion: asTid(r.pre_version as bigint),
    mode: num(r.mode),
    uid: num(r.uid),
    gid: num(r.gid),
    mtimeMs: num(r.mtime_ms),
    size: r.size === null ? null : num(r.size),
    hash: strOrNull(r.hash),
    origin: r.origin as NodeId,
    time: num(r.time),
    parent: strOrNull(r.parent) as Fid | null,
    targetFid: strOrNull(r.target_fid) as Fid | null,
  };
}

export function toRecord(r: Row): KmlRecord {
  return {
    ...draftOf(r),
    tid: asTid(r.tid as bigint),
    postVersion: asTid(r.post_version as bigint),
    digest: r.digest as string,
    originSeq: r.origin_seq === null || r.origin_seq === undefined ? null : BigInt(r.origin_seq as bigint),
    links: typeof r.links === 'string' ? JSON.parse(r.links) as Fid[] : null,
  };
}

export function toLml(r: Row): LmlRecord {
  return { ...draftOf(r), seq: BigInt(r.seq as bigint) };
}
