import { chmodSync, mkdirSync, renameSync, rmSync, symlinkSync, utimesSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import type { Clock } from '#core/clock.js';
import { NO_VERSION } from '#core/ids.js';
import type { ApplyPath } from '#apply/apply-path.js';
import { appliedIdentity } from '#apply/stat-identity.js';
import { hashFile, lstatOrNull, readTargetOrNull } from '#fsio/disk.js';
import type { FilesetDb, ObjectRow } from '#journal/fileset-db.js';
import type { FilesetPaths } from '#journal/layout.js';
import { startupScan } from '#presto/scan.js';
import type { MirrorMaster } from './master.js';

/*
 * A slave is written by its mirror alone. A change made there by hand (or a byte changed behind its back) is never
 * replicated: it is found by comparing the slave's disk with its journal (the start-up scan's stat comparison, then
 * the content hash of what it names), reported loudly, and undone from the journal: a name the journal does not
 * hold is moved aside into .intermezzo/<fs>/conflicts/, a file whose content or mode differs gets the journaled
 * content back (a local copy by hash, else the master's, through the apply path's staging: checked against the
 * journaled hash) and mode, a name removed is made again. Content the master no longer holds is left for the master's
 * next record of it (reported, not undone).
 */

export type HandChangeKind = 'added' | 'removed' | 'content' | 'mode' | 'type' | 'target';

export interface HandChange {
  readonly path: string;
  readonly what: HandChangeKind;
  readonly undone: boolean;
  readonly note?: string;
}

export interface HandCheckDeps {
  readonly paths: FilesetPaths;
  readonly db: FilesetDb;
  readonly apply: ApplyPath;
  readonly master: MirrorMaster;
  readonly log: Logger;
  readonly clock: Clock;
}

/** Meta key: the last hand changes found (JSON, at most KEEP), for pfs-status. */
export const HAND_CHANGES = 'mirror_hand_changes';
const KEEP = 20;

/** Find and undo hand changes in the slave; returns them (none: an empty list). Run when no record is being applied. */
export async function handCheck(x: HandCheckDeps): Promise<HandChange[]> {
  const root = x.paths.dir;
  const scan = await startupScan(root, x.db, null);
  const out: HandChange[] = [];
  const aside = join(x.paths.conflictsDir, `hand-${new Date(x.clock.now()).toISOString().replace(/[:.]/g, '-')}`);
  const movedAside: string[] = [];
  const moveAside = (path: string): void => {
    const to = join(aside, path);
    mkdirSync(dirname(to), { recursive: true, mode: 0o700 });
    renameSync(join(root, path), to);
    movedAside.push(path);
  };
  // Parents before what is in them: a directory made by hand goes aside whole, one removed is made before its files.
  for (const path of [...new Set(scan.dirty)].sort()) {
    if (movedAside.some((p) => path.startsWith(`${p}/`))) continue;
    const abs = join(root, path);
    const st = lstatOrNull(abs);
    const row = x.db.objectByPath(path);
    if (row === undefined) {
      if (st === null) continue;
      moveAside(path);
      out.push({ path, what: 'added', undone: true, note: `moved to ${join(aside, path)}` });
      continue;
    }
    if (st !== null && st.type !== row.type) {
      moveAside(path);
      out.push(await restore(x, row, 'type'));
      continue;
    }
    if (st === null) {
      out.push(await restore(x, row, 'removed'));
      continue;
    }
    if (row.type === 'dir') {
      if (st.mode !== row.mode) {
        chmodSync(abs, row.mode);
        out.push({ path, what: 'mode', undone: true });
      }
      renew(x, row);
      continue;
    }
    if (row.type === 'symlink') {
      if (readTargetOrNull(abs) !== row.target) {
        rmSync(abs, { force: true });
        out.push(await restore(x, row, 'target'));
      } else {
        renew(x, row);
      }
      continue;
    }
    const hash = await hashFile(abs, st.size);
    if (hash !== row.hash) {
      out.push(await restore(x, row, 'content'));
      continue;
    }
    if (st.mode !== row.mode) {
      chmodSync(abs, row.mode);
      out.push({ path, what: 'mode', undone: true });
    }
    renew(x, row); // the same content (a stat only racy, or touched): its identity is the one on disk now
  }
  if (out.length > 0) {
    for (const c of out) x.log.error({ path: c.path, what: c.what, undone: c.undone, note: c.note }, 'a change made by hand in the slave (never replicated)');
    const kept = JSON.parse(x.db.getMeta(HAND_CHANGES) ?? '[]') as unknown[];
    const now = x.clock.now();
    x.db.setMeta(HAND_CHANGES, JSON.stringify([...kept, ...out.map((c) => ({ ...c, time: now }))].slice(-KEEP)));
    x.apply.flush();
  }
  return out;
}

/** The object's stat identity as it is on disk now (its content and attributes are the journal's). */
function renew(x: HandCheckDeps, row: ObjectRow): void {
  const st = lstatOrNull(join(x.paths.dir, row.path));
  if (st !== null) x.db.setIdentity(row.fid, appliedIdentity(st));
}

/** Put the journaled object back at its name (nothing is there now, or what was there went aside). */
async function restore(x: HandCheckDeps, row: ObjectRow, what: HandChangeKind): Promise<HandChange> {
  const abs = join(x.paths.dir, row.path);
  if (row.type === 'dir') {
    mkdirSync(abs, { mode: row.mode });
    chmodSync(abs, row.mode);
  } else if (row.type === 'symlink') {
    symlinkSync(row.target ?? '', abs);
  } else {
    // The journaled content, staged as a record's would be: a local copy by hash, else the master's blocks, checked.
    const d = { ...row, kind: 'write' as const, newPath: null, preVersion: NO_VERSION, origin: x.db.meta.nodeId, time: x.clock.now() };
    let staged;
    try {
      staged = await x.apply.stage(d, null, x.master);
    } catch (e) {
      return { path: row.path, what, undone: false, note: `content not restored: ${(e as Error).message}` };
    }
    if (staged.hash !== row.hash) {
      rmSync(staged.file, { force: true });
      return { path: row.path, what, undone: false, note: 'the master holds other content now: its next record of this file brings it' };
    }
    chmodSync(staged.file, row.mode);
    utimesSync(staged.file, row.mtimeMs / 1000, row.mtimeMs / 1000);
    renameSync(staged.file, abs);
  }
  renew(x, row);
  return { path: row.path, what, undone: true };
}
