import type { IntersyncError } from '#core/errors.js';
import type { Transfer } from '#core/transfers.js';
import type { Waiting } from '#journal/in-flight.js';
import type { RateLimit } from '#net/rate-limit.js';
import type { AttrSetting } from '#policy/attr-policy.js';
import type { CopyObserver } from '#copy/copy.js';
import type { AdoptSummary } from './adopt-plan.js';
import type { ClientTrust } from './enrolment.js';
import type { NodeOptions } from './node-options.js';

/*
 * The types at ClientNode's edge (client-node.ts re-exports them): what it is started with, and what its
 * status says.
 */

export interface ClientNodeOptions extends NodeOptions {
  readonly dir: string;
  readonly server: string;
  /** How to enrol when no credential is kept yet (fileset secret or invitation), and the pinned certificate. */
  readonly trust: ClientTrust;
  /** The fileset uuid the join token names: the server must serve that one. */
  readonly uuid?: string;
  /** Where this node's credential and pin live, outside the served tree. */
  readonly stateDir: string;
  readonly ca?: string;
  readonly replicate: boolean;
  /** Shown a copy's progress (the first copy, and each resync's). */
  readonly copyObserver?: CopyObserver;
  /**
   * A failure the node cannot get past by waiting (its credential is gone): the follow loop has stopped,
   * and whoever runs the node stops it and exits. Without it the node only logs the failure.
   */
  readonly onFatal?: (err: IntersyncError) => void;
  /** This client's own attribute settings, stored at start (`intersync config` changes them later). */
  readonly settings?: Readonly<Partial<Record<AttrSetting, boolean>>>;
  /**
   * Before its first copy the node cannot run without the server: it waits for it, retrying with backoff,
   * told through `onWaiting`, and gives up after this many ms (undefined: it waits as long as it takes).
   */
  readonly connectTimeoutMs?: number;
  readonly onWaiting?: (err: IntersyncError, waitMs: number) => void;
  /** The node's bandwidth limit (`--bwlimit`): every content transfer to and from the server takes from it. */
  readonly bwlimit?: RateLimit | null;
  /** The conflict policy given at this start (flag or file), for an adoption before it is stored. */
  readonly conflictPolicy?: string;
  /** Told what an adoption (a first start in a populated directory) decided. */
  readonly onAdopted?: (s: AdoptSummary) => void;
}

export interface ClientStatus {
  readonly connected: boolean;
  /** Disconnected on purpose (intersync disconnect). */
  readonly offline: boolean;
  /** Wall-clock ms since when the server has been unreachable (or offline), null while connected. */
  readonly disconnectedSince: number | null;
  readonly server: string;
  readonly serverNode: string | null;
  readonly serverTid: string | null;
  readonly lastRcvd: string;
  /** Records of the server's KML after this node's last_rcvd, as far as it knows (null: not known yet). */
  readonly lagRecords: number | null;
  /**
   * When the oldest of them was journaled (epoch ms; null when none, or not known yet): the server's
   * status shows the same for this node (journal/in-flight.ts has the one definition).
   */
  readonly lagSince: number | null;
  /** Seconds since then (0 when caught up; null when records are missing whose time is not known yet). */
  readonly lagSeconds: number | null;
  /**
   * What the server still has for this node: records, and the files with new content and their bytes as
   * the server counted them when the stream opened (or the copy's totals), less what was applied since.
   */
  readonly waitingDown: Waiting;
  /** Large files moving now, with their progress (small ones travel inline with their record). */
  readonly transfers: readonly Transfer[];
  /** Bytes read and written on this node's connections to the server since start. */
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** The bandwidth limit in bytes per second (null: none). */
  readonly bwlimit: number | null;
  readonly stale: number;
  readonly conflicts: number;
  readonly copy: { readonly done: boolean; readonly files: number; readonly totalFiles: number; readonly bytes: number; readonly totalBytes: number } | null;
  readonly lastError: string | null;
  /** Full resyncs from a snapshot of the server, over the fileset's life here (kept in meta). */
  readonly resyncs: number;
  /**
   * Wall-clock ms since when this client has been unable to progress: a server record that does not apply
   * here, or local changes the server refuses on every try. Null while it progresses.
   */
  readonly stuckSince: number | null;
}
