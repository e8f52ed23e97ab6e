import type { Clock } from '#core/clock.js';
import type { IntersyncError } from '#core/errors.js';
import type { Metrics } from '#core/metrics.js';
import type { VersioningSettings } from '#apply/versions.js';
import type { NodeLogs } from './logger.js';

/** What a server's FilesetNode and a ClientNode are both started with (FilesetNodeOptions, ClientNodeOptions add their own). */
export interface NodeOptions {
  readonly debug: number;
  readonly logDir?: string;
  /** The node's log, made by its runner (cli/run-daemon.ts); absent: fileLogs of logDir and debug. */
  readonly logs?: NodeLogs;
  /** Where the node counts its work (core/metrics.ts: the apply path, the server); absent: nothing counted. */
  readonly metrics?: Metrics;
  readonly settleMs?: number;
  /** How often the whole tree is walked for what capture missed (rescan-interval-s); never when absent or 0. */
  readonly rescanMs?: number;
  /** Keep what peers' records overwrite or delete (apply/versions.ts); none kept when absent. */
  readonly versioning?: VersioningSettings;
  /** Quiet times of subtrees, path -> ms (subtree-settle-ms). */
  readonly subtreeSettleMs?: Readonly<Record<string, number>>;
  /** Ignore patterns of this node (the config's `ignore`), besides the fileset's .intersyncignore. */
  readonly ignore?: readonly string[];
  readonly clock: Clock;
  /** Conditions a person must hear about at once. */
  readonly onWarning?: (err: IntersyncError) => void;
}
