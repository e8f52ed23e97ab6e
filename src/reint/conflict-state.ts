import type { Logger } from 'pino';
import type { Clock } from '#core/clock.js';
import type { KmlRecord } from '#core/record.js';
import type { ApplyPath, ContentSource } from '#apply/apply-path.js';
import type { FilesetDb } from '#journal/fileset-db.js';
import type { PolicyConfig } from '#policy/conflict-policy.js';
import type { EchoGuard } from '#fsio/echo-guard.js';

/** What the conflict step needs of the client node it runs on (ClientNode builds it). */
export interface ResolverDeps {
  readonly db: FilesetDb;
  readonly apply: ApplyPath;
  readonly guard: EchoGuard;
  readonly source: ContentSource;
  readonly root: string;
  readonly conflictsDir: string;
  readonly node: string;
  readonly serverNode: () => string;
  readonly policy: () => PolicyConfig;
  readonly hook: () => string | null;
  readonly log: Logger;
  readonly clock: Clock;
}

/** What to do after the record was applied: the local intent redone as ordinary local changes. */
export type Redo = () => void;

/**
 * What the parts of one ConflictResolver share (conflict-names.ts, conflict-parents.ts, conflict-object.ts, …):
 * the resolver owns it and passes this one object to every part, which reads and changes it in place.
 * `touched`, `sent` and `applied` hold for the record being prepared (ConflictResolver#prepare resets them).
 */
export interface ResolverState {
  readonly d: ResolverDeps;
  /** Conflicts recorded (ConflictResolver#count). */
  count: number;
  /** Names the redo steps changed (see takeRedone). */
  readonly redone: Set<string>;
  /** The step changed something here for the record. */
  touched: boolean;
  /** The record being prepared, in the server's names. */
  sent: KmlRecord | null;
  /** The step journaled the record itself (objectStep, an object placed where the server's move leaves it). */
  applied: boolean;
  /**
   * Local contents saved by the conflict step and not in the tree again yet: saved file -> its name, the TID, and
   * the in-flight note that says so in the journal (a start after a crash puts them back: ConflictResolver#recover).
   */
  readonly unplaced: Map<string, { name: string; tid: bigint; note: number | null }>;
}

/** A resolver's state before its first record. */
export function resolverState(d: ResolverDeps): ResolverState {
  return { d, count: 0, redone: new Set<string>(), touched: false, sent: null, applied: false, unplaced: new Map() };
}
