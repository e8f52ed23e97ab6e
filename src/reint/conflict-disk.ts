import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { IntersyncError } from '#core/errors.js';
import type { Tid } from '#core/ids.js';
import { conflictName } from '#core/conflict-name.js';
import { namesAsJournaled, renewNames } from '#apply/other-names.js';
import { lstatOrNull, moveNoReplace } from '#fsio/disk.js';
import type { ResolverState } from './conflict-state.js';

// The conflict step's own changes of the backing directory, held from capture (the echo guard): they are the
// server's side, journaled by the step, never local changes. The redo steps are in conflict-redo.ts.

/** A conflict name for `name`, free in the journal and on disk here. */
export function conflictPath(s: ResolverState, name: string, tid: bigint): string {
  const db = s.d.db;
  return conflictName(name, s.d.node, tid as Tid, (p) => db.objectByPath(p) !== undefined || lstatOrNull(join(s.d.root, p)) !== null);
}

/** Move what is at `from` to `to`, held from capture; a file never over another. */
export function move(s: ResolverState, from: string, to: string): void {
  const st = lstatOrNull(join(s.d.root, from));
  if (st === null) return; // gone meanwhile: nothing to move
  // The move changes a hard-linked file's change time under its other names: they stay as journaled.
  const others = st.type === 'file' && st.nlink > 1 ? namesAsJournaled(s.d.db, s.d.root, st.ino, s.d.db.objectByPath(from)?.fid ?? null) : [];
  s.d.guard.hold(from);
  s.d.guard.hold(to);
  try {
    // A file never over one a program made at `to` a moment ago (see moveNoReplace): the record is tried again.
    if (st.type === 'dir') renameSync(join(s.d.root, from), join(s.d.root, to));
    else if (!moveNoReplace(join(s.d.root, from), join(s.d.root, to))) throw IntersyncError.CONFLICT(to, 'an unjournaled file has this name here');
  } finally {
    s.d.guard.release(from);
    s.d.guard.release(to);
  }
  renewNames(s.d.db, s.d.root, others);
}

/** A directory on disk here (the root is one). */
export function dirOnDisk(s: ResolverState, path: string): boolean {
  return path === '' || lstatOrNull(join(s.d.root, path))?.type === 'dir';
}

/** Make the directory `path`, held from capture. */
export function mkdir(s: ResolverState, path: string, mode: number): void {
  s.d.guard.hold(path);
  try {
    mkdirSync(join(s.d.root, path), { mode });
  } finally {
    s.d.guard.release(path);
  }
}

/** Remove what this step placed at `path`, held from capture. */
export function removeHeld(s: ResolverState, path: string): void {
  s.d.guard.hold(path);
  try {
    rmSync(join(s.d.root, path), { recursive: true, force: true });
  } finally {
    s.d.guard.release(path);
  }
}
