import type { Logger } from 'pino';
import type { Clock } from '#core/clock.js';
import type { DiskFullState } from '#core/disk-full.js';
import type { Fid, Tid } from '#core/ids.js';
import type { Transfers } from '#core/transfers.js';
import type { LmlRecord } from '#core/record.js';
import type { BlockMapCache } from '#fsio/blocks.js';
import type { FilesetDb } from '#journal/fileset-db.js';
import type { PeerClient } from '#net/peer-client.js';
import type { TokenScopeMode } from '#policy/token-table.js';

// What a Reintegrator is given and what it reports; reintegrator.ts re-exports both, its parts import them here.

export interface ReintegratorDeps {
  readonly db: FilesetDb;
  readonly client: PeerClient;
  readonly root: string;
  readonly node: string;
  readonly serverNode: () => string;
  readonly log: Logger;
  readonly clock: Clock;
  readonly debug: number;
  readonly scopeMode: () => TokenScopeMode;
  readonly leaseMs: () => number;
  /** The server takes a batch sent while the one before it is answered (its hello said so): reint-loop.ts sends two at a time. */
  readonly pipeline?: () => boolean;
  /** A local change the server keeps refusing although this node has all the server's records: resync. */
  /** The LML cannot progress: `fid` is the object of the record the server keeps refusing (null: unknown). */
  readonly onStuck: (fid: Fid | null) => void;
  /** A record the server refuses for a name another object has there: the local object goes beside it (true when it did). */
  readonly onNameTaken?: (r: LmlRecord, serverTid: Tid) => boolean;
  /**
   * A pending removal of a file the server refuses as made against an older version of it (`current`: the
   * server's), this node caught up: the conflict step settles it (true when it did, ConflictResolver#restoreRemoved).
   */
  readonly onRemovalOutdated?: (r: LmlRecord, current: Tid) => Promise<boolean>;
  /** Block maps of large files (capture has usually read the file for its record already). */
  readonly blockMaps: BlockMapCache;
  /** Called with the records about to be sent, before they are: what they would destroy on the server can be kept first. */
  readonly beforeSend?: (lml: readonly LmlRecord[]) => Promise<void>;
  /**
   * Runs the exchange of a batch (send, answer, its effect on the LML) apart from the application of the
   * server's records: a conflict step must never rewrite or drop a record that is on its way to the server.
   */
  readonly exclusive?: <T>(fn: () => Promise<T>) => Promise<T>;
  /** This node's disk-full state: a batch that cannot be journaled here for want of space notes it. */
  readonly disk?: DiskFullState;
  /** Where an upload of a large file is listed with its progress while it runs (up). */
  readonly transfers?: Transfers;
}

export interface ReintStatus {
  readonly pending: number;
  readonly sent: number;
  readonly heldTokens: string[];
  readonly waitingForTid: string | null;
  readonly lastError: string | null;
  readonly rejected: number;
  /** LML records the optimiser removed before they were sent. */
  readonly optimisedAway: number;
  /** Every refusal of a local change by the server since start (each try counts). */
  readonly refused: number;
  /** The last refusal, and why. */
  readonly lastRefusal: { readonly seq: string; readonly code: string | null; readonly message: string; readonly at: number } | null;
  /** Wall-clock ms since when every try was refused (null while changes are accepted or none are pending). */
  readonly stuckSince: number | null;
}
