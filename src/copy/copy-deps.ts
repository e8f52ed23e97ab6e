import type { Logger } from 'pino';
import type { Clock } from '#core/clock.js';
import type { Fid, Tid } from '#core/ids.js';
import type { ApplyPath, ContentSource } from '#apply/apply-path.js';
import type { FilesetDb } from '#journal/fileset-db.js';
import type { SnapshotSource } from '#net/snapshot-source.js';

// What a copy is given and what it gives back, shared by the parts of a copy (copy.ts re-exports them):
// below every part, so that no part imports the entry points.

export interface CopyProgress {
  files: number;
  totalFiles: number;
  bytes: number;
  totalBytes: number;
}

export interface CopyDeps {
  readonly db: FilesetDb;
  readonly apply: ApplyPath;
  /** Where the copy comes from: the server (PeerClient). */
  readonly client: SnapshotSource;
  readonly source: ContentSource;
  readonly root: string;
  readonly serverNode: string;
  readonly log: Logger;
  readonly clock: Clock;
  readonly onProgress: (p: CopyProgress) => void;
  /**
   * The TID the copy brings this node to, once known, and the first record of the server's KML after this
   * node's last_rcvd when the server says (the snapshot's or copy stream's `next`; an older server does not):
   * where the lag counts from until the copy is in, for a first copy and a resync alike.
   */
  readonly onServerTid?: (tid: Tid, next: { tid: Tid; time: number } | null) => void;
  /** Objects whose pending records the server kept refusing (a resync): rebased on the snapshot, see protectLocal. */
  readonly stuck?: ReadonlySet<Fid>;
  /**
   * A mirror's copy (mirror/mirror-stream.ts): an entry whose content did not come (changed or gone on the master
   * since its TID, not journaled there yet) is placed as an empty stand-in instead of left out, and every entry
   * placed with other content than its row's (newer, or the stand-in) is told here, with the row's hash (what the
   * master's digest counts for it): a later record of the object brings its own. Absent (a client): such an entry
   * is left out, as before.
   */
  readonly behind?: (fid: Fid, hash: string | null) => void;
}

export interface CopyResult {
  tid: string;
  files: number;
  bytes: number;
  skipped: number;
  keptAside: string[];
  /** Where the time went: the snapshot request (or the copy stream's hello), placing the files, making them durable. */
  ms: { snapshot: number; place: number; flush: number };
}
