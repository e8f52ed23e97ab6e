import type { HashMany, StatMany } from '#fsio/disk.js';
import type { IgnoreStatus } from './ignore-rules.js';

/**
 * Presto: what turns the changes programs make to a fileset's backing directory into journal records. The
 * daemons hold a Capture, whatever its kind: `watch` (a plain directory, one inotify watch per directory:
 * WatchCapture), and `fuse` (a filter mount that sees every VFS operation: FuseCapture, run beside a
 * WatchCapture on the same directory and journaling through its NameJournal).
 */
export interface Capture {
  readonly kind: CaptureStatus['kind'];
  /** Journal what changed while the daemon was down (the start-up scan), then follow changes as they come. */
  start(statMany?: StatMany, hashMany?: () => HashMany | null): Promise<void>;
  stop(): Promise<void>;
  /** Journal now whatever changed at these names (relative paths) and has not been journaled yet. */
  syncPaths(paths: readonly string[]): Promise<void>;
  /** Look at the whole tree again for what was missed (a full rescan, on its own schedule). */
  rescan(): void;
  /** The ignore patterns changed: names they no longer ignore are journaled, those they now ignore are not. */
  ignoreChanged(): void;
  /** Resolves once nothing is pending: every change seen so far is journaled. */
  idle(): Promise<void>;
  status(): CaptureStatus;
}

/** A capture that journals the names it is told, from those names alone (the filter mount tells the watch capture). */
export interface NameJournal {
  journalNames(paths: readonly string[]): Promise<void>;
}

export function journalsNames(c: Capture): c is Capture & NameJournal {
  return typeof (c as Partial<NameJournal>).journalNames === 'function';
}

export interface WatchLimitStatus {
  readonly since: number;
  readonly limit: number | null;
  readonly unwatchedDirs: number;
  readonly hint: string;
}

export interface CaptureStatus {
  readonly kind: 'watch' | 'fuse';
  readonly state: 'starting' | 'watching' | 'stopped';
  readonly watchedDirs: number;
  readonly pending: number;
  readonly records: number;
  readonly lastScan: { readonly entries: number; readonly dirty: number; readonly durMs: number } | null;
  readonly watchLimit: WatchLimitStatus | null;
  readonly lastError: string | null;
  /** Ignore patterns in force and the ignored names met (null: capture was given no IgnoreRules). */
  readonly ignored: IgnoreStatus | null;
  /** While the daemon starts: the start-up scan (entries met so far) or the journaling it found to do; null after. */
  readonly progress: StartProgress | null;
}

/**
 * A start's progress: `scanning` (done: entries met by the start-up scan), then `journaling` (done: records made,
 * about: how many in all, an estimate that grows as a first journaling meets directories; null: not known yet).
 */
export interface StartProgress {
  readonly phase: 'scanning' | 'journaling';
  readonly done: number;
  readonly about: number | null;
}
