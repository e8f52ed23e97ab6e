import { copyFileSync, linkSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { NO_VERSION, type Fid } from '#core/ids.js';
import type { KmlRecord } from '#core/record.js';
import type { FilesetDb, ObjectRow } from '#journal/fileset-db.js';
import { identityOf, lstatOrNull, nowNs, type DiskStat } from '#presto/disk.js';
import type { EchoGuard } from '#presto/echo-guard.js';

export interface LinkAlignDeps {
  readonly db: FilesetDb;
  readonly root: string;
  readonly guard: EchoGuard;
  /** A fresh temp path on the fileset's file system (the apply path's temp folder). */
  readonly tmpName: () => string;
}

/**
 * A server's change of a hard-linked file's content or attributes names every name of the inode there
 * (KmlRecord.links). Where this node groups those names otherwise (an earlier conflict step or resync left
 * a name a file of its own, or on an inode the server holds apart), the names are grouped as the server's
 * before the change goes into the inode: the server's names join it, the others leave it with the content
 * they have. A name with changes pending here is left as it is (the conflict step has its changes), and so
 * is one made here and not accepted yet. Returns the names moved, for the log. Before, the change went
 * into the names grouped as here: one name took content the server gave another, a later change of the
 * other name did not apply, and the trees differed for good (the digest does not see link groups).
 */
export function alignLinks(d: LinkAlignDeps, r: KmlRecord): { joined: string[]; left: string[] } {
  const out = { joined: [] as string[], left: [] as string[] };
  if (r.links === undefined || r.links === null || (r.kind !== 'write' && r.kind !== 'truncate' && r.kind !== 'setattr')) return out;
  const db = d.db;
  const o = db.objectByFid(r.fid);
  if (o?.type !== 'file') return out;
  const abs = join(d.root, o.path);
  const st = lstatOrNull(abs);
  // Changed here and not journaled yet: the apply path refuses the change for now, and so does this.
  if (st?.type !== 'file' || !journaledAsIs(o, st)) return out;
  const want = new Set<Fid>(r.links);
  const settled = (fid: Fid): boolean => !db.hasPendingLocal(fid);

  // Names on this inode here that the server holds apart: each keeps its content in an inode of its own.
  for (const x of db.objectsByIno(st.ino)) {
    if (x.fid === o.fid || x.type !== 'file' || want.has(x.fid) || !settled(x.fid)) continue;
    const xAbs = join(d.root, x.path);
    const xs = lstatOrNull(xAbs);
    if (xs?.ino !== st.ino || !journaledAsIs(x, xs)) continue;
    const tmp = d.tmpName();
    d.guard.hold(x.path);
    try {
      copyFileSync(xAbs, tmp);
      renameSync(tmp, xAbs);
    } finally {
      rmSync(tmp, { force: true });
      d.guard.release(x.path);
    }
    const now = lstatOrNull(xAbs);
    if (now !== null) db.setIdentity(x.fid, identityOf(now, nowNs()));
    out.left.push(x.path);
  }

  // The server's names of the inode that are files of their own here: they become names of this inode.
  for (const fid of want) {
    if (fid === o.fid || !settled(fid)) continue;
    const x = db.objectByFid(fid);
    if (x?.type !== 'file' || x.version === NO_VERSION) continue;
    const xAbs = join(d.root, x.path);
    const xs = lstatOrNull(xAbs);
    if (xs?.type !== 'file' || xs.ino === st.ino || !journaledAsIs(x, xs)) continue;
    const tmp = d.tmpName();
    d.guard.hold(x.path);
    try {
      linkSync(abs, tmp);
      renameSync(tmp, xAbs);
    } finally {
      rmSync(tmp, { force: true });
      d.guard.release(x.path);
    }
    const now = lstatOrNull(xAbs);
    if (now !== null) db.joinInode(x.fid, o, identityOf(now, nowNs()));
    out.joined.push(x.path);
  }

  // A link made or undone moved the inode's change time: every name of it is seen as it is now.
  if (out.joined.length > 0 || out.left.length > 0) {
    const now = lstatOrNull(abs);
    if (now !== null) for (const x of db.objectsByIno(now.ino)) db.setIdentity(x.fid, identityOf(now, nowNs()));
  }
  return out;
}

/** The row's stat identity is the disk's: nothing was written there that capture has not journaled. */
function journaledAsIs(row: ObjectRow, st: DiskStat): boolean {
  return row.ino === st.ino && row.mtimeNs === st.mtimeNs && row.ctimeNs === st.ctimeNs;
}
