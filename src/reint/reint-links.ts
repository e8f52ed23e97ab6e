import { join } from 'node:path';
import { NO_VERSION, type Fid } from '#core/ids.js';
import type { LmlRecord } from '#core/record.js';
import { linkOnDisk } from '#apply/link-align.js';
import { lstatOrNull } from '#fsio/disk.js';
import type { ObjectRow } from '#journal/fileset-db.js';
import type { ReintegratorDeps } from './reint-types.js';

// Hard links on their way to the server: which name of an inode a pending link joins, or whether it goes as a
// file of its own (its name's content and attributes as they are here now).

type LinkDeps = Pick<ReintegratorDeps, 'db' | 'root'>;

/** True when the name `fid` and the file `t` are both on disk here, as two inodes. */
export function apartHere(d: LinkDeps, fid: Fid, t: ObjectRow): boolean {
  const own = d.db.objectByFid(fid);
  if (own?.type !== 'file') return false;
  const a = lstatOrNull(join(d.root, own.path));
  const b = lstatOrNull(join(d.root, t.path));
  return a?.type === 'file' && b?.type === 'file' && a.ino !== b.ino;
}

/** A pending link sent as a link to `other` (a name of its inode the server knows), or with none as a file of its own. */
export function linkOrOwnFile(d: LinkDeps, r: LmlRecord, other: ObjectRow | undefined): LmlRecord {
  return other === undefined ? asOwnFile(d, r) : { ...r, target: other.path, targetFid: other.fid };
}

/**
 * A pending link sent as a file of its own: a create with the attributes its name has here now, as its content
 * is read now. The link record carries the mode it had when journaled; a change of the inode since, made
 * through another name (a server's chmod applied here, which gives it to every name of the inode and journals
 * nothing of this one), is in the name's row only. Before, the create went with the old mode, the server's
 * entry differed from this node's ("state differs … other mode") and the client resynced (chaos seed 9207:
 * c2 linked delta/g.txt to beta/f.json and replaced beta/f.json off line; the server chmodded, then removed
 * beta/f.json; the conflict step made beta/f.json again as a name of delta/g.txt's inode, which took the chmod).
 */
function asOwnFile(d: LinkDeps, r: LmlRecord): LmlRecord {
  const o = d.db.objectByFid(r.fid);
  const attrs = o?.type === 'file' ? { mode: o.mode, uid: o.uid, gid: o.gid, mtimeMs: o.mtimeMs } : {};
  return { ...r, ...attrs, kind: 'create', target: null };
}

/**
 * A name of the inode `fid` is on here, other than `fid` and `not`, on disk as that inode, that the server knows
 * (accepted) or that the batch being read makes ahead of the record (`ahead`); none: undefined.
 */
export function otherName(d: LinkDeps, fid: Fid, ahead: ReadonlySet<Fid> = new Set(), not: Fid | null = null): ObjectRow | undefined {
  const o = d.db.objectByFid(fid);
  if (o?.type !== 'file') return undefined;
  // The inode its name holds on disk: the row's may lag it (an apply or conflict step that gave the names of
  // an inode a new one). Before, by the row's alone, a link whose row named the old inode found no other name
  // and went as a file of its own while it shared an inode here with a name the server knows: one file here,
  // two on the server, for good (chaos s49 seed 9245, c1: delta/c).
  const ino = lstatOrNull(join(d.root, o.path))?.ino ?? o.ino;
  if (ino === null) return undefined;
  return linkOnDisk(d.db, d.root, ino, fid, (x) => x.fid !== not && (x.version !== NO_VERSION || ahead.has(x.fid)));
}

/**
 * A file removed here since, whose inode lives on under a name a pending link gave it: its content is that
 * name's. Before, it shipped empty (nothing to read at its own name), the server's link took that empty
 * inode, and a resync then replaced the client's content with it: a write lost everywhere (chaos seed 9207:
 * create a, link b to it, rename another file over a, all off line).
 */
export function linkedHere(d: Pick<ReintegratorDeps, 'db'>, r: LmlRecord): ObjectRow | undefined {
  const db = d.db;
  for (const x of db.readLml(r.seq, 10_000_000)) {
    if (x.kind !== 'link' || (x.targetFid ?? null) !== r.fid) continue;
    const o = db.objectByFid(x.fid);
    if (o?.type === 'file') return o;
  }
  return undefined;
}
