import type { Tid } from '#core/ids.js';
import type { ContentSource } from '#apply/apply-path.js';
import type { RecordSource } from '#net/record-follower.js';
import type { SnapshotSource } from '#net/snapshot-source.js';

/** What a mirror learns of its master before anything else. */
export interface MasterHello {
  readonly node: string;
  readonly uuid: string;
  readonly fileset: string;
  readonly tid: Tid;
}

/**
 * A mirror's master, wherever it is: its record stream (RecordSource, what the RecordFollower reads), its state at
 * one TID and its small files' content (SnapshotSource, what the first copy reads), large files' blocks
 * (ContentSource). A local fileset directory (local-master.ts) or a remote daemon (remote-master.ts).
 */
export interface MirrorMaster extends RecordSource<MasterHello>, SnapshotSource, ContentSource {
  /** Where it is, as the user named it (kept in the slave's meta, shown by pfs-status). */
  readonly where: string;
  /** Bytes of file content handed to the mirror so far. */
  readonly sent: number;
  /** The master's last TID as known now (read from its store, or the last the stream said). */
  lastTid(): Tid;
  /** The time of the master's first record after `tid` (where a lag in seconds counts from), or null when not known. */
  firstAfterTime(tid: Tid): number | null;
  /** Whether the master changed object `fid` after `tid` (a removal too), or null when it cannot say. */
  changedAfter(fid: string, tid: Tid): boolean | null;
  /** The slave applied and flushed up to `tid` (a remote master counts it as this node's acknowledgement). */
  applied(tid: Tid): void;
  close(): Promise<void>;
}
