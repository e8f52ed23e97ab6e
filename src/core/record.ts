import type { Fid, NodeId, Tid } from './ids.js';

/** The types of object a fileset holds; other file types (fifo, socket, device) are not replicated. */
export type ObjectType = 'file' | 'dir' | 'symlink';

/** Every namespace and data change that the KML records. */
export type RecordKind =
  | 'create' // new regular file, with its content (hash, size)
  | 'mkdir'
  | 'write' // new content of an existing file, taken when the file is quiet
  | 'truncate' // content cut to `size` (0 when seen by the watcher)
  | 'setattr' // mode, uid, gid or mtime changed, content did not
  | 'rename' // path -> newPath, one record for a whole directory
  | 'unlink'
  | 'rmdir'
  | 'link' // new hard link at path to the existing name in `target`
  | 'symlink'; // new symbolic link at path pointing at `target`

export const RECORD_KINDS: readonly RecordKind[] = [
  'create', 'mkdir', 'write', 'truncate', 'setattr', 'rename', 'unlink', 'rmdir', 'link', 'symlink',
];

/** Attributes carried by every record: the object's state after the change. */
export interface Attrs {
  readonly mode: number; // permission bits only (mode & 0o7777)
  readonly uid: number;
  readonly gid: number;
  readonly mtimeMs: number;
}

/**
 * A record as a capture layer or a peer proposes it, before the fileset's
 * server gives it a TID. Invariant: `preVersion` is the version of the object
 * the change was made against (NO_VERSION for an object that did not exist).
 */
export interface RecordDraft extends Attrs {
  readonly kind: RecordKind;
  readonly fid: Fid;
  readonly path: string;
  readonly newPath: string | null; // rename only
  readonly target: string | null; // symlink target, or the existing name for link
  readonly preVersion: Tid;
  readonly size: number | null; // files: size after the change
  readonly hash: string | null; // files: SHA-256 of the content after the change
  readonly origin: NodeId;
  readonly time: number; // wall clock, ms
  /**
   * A record that gives an object a new name (create, mkdir, symlink, link: `path`; rename: `newPath`): the
   * fid of the directory that name is in, as its origin journaled it (ROOT_FID at the top). A node whose
   * names differ from the origin's (a directory moved or set aside there meanwhile) places the name in that
   * directory wherever it is (apply/placed.ts). Null or absent: not known (records from before store 5).
   */
  readonly parent?: Fid | null;
  /** A link: the fid of the existing name `target` is (found by it wherever that name is), as `parent`. */
  readonly targetFid?: Fid | null;
}

/**
 * A KML record: a draft with its TID, the object's new version and the state digest after it.
 * `originSeq` is the LML sequence number the record had at its origin when it came by reintegration
 * (null for a change made on the server itself): (origin, originSeq) is unique in a KML.
 */
export interface KmlRecord extends RecordDraft {
  readonly tid: Tid;
  readonly postVersion: Tid;
  readonly digest: string;
  readonly originSeq: bigint | null;
  /**
   * A change of a file's content or attributes through one name: every name of the inode at the server when
   * it was journaled (the server gave each this version), sorted; [] when the file had one name; null or
   * absent when not known (other kinds, records journaled before store format 4). A client whose names are
   * grouped otherwise (an earlier conflict step or resync) takes the server's grouping from it.
   */
  readonly links?: readonly Fid[] | null;
}

/** An LML record: a client's local change the server has not accepted yet, numbered by `seq`. */
export interface LmlRecord extends RecordDraft {
  readonly seq: bigint;
}

/** The state of one object as the object table and the state digest see it. */
export interface ObjectState {
  readonly fid: Fid;
  readonly path: string;
  readonly type: ObjectType;
  readonly version: Tid;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly mtimeMs: number;
  readonly size: number | null;
  readonly hash: string | null;
  readonly target: string | null;
}
