import type { Logger } from 'pino';
import type { Metrics } from '#core/metrics.js';
import type { FilesetDb } from '#journal/fileset-db.js';
import type { EchoGuard } from '#fsio/echo-guard.js';
import type { BlockMapCache } from '#fsio/blocks.js';
import type { AttrPolicy } from '#policy/attr-policy.js';
import type { VersionStore } from './versions.js';

/** What the apply path works with: the backing directory, the fileset's temp folder, its journal and echo guard. */
export interface ApplyDeps {
  readonly root: string;
  readonly tmpDir: string;
  readonly db: FilesetDb;
  readonly guard: EchoGuard;
  readonly log: Logger;
  /** Where a record applied is counted (core/metrics.ts); none counted when absent. */
  readonly metrics?: Metrics;
  /** The fileset's attribute policy as this node applies it (read per call: `intersync config` may change it); safe when absent. */
  readonly attrs?: () => AttrPolicy;
  /** Where the content a peer's change replaces or removes is kept (versions.ts); none kept when absent. */
  readonly versions?: VersionStore;
  /**
   * A peer removes the directory `rel`, and it is not empty here: true when what it holds is only names this
   * node ignores (`presto/ignore-rules.ts`). It then stays on disk with them, the removal is journaled, and
   * capture journals the directory again as new (as Syncthing and rsync, nothing ignored is deleted).
   */
  readonly keepsIgnored?: (rel: string) => boolean;
}

/**
 * What the parts of the apply path (staging.ts, disk-change.ts) share: its dependencies and its one cache of
 * block maps (ApplyPath#blockMaps), which staging fills and the change of the disk vouches for once in place.
 */
export interface ApplyState {
  readonly deps: ApplyDeps;
  readonly blockMaps: BlockMapCache;
}
