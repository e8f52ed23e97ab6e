import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '#core/clock.js';
import { formatDigest } from '#core/digest.js';
import { IntersyncError } from '#core/errors.js';
import { META_DIR } from '#core/format.js';
import { formatTid, parseTid, type Tid } from '#core/ids.js';
import type { FilesetDb } from '#journal/fileset-db.js';
import { checkBackingDir, type FilesetPaths } from '#journal/layout.js';
import { mkfs, type MkfsResult } from '#journal/mkfs.js';
import { writeFileAtomic } from '#journal/state-dir.js';

/*
 * A fileset's part in mirroring (HAMMER's PFS roles): a `slave` is made empty by pfs-slave, bound to a master's
 * shared uuid, and written only by mirror-stream; every other fileset is a master (its own server: `server`, or a
 * `client` of one). What the slave keeps in meta: `role` = slave, `mirror_master` (the master's node id, set at the
 * first mirror), `mirror_source` (where the last mirror read it from); its synchronized TID is its last_rcvd of
 * the master, once its first copy is done (`copy_done`), and `DIR/.intermezzo/<fs>/synced` names it too.
 */

export type PfsRole = 'master' | 'slave' | 'server' | 'client';

export const SLAVE = 'slave';

/** The role of a fileset: a slave, a client, else a server (`master` is what a server or client is to a mirror). */
export function roleOf(db: FilesetDb): Exclude<PfsRole, 'master'> {
  const r = db.getMeta('role');
  return r === SLAVE ? 'slave' : r === 'client' ? 'client' : 'server';
}

/** The file naming a slave's last fully synchronized TID. */
export function syncedFile(paths: FilesetPaths): string {
  return join(paths.meta, 'synced');
}

/** Write the synchronized TID, atomically (a temp file renamed over it), once its records are applied and flushed. */
export function writeSynced(paths: FilesetPaths, tid: Tid): void {
  writeFileAtomic(syncedFile(paths), `${formatTid(tid)}\n`, 0o644);
}

/** The synchronized TID the file names, or null (none yet, or unreadable). */
export function readSynced(paths: FilesetPaths): Tid | null {
  try {
    return parseTid(readFileSync(syncedFile(paths), 'utf8').trim()) ?? null;
  } catch {
    return null;
  }
}

/** A slave's synchronized TID as its journal holds it: its last_rcvd of the master once the first copy is done. */
export function syncedTid(db: FilesetDb): Tid | null {
  const master = db.getMeta('mirror_master');
  if (master === undefined || db.getMeta('copy_done') === undefined) return null;
  return db.lastRcvdOf(master);
}

/** `uuid=...` or `shared-uuid=...` as HAMMER writes it, or a bare uuid. */
export function parseSharedUuid(arg: string): string {
  const m = /^(?:shared-uuid=|uuid=)?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i.exec(arg.trim());
  if (m === null) {
    throw IntersyncError.BAD_ARGUMENT(`${JSON.stringify(arg)} is not a shared-uuid`,
      'write shared-uuid=UUID with the master\'s uuid, as intersync pfs-status MASTER prints it');
  }
  return m[1]!.toLowerCase();
}

/**
 * Make `dir` an empty, read-only slave fileset bound to `uuid` (pfs-slave): its journal, with role slave and the
 * master's set-id bits kept (a slave holds the master's state as it is, else its digest could not equal the
 * master's). Refuses a directory that holds anything but its metadata folder: a slave starts empty.
 */
export function makeSlave(dir: string, o: { fileset: string; uuid: string; clock: Clock }): MkfsResult {
  const abs = checkBackingDir(dir);
  if (readdirSync(abs).some((n) => n !== META_DIR)) throw IntersyncError.NOT_EMPTY(abs);
  return mkfs(abs, { fileset: o.fileset, force: false, clock: o.clock, uuid: o.uuid, settings: { role: SLAVE, 'preserve-setid': 'true' } });
}

/** What pfs-status says of a fileset. */
export interface PfsStatus {
  readonly dir: string;
  readonly fileset: string;
  readonly sharedUuid: string;
  readonly role: Exclude<PfsRole, 'master'>;
  /** What it is to a mirror: a slave, or a master (any other fileset can be mirrored from). */
  readonly mirrorRole: 'master' | 'slave';
  readonly nodeId: string;
  readonly lastTid: string;
  readonly digest: string;
  readonly objects: number;
  readonly history: 'off';
  /** A slave: its synchronized TID (null before its first copy is in), the file that names it, its master. */
  readonly slave: {
    readonly syncedTid: string | null; readonly syncedFile: string | null; readonly master: string | null; readonly source: string | null;
    /** The last changes made by hand in the slave that a mirror found (and undid, unless `undone` is false). */
    readonly handChanges: ReadonlyArray<{ readonly time: number; readonly path: string; readonly what: string; readonly undone: boolean }>;
  } | null;
}

export function pfsStatus(paths: FilesetPaths, db: FilesetDb): PfsStatus {
  const role = roleOf(db);
  const synced = role === 'slave' ? syncedTid(db) : null;
  const fileTid = role === 'slave' ? readSynced(paths) : null;
  return {
    dir: paths.dir, fileset: paths.name, sharedUuid: db.meta.uuid, role, mirrorRole: role === 'slave' ? 'slave' : 'master', nodeId: db.meta.nodeId,
    lastTid: formatTid(db.lastTid), digest: formatDigest(db.digest), objects: db.objectCount(),
    history: 'off',
    slave: role !== 'slave' ? null : {
      syncedTid: synced === null ? null : formatTid(synced), syncedFile: fileTid === null ? null : formatTid(fileTid),
      master: db.getMeta('mirror_master') ?? null, source: db.getMeta('mirror_source') ?? null,
      handChanges: JSON.parse(db.getMeta('mirror_hand_changes') ?? '[]') as Array<{ time: number; path: string; what: string; undone: boolean }>,
    },
  };
}

/**
 * pfs-upgrade: a slave becomes a master (fail-over), as HAMMER's, only once it holds a fully synchronized TID (its
 * first copy done, no differing digest met) and no mirror writes it. Its journal keeps the master's TIDs, so the
 * old master's clients resume against it; its KML starts after the first copy's TID (`kml_first`), so a node that
 * is further behind is told to resync instead of missing the records before.
 */
export function upgradeSlave(paths: FilesetPaths, db: FilesetDb, mirrorRunning: number | undefined): { syncedTid: Tid } {
  const role = roleOf(db);
  if (role !== 'slave') throw IntersyncError.NOT_A_SLAVE(paths.dir, role);
  if (mirrorRunning !== undefined) throw IntersyncError.DAEMON_RUNNING(paths.dir, mirrorRunning);
  const diverged = db.getMeta('mirror_diverged');
  if (diverged !== undefined) throw IntersyncError.IS_A_SLAVE(paths.dir, `its state differed from its master's, it cannot become one (${diverged})`);
  const synced = syncedTid(db);
  const copied = parseTid(db.getMeta('copy_done') ?? '');
  if (synced === null || copied === undefined) throw IntersyncError.IS_A_SLAVE(paths.dir, 'it holds no fully synchronized TID yet (its first copy is not done): run mirror-stream --once into it first');
  const first = copied + 1n;
  if (db.firstKeptTid < first) db.setMeta('kml_first', first.toString());
  db.setMeta('role', 'server');
  db.setMeta('upgraded_at', formatTid(synced));
  return { syncedTid: synced };
}
