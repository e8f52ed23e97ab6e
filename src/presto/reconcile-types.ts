import type { Logger } from 'pino';
import type { Clock } from '#core/clock.js';
import type { NodeId } from '#core/ids.js';
import type { BlockMapCache } from '#fsio/blocks.js';
import type { Change, FilesetDb } from '#journal/fileset-db.js';
import type { EchoGuard } from '#fsio/echo-guard.js';
import type { IgnoreRules } from './ignore-rules.js';

// What a Reconciler is given and what it returns; reconciler.ts re-exports them all, its parts import them here.

/** A hint that something may have changed: a path, or an entry of a directory known by its inode. */
export type DirtyItem = { readonly path: string } | { readonly dirIno: string; readonly name: string | null };

/** The part of the watcher the reconciler drives: new and moved directories get a watch, removed ones lose it. */
export interface WatchSink {
  watch(ino: string, absPath: string): boolean;
  unwatch(ino: string): void;
  isWatched(ino: string): boolean;
}

export interface ReconcilerDeps {
  readonly db: FilesetDb;
  readonly root: string;
  readonly rootIno: string;
  readonly nodeId: NodeId;
  readonly clock: Clock;
  readonly log: Logger;
  readonly guard: EchoGuard;
  readonly watcher: WatchSink | null;
  /** Journal the changes (a server gives them TIDs, a client puts them in its LML); returns how many. */
  readonly journal: (changes: Change[]) => number;
  /** Large files are read for their block map, kept here, rather than for their hash alone. */
  readonly blockMaps?: BlockMapCache;
  /** Names matched here are never journaled: not made, changed nor removed (see ignore-rules.ts). */
  readonly ignore?: IgnoreRules;
}

export interface BatchResult {
  readonly records: number;
  /** Paths to look at again shortly: a file changed while it was being read. */
  readonly retry: string[];
}
