import type { Tid } from '#core/ids.js';
import type { SnapshotRow } from '#journal/fileset-db.js';
import type { Frame } from './protocol/frames.js';

/** One object of a snapshot as it travels: a row of the server's table, and for a hard link the first name of its inode. */
export type SnapshotEntry = Omit<SnapshotRow, 'ino'> & { readonly linkOf: string | null };

export interface Snapshot {
  readonly tid: string;
  readonly digest: string;
  /** The first record after the asked `since` ({ tid, time }, net/protocol/lag-fields.ts); absent from an older server. */
  readonly next?: unknown;
  readonly entries: SnapshotEntry[];
}

/**
 * Where a bulk copy of a fileset comes from (a first copy, a resync; a mirror's initial load next): the whole
 * fileset at one TID, and the content of its small files. PeerClient is one (a fileset's server over HTTP).
 */
export interface SnapshotSource {
  /** The whole fileset at one TID; `since` (the copier's last_rcvd) makes the source name the first record it misses (`next`). */
  snapshot(since: Tid): Promise<Snapshot>;
  /** The same, streamed: hello (with `next` after `since`), an entry frame per object, end. */
  copyStream(since: Tid): AsyncGenerator<Frame>;
  /** Current content of small objects: fid -> bytes (null when the source no longer holds them). */
  content(fids: readonly string[]): Promise<Map<string, { hash: string | null; data: Buffer | null }>>;
}
