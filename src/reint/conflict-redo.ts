import { chmodSync, copyFileSync, existsSync, mkdirSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { NO_VERSION, formatTid, parseTid } from '#core/ids.js';
import { baseName, isUnder, joinRel, parentOf } from '#core/paths.js';
import { hashFileSync, lstatOrNull, moveNoReplace } from '#fsio/disk.js';
import { conflictPath } from './conflict-disk.js';
import type { ResolverState } from './conflict-state.js';

// Saved content and the redo steps: the local content the conflict step keeps before anything moves (in the
// conflicts folder, with an in-flight note), and the local intent redone once the server's record applied,
// put back in the tree, or beside its name when it cannot go back (rescue, recover). Every name they change
// goes in ResolverState.redone for capture to journal at once (ConflictResolver#takeRedone).

/** Keep a copy of a file in the conflicts folder (never replicated); returns its path. */
export function keepFile(s: ResolverState, relNow: string, name: string, tid: bigint): string {
  mkdirSync(s.d.conflictsDir, { recursive: true, mode: 0o700 });
  const to = join(s.d.conflictsDir, `${formatTid(tid).slice(2)}-${Date.now().toString(36)}-${baseName(name)}`);
  copyFileSync(join(s.d.root, relNow), to);
  return to;
}

/** Note in the journal that `saved` holds the local content of `name` until it is placed again. */
export function save(s: ResolverState, saved: string, name: string, tid: bigint): void {
  const note = s.d.db.markInflight(JSON.stringify({ via: 'conflict', saved, name, tid: formatTid(tid) }));
  s.unplaced.set(saved, { name, tid, note });
}

/** A saved content is where it belongs now (in the tree again, or in the conflicts folder by the policy). */
export function settle(s: ResolverState, saved: string): void {
  const u = s.unplaced.get(saved);
  if (u === undefined) return;
  if (u.note !== null) s.d.db.clearInflight(u.note);
  s.unplaced.delete(saved);
}

/** Remove `path` (a redo step). */
export function remove(s: ResolverState, path: string): void {
  s.redone.add(path);
  const abs = join(s.d.root, path);
  if (existsSync(abs)) rmSync(abs, { recursive: true, force: true });
}

// Redo steps change the tree without the echo guard: capture journals them as local changes.
export function unguardedRename(s: ResolverState, from: string, to: string): void {
  const a = join(s.d.root, from);
  const b = join(s.d.root, to);
  s.redone.add(from).add(to);
  if (existsSync(a) && !existsSync(b) && !isUnder(to, from) && !moveNoReplace(a, b)) s.d.log.warn({ path: from, to }, 'a local change not redone: a program made its name meanwhile');
}

/** Give `path` the local `mode` again (a redo step). */
export function chmod(s: ResolverState, path: string, mode: number): void {
  s.redone.add(path);
  const abs = join(s.d.root, path);
  if (existsSync(abs)) chmodSync(abs, mode);
}

/** Content back at `path`; a file there keeps its mode (copyFile would give it the saved copy's, undoing a remote chmod). */
export function putBack(s: ResolverState, saved: string, path: string): void {
  const abs = join(s.d.root, path);
  if (!existsSync(join(abs, '..'))) {
    // Its directory went with the server's change: beside it in the nearest one that is left, never dropped.
    placeBeside(s, saved, path, s.unplaced.get(saved)?.tid ?? 0n);
    return;
  }
  const there = lstatOrNull(abs);
  // A local write landed at the name after this step saved its content (while the server's record applied,
  // before this redo): it is the newer, and stays; the saved content goes beside it. Known by what the name
  // holds: neither the saved content nor what the journal says the record left there. Before, the saved
  // (older) content was copied over it, and capture journaled that: the write was on no node (chaos s66
  // seed 9303, c1; test/conflict-redo-window.test.ts).
  if (there?.type === 'file' && writtenSince(s, abs, there.size, saved, path)) {
    placeBeside(s, saved, path, s.unplaced.get(saved)?.tid ?? 0n);
    return;
  }
  s.redone.add(path);
  copyFileSync(saved, abs);
  if (there?.type === 'file') chmodSync(abs, there.mode);
  unlinkSync(saved);
  settle(s, saved);
}

/** True when the file at `abs` (of `size`) holds neither the content saved at `saved` nor what the journal has at `path`. */
function writtenSince(s: ResolverState, abs: string, size: number, saved: string, path: string): boolean {
  const row = s.d.db.objectByPath(path);
  const now = hashFileSync(abs);
  if (now === null) return false; // gone a moment ago: nothing there to keep
  if (size === statSync(saved).size && now === hashFileSync(saved)) return false;
  return !(row?.type === 'file' && row.hash !== null && size === row.size && now === row.hash);
}

/**
 * At start, an in-flight note of a local content the conflict step saved and had not put back when the process
 * died (between dropping the pending records and redoing them once the server's record applied): it comes back
 * into the tree beside its name, as a local file capture journals. Not when its name holds that very content
 * and the journal does not say so (capture journals it there). Returns false when the note is not one of these.
 * Before, the content stayed in the conflicts folder only: c1 killed 100 ms after its conflict step for the
 * server's move of a file written here off line, and the write was on no node (chaos s45 seed 9291).
 */
export function recover(s: ResolverState, intent: unknown): boolean {
  const n = intent as { via?: unknown; saved?: unknown; name?: unknown; tid?: unknown };
  if (n.via !== 'conflict' || typeof n.saved !== 'string' || typeof n.name !== 'string' || typeof n.tid !== 'string') return false;
  if (!n.saved.startsWith(`${s.d.conflictsDir}/`) || !existsSync(n.saved)) return true;
  const hash = hashFileSync(n.saved);
  const here = lstatOrNull(join(s.d.root, n.name));
  if (here?.type === 'file' && hash !== null && hashFileSync(join(s.d.root, n.name)) === hash && s.d.db.objectByPath(n.name)?.hash !== hash) {
    unlinkSync(n.saved);
    return true;
  }
  const tid = parseTid(n.tid) ?? NO_VERSION;
  s.unplaced.set(n.saved, { name: n.name, tid, note: null });
  placeBeside(s, n.saved, n.name, tid);
  return true;
}

/**
 * The server's record did not apply after its conflict step: the local contents that step saved (to put
 * them back once the record applied) come back into the tree now, beside their names, as local changes.
 * Without this they stayed in the conflicts folder only, and the next try found nothing pending to keep.
 */
export function rescue(s: ResolverState): void {
  for (const [saved, { name, tid }] of [...s.unplaced]) {
    if (!existsSync(saved)) {
      settle(s, saved);
      continue;
    }
    placeBeside(s, saved, name, tid);
  }
}

function placeBeside(s: ResolverState, saved: string, name: string, tid: bigint): void {
  let dir = parentOf(name);
  while (dir !== '' && lstatOrNull(join(s.d.root, dir))?.type !== 'dir') dir = parentOf(dir);
  const to = conflictPath(s, joinRel(dir, baseName(name)), tid);
  s.redone.add(to);
  copyFileSync(saved, join(s.d.root, to));
  unlinkSync(saved);
  settle(s, saved);
  s.d.log.warn({ path: name, keptAs: to }, 'conflict: the local version is kept beside (its record did not apply as planned)');
}
