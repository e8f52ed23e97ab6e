import { copyFileSync, linkSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { NO_VERSION, type Fid } from '#core/ids.js';
import type { KmlRecord } from '#core/record.js';
import type { FilesetDb, ObjectRow } from '#journal/fileset-db.js';
import { identityOf, lstatOrNull, nowNs, type DiskStat } from '#fsio/disk.js';
import type { EchoGuard } from '#fsio/echo-guard.js';
import { namesAsJournaled, renewNames } from './other-names.js';

export interface LinkAlignDeps {
  readonly db: FilesetDb;
  readonly root: string;
  readonly guard: EchoGuard;
  /** A fresh temp path on the fileset's file system (the apply path's temp folder). */
  readonly tmpName: () => string;
}

/**
 * A name of the inode `ino` here, other than `fid`, that is a file on disk as that inode now (rows may lag the
 * disk), and that `keep` accepts. `removedLink` finds one for a name removed here (FilesetDb#removedLinkIno).
 */
export function linkOnDisk(db: FilesetDb, root: string, ino: string, fid: Fid, keep: (x: ObjectRow) => boolean = () => true): ObjectRow | undefined {
  return db.objectsByIno(ino).find((x) => x.fid !== fid && x.type === 'file' && keep(x) && lstatOrNull(join(root, x.path))?.ino === ino);
}

/** Another name, here on disk, of the inode that a hard-linked name removed here had (its removal pending). */
export function removedLink(db: FilesetDb, root: string, fid: Fid): ObjectRow | undefined {
  const ino = db.removedLinkIno(fid);
  return ino === null ? undefined : linkOnDisk(db, root, ino, fid);
}

/**
 * A server's change of a hard-linked file's content or attributes names every name of the inode there
 * (KmlRecord.links). Where this node groups those names otherwise (an earlier conflict step or resync left
 * a name a file of its own, or on an inode the server holds apart), the names are grouped as the server's
 * before the change goes into the inode. Before, the change went into the names grouped as here: one name
 * took content the server gave another (a write pending there was written over), a later change of the
 * other name did not apply, and the trees differed for good (the digest does not see link groups).
 *
 * In two steps around the conflict step. `splitApart`, before it: names on the inode here that the server
 * holds apart leave it, each with the content it has (pending changes too: they are that name's), except
 * one made here and not accepted yet (the server does not know it). A leaving name with no pending change
 * of its content is named in `fetch`: what the inode holds here may be a write made through another name
 * (that name's change, not this one's), so the caller fetches the server's content of it once the record
 * is applied. Before, it kept that write, nothing pending, and differed from the server's for good (a
 * resync, "state differs": chaos seeds 9204 and 9205). `joinLinks`, after it: the server's
 * names that are files of their own here join the inode, except one with changes still pending (the
 * conflict step has taken those it meets). Each returns the names it moved, for the log.
 */
export function splitApart(d: LinkAlignDeps, r: KmlRecord): { left: string[]; fetch: Fid[] } {
  const out: string[] = [];
  const fetch: Fid[] = [];
  const at = inodeOf(d, r);
  if (at === null) return { left: out, fetch };
  const { o, st } = at;
  const db = d.db;
  const want = new Set<Fid>(r.links ?? []); // [] : the file has one name there
  const apart = namesApart(db, r, o, db.objectsByIno(st.ino).filter((x) => x.fid !== o.fid && x.type === 'file' && !want.has(x.fid) && x.version !== NO_VERSION));
  for (const x of apart) {
    const xAbs = join(d.root, x.path);
    const xs = lstatOrNull(xAbs);
    if (xs?.ino !== st.ino || !journaledAsIs(x, xs)) continue;
    const now = replaceName(d, x.path, (tmp) => copyFileSync(xAbs, tmp));
    if (now !== null) db.setIdentity(x.fid, identityOf(now, nowNs()));
    out.push(x.path);
    if (!db.localRecordsOf(x.fid).some((y) => y.kind === 'write' || y.kind === 'truncate')) fetch.push(x.fid);
  }
  if (out.length > 0) seenAgain(d, o.path);
  return { left: out, fetch };
}

/**
 * Of the names on the record's inode here that its `links` leave out, those the server holds apart. `links` say
 * how the server grouped the names at the record's TID; a name whose version is newer (this node's own link,
 * accepted from the server's answer before the stream brought an older record of this node back) was grouped
 * after it: it leaves only with the name its link joined. Otherwise a link made here after an own write, to a
 * name that stays, left the inode when the write came back: a, e and f one file on the server, f apart here
 * (`test/long/link-versions.test.ts`, test 2). Only chance had kept it there before: its row looked written since
 * journaled (the conflict step's move of another name of the inode), and the split skips such a name.
 */
function namesApart(db: FilesetDb, r: KmlRecord, o: ObjectRow, candidates: readonly ObjectRow[]): ObjectRow[] {
  const out = candidates.filter((x) => x.version <= r.tid);
  const leaving = new Set<Fid>(out.map((x) => x.fid));
  let later = candidates.filter((x) => x.version > r.tid);
  for (let grew = true; grew;) {
    grew = false;
    for (const x of later) {
      const link = db.kmlAt(x.version);
      const target = link?.kind === 'link' && link.fid === x.fid ? link.targetFid ?? null : null;
      if (target === null || target === o.fid || !leaving.has(target)) continue;
      out.push(x);
      leaving.add(x.fid);
      grew = true;
    }
    later = later.filter((x) => !leaving.has(x.fid));
  }
  return out;
}

/** Pending record kinds that change what a name holds (its inode's content or attributes), or make it. */
const CONTENT = new Set<string>(['create', 'link', 'write', 'truncate', 'setattr']);

export function joinLinks(d: LinkAlignDeps, r: KmlRecord): string[] {
  const out: string[] = [];
  const at = inodeOf(d, r);
  if (at === null) return out;
  const { o, st } = at;
  const db = d.db;
  const abs = join(d.root, o.path);
  // A name with a pending change of what it holds keeps it (the conflict step has taken those it meets); a
  // pending move or removal of the name does not touch the inode, and the name joins. Before, a pending move
  // kept it apart for good: nothing later groups names again (chaos s40 seed 9265;
  // test/long/link-join-renamed.test.ts).
  const settled = (fid: Fid): boolean => !db.localRecordsOf(fid).some((y) => CONTENT.has(y.kind));
  // The server's names of the inode that are files of their own here: they become names of this inode.
  for (const fid of r.links ?? []) {
    if (fid === o.fid || !settled(fid)) continue;
    const x = db.objectByFid(fid);
    if (x?.type !== 'file' || x.version === NO_VERSION) continue;
    const xAbs = join(d.root, x.path);
    const xs = lstatOrNull(xAbs);
    if (xs?.type !== 'file' || xs.ino === st.ino || !journaledAsIs(x, xs)) continue;
    const now = replaceName(d, x.path, (tmp) => linkSync(abs, tmp));
    if (now !== null) db.joinInode(x.fid, o, identityOf(now, nowNs()));
    out.push(x.path);
  }
  if (out.length > 0) seenAgain(d, o.path);
  return out;
}

/**
 * Make a file at a temp name (`make`), then rename it over `path`, held from capture; its stat after. The inode
 * the name leaves keeps its other names as journaled: before, joining one of two names the server links to a
 * file left the other looking written here since journaled, the apply path refused the server's change for it
 * until the client resynced (chaos seeds 9205, 9209, 9215, 9217).
 */
function replaceName(d: LinkAlignDeps, path: string, make: (tmp: string) => void): DiskStat | null {
  const tmp = d.tmpName();
  const abs = join(d.root, path);
  const was = lstatOrNull(abs);
  const others = was?.type === 'file' && was.nlink > 1 ? namesAsJournaled(d.db, d.root, was.ino, d.db.objectByPath(path)?.fid ?? null) : [];
  d.guard.hold(path);
  try {
    make(tmp);
    renameSync(tmp, abs);
  } finally {
    rmSync(tmp, { force: true });
    d.guard.release(path);
  }
  renewNames(d.db, d.root, others);
  return lstatOrNull(abs);
}

/** The record's file here, as journaled (changed here and not journaled yet: the apply path refuses the change for now). */
function inodeOf(d: LinkAlignDeps, r: KmlRecord): { o: ObjectRow; st: DiskStat } | null {
  if (r.links === undefined || r.links === null || (r.kind !== 'write' && r.kind !== 'truncate' && r.kind !== 'setattr')) return null;
  const o = d.db.objectByFid(r.fid);
  if (o?.type !== 'file') return null;
  const st = lstatOrNull(join(d.root, o.path));
  return st?.type === 'file' && journaledAsIs(o, st) ? { o, st } : null;
}

/** A link made or undone moved the inode's change time: every name of it is seen as it is now. */
function seenAgain(d: LinkAlignDeps, path: string): void {
  const now = lstatOrNull(join(d.root, path));
  if (now !== null) for (const x of d.db.objectsByIno(now.ino)) d.db.setIdentity(x.fid, identityOf(now, nowNs()));
}

/** The row's stat identity is the disk's: nothing was written there that capture has not journaled. */
function journaledAsIs(row: ObjectRow, st: DiskStat): boolean {
  return row.ino === st.ino && row.mtimeNs === st.mtimeNs && row.ctimeNs === st.ctimeNs;
}
