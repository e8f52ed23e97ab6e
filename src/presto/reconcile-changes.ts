import { readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { isInlineSize } from '#core/format.js';
import { NO_VERSION } from '#core/ids.js';
import { depthOf, joinRel } from '#core/paths.js';
import type { RecordDraft, RecordKind } from '#core/record.js';
import type { BlockMapCache } from '#fsio/blocks.js';
import type { Change, ObjectRow } from '#journal/fileset-db.js';
import { RACY_WINDOW_NS, SMALL_FILE, hashFile, identityOf, lstatOrNull, nowNs, readTargetOrNull, sameStat, type DiskStat } from '#fsio/disk.js';
import type { BatchState } from './reconcile-state.js';

// Journaling what a hint finds at a name, once its object is worked out (reconcile-names.ts): a create, a write,
// a link, a setattr or a removal, and the drafts of those records.

/**
 * Journal the object made at `p` (its stat `st`): a directory (watched, then walked), a symlink, a new name of a
 * journaled inode, or a file.
 */
export async function create(s: BatchState, p: string, st: DiskStat): Promise<void> {
  const db = s.d.db;
  const fid = db.newFid();
  const base = { fid, path: p, type: st.type } as const;
  if (st.type === 'dir') {
    s.commit([{ draft: draftOf(s, 'mkdir', { ...base, version: NO_VERSION }, st), identity: identityOf(st, nowNs()) }]);
    // Watch first, then list: whatever is created inside from now on raises an event.
    s.d.watcher?.watch(st.ino, s.abs(p));
    let names: string[];
    try {
      names = readdirSync(s.abs(p));
    } catch {
      return; // removed meanwhile: its own event follows
    }
    for (const name of names) s.add(joinRel(p, name));
    return;
  }
  if (st.type === 'symlink') {
    const target = readTargetOrNull(s.abs(p));
    if (target === null) return;
    s.commit([{ draft: draftOf(s, 'symlink', { ...base, version: NO_VERSION }, st, { target }), identity: identityOf(st, nowNs()) }]);
    return;
  }
  if (st.nlink > 1) {
    const sib = db.objectsByIno(st.ino).find((o) => o.type === 'file' && lstatOrNull(s.abs(o.path))?.ino === st.ino);
    if (sib !== undefined) {
      const draft = draftOf(s, 'link', { ...base, version: NO_VERSION }, st, { target: sib.path, size: sib.size, hash: sib.hash });
      // The new name takes the sibling's recorded identity, so the compare below still sees a content change.
      s.commit([{ draft, identity: sib.ino === null || sib.mtimeNs === null || sib.ctimeNs === null ? null : { ino: sib.ino, mtimeNs: sib.mtimeNs, ctimeNs: sib.ctimeNs, racy: sib.racy } }]);
      const linked = db.objectByPath(p);
      if (linked !== undefined) await compare(s, linked, st, p);
      // The link moved the inode's change time under its other names too, and inotify says nothing of them: each
      // is looked at again (read once, its identity renewed), as after a removal of one name. Before, they looked
      // written here since journaled, and the split of the names the server holds apart, when it accepted a write
      // through one of them, skipped the inode: a name kept a write the server gave another name only ("state
      // differs", a resync; chaos seed 9202, c2).
      for (const x of db.objectsByIno(st.ino)) if (x.fid !== linked?.fid && x.type === 'file') s.retry.push(x.path);
      return;
    }
  }
  const content = await readStable(s, p, st);
  if (content === null) return;
  const draft = draftOf(s, 'create', { ...base, version: NO_VERSION }, content.st, { size: content.st.size, hash: content.hash });
  s.commit([{ draft, identity: identityOf(content.st, content.readAt) }]);
}

/** Compare a journaled object with its stat now and journal the difference, if any. */
export async function compare(s: BatchState, obj: ObjectRow, st: DiskStat, p: string): Promise<void> {
  const db = s.d.db;
  const attrsDiffer = obj.mode !== st.mode || obj.uid !== st.uid || obj.gid !== st.gid;
  if (obj.type === 'dir' && s.d.watcher !== null && !s.d.watcher.isWatched(st.ino)) {
    // A directory the apply path made (or one that lost its watch): watch it, then look at what it holds, and
    // at what the journal holds in it that is gone: an entry removed before the watch raised no event (chaos
    // seed 9209: `rmdir alpha/d/e` just after the apply path made both; e stayed journaled for good).
    if (s.d.watcher.watch(st.ino, s.abs(p))) s.addEntriesOf(p, true);
  }
  if (obj.type !== 'file') {
    if (attrsDiffer) s.commit([{ draft: draftOf(s, 'setattr', obj, st), identity: identityOf(st, nowNs()) }]);
    return;
  }
  const statSame = !obj.racy && obj.size === st.size && obj.mtimeNs === st.mtimeNs && obj.ctimeNs === st.ctimeNs;
  if (statSame && !attrsDiffer) return;
  // Any moved stamp means the file is read, ctime included, as git does: a program can put size and mtime
  // back (`touch -r`, `rsync -a`, `tar x` over the same size), never the change time. A chmod costs a read.
  if (s.settle && st.size === 0 && (obj.size ?? 0) > 0 && nowNs() - st.mtimeNs < RACY_WINDOW_NS) {
    s.retry.push(p); // emptied just now: its new content is probably on its way
    return;
  }
  const content = await readStable(s, p, st);
  if (content === null) return;
  const now = content.st;
  const id = identityOf(now, content.readAt);
  if (content.hash !== obj.hash) {
    const kind: RecordKind = now.size === 0 && (obj.size ?? 0) > 0 ? 'truncate' : 'write';
    s.commit([{ draft: draftOf(s, kind, obj, now, { size: now.size, hash: content.hash }), identity: id }]);
  } else if (attrsDiffer || Math.abs(obj.mtimeMs - now.mtimeMs) >= 1) { // utimes rounds through a double: sub-ms noise
    s.commit([{ draft: draftOf(s, 'setattr', obj, now), identity: id }]);
  } else {
    db.setIdentity(obj.fid, id);
  }
}

/** Hash a file and check that it did not change while it was read; null when it is busy (retried) or gone. */
async function readStable(s: BatchState, p: string, st: DiskStat): Promise<{ hash: string; st: DiskStat; readAt: bigint } | null> {
  const readAt = nowNs();
  let hash: string | null;
  if (!isInlineSize(st.size) && s.d.blockMaps !== undefined) {
    s.d.db.closeGroup(); // it waits on I/O (and maybe a timer): nothing may run with the group open
    // One read gives the hash and the block map peers ask for next. It is kept only when read past the racy
    // window of the file's times: a large file is worth that short wait (its read takes far longer).
    const young = RACY_WINDOW_NS - (nowNs() - (st.mtimeNs > st.ctimeNs ? st.mtimeNs : st.ctimeNs));
    if (young > 0n) await sleep(Number(young / 1_000_000n) + 1);
    let got: Awaited<ReturnType<BlockMapCache['of']>>;
    try {
      got = await s.d.blockMaps.of(s.abs(p));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code; // as hashFile: gone is null, anything else is an error
      if (code !== 'ENOENT' && code !== 'EISDIR' && code !== 'ENOTDIR') throw e;
      got = null;
    }
    hash = got?.map.hash ?? null;
    if (got === null && lstatOrNull(s.abs(p)) !== null) {
      s.retry.push(p); // changed while read
      return null;
    }
  } else {
    if (st.size > SMALL_FILE) s.d.db.closeGroup(); // streamed: it waits on I/O
    hash = await hashFile(s.abs(p), st.size);
  }
  if (hash === null) return null;
  const after = lstatOrNull(s.abs(p));
  if (after === null) return null;
  if (!sameStat(st, after)) {
    s.retry.push(p);
    return null;
  }
  return { hash, st: after, readAt };
}

/** Records that remove an object and, for a directory, everything journaled below it (deepest first). */
export function removal(s: BatchState, obj: ObjectRow): Change[] {
  const out: Change[] = [];
  if (obj.type === 'dir') {
    const below = s.d.db.objectsBelow(obj.path).sort((a, b) => depthOf(b.path) - depthOf(a.path));
    const carried = new Set<string>();
    for (const o of below) {
      // A file written here whose inode lives on outside: as for a file removed alone (see carrierOf). Before, a
      // directory's removal took none, and once the server removed the other name too the write was on no node
      // (chaos s63 seed 9229; test/long/link-written-removed-both.test.ts).
      const carrier = carrierOf(s, o);
      if (carrier !== undefined && !carried.has(carrier.fid)) {
        carried.add(carrier.fid);
        out.push(carrierWrite(s, carrier));
      }
      out.push({ draft: draftGone(s, o), identity: null });
      if (o.type === 'dir' && o.ino !== null) s.d.watcher?.unwatch(o.ino);
    }
    if (obj.ino !== null) s.d.watcher?.unwatch(obj.ino);
  }
  if (obj.type === 'file' && obj.ino !== null) {
    // The removal moved the inode's change time under its other names, and inotify says nothing of them: each
    // is looked at again (read once, its identity renewed) rather than left looking written here since it was
    // journaled (the link steps and the apply path's checks skipped or refused it: a resync).
    for (const x of s.d.db.objectsByIno(obj.ino)) if (x.fid !== obj.fid && x.type === 'file') s.retry.push(x.path);
  }
  const carrier = carrierOf(s, obj);
  if (carrier !== undefined) out.push(carrierWrite(s, carrier));
  out.push({ draft: draftGone(s, obj), identity: null });
  return out;
}

/**
 * A hard-linked name written here (not accepted yet) and now leaving its inode (removed, or replaced by
 * another file): what was written through it lives on in the inode's other name here, and only a record of
 * that name can carry it to the server (the removed name's write may be refused, or dropped with it). Before,
 * nothing pending said so and the write was on no node once the server's version came back.
 */
function carrierOf(s: BatchState, obj: ObjectRow): ObjectRow | undefined {
  const db = s.d.db;
  if (obj.type !== 'file' || obj.ino === null) return undefined;
  if (!db.localRecordsOf(obj.fid).some((x) => x.kind === 'write' || x.kind === 'truncate')) return undefined;
  return db.objectsByIno(obj.ino).find((x) => x.fid !== obj.fid && x.type === 'file' && lstatOrNull(s.abs(x.path))?.ino === obj.ino);
}

/** The write of a carrier (see carrierOf): what its inode holds, as journaled. */
function carrierWrite(s: BatchState, carrier: ObjectRow): Change {
  return { draft: { ...draftGone(s, carrier), kind: 'write', size: carrier.size, hash: carrier.hash }, identity: null };
}

function draftGone(s: BatchState, o: ObjectRow): RecordDraft {
  return {
    // A symlink's removal names its target: a conflict step that brings it back makes a symlink again.
    kind: o.type === 'dir' ? 'rmdir' : 'unlink', fid: o.fid, path: o.path, newPath: null, target: o.type === 'symlink' ? o.target : null,
    preVersion: o.version, size: null, hash: null, mode: o.mode, uid: o.uid, gid: o.gid, mtimeMs: o.mtimeMs,
    origin: s.d.nodeId, time: s.d.clock.now(),
  };
}

/** The record of `kind` for `obj`, with the stat data of `st`. */
export function draftOf(
  s: BatchState,
  kind: RecordKind,
  obj: Pick<ObjectRow, 'fid' | 'path' | 'version'> & Partial<Pick<ObjectRow, 'size' | 'hash' | 'target'>>,
  st: DiskStat,
  extra: { newPath?: string; target?: string; size?: number | null; hash?: string | null } = {},
): RecordDraft {
  const isFile = st.type === 'file';
  return {
    kind, fid: obj.fid, path: obj.path,
    newPath: extra.newPath ?? null,
    target: extra.target ?? (st.type === 'symlink' ? obj.target ?? null : null),
    preVersion: obj.version,
    size: isFile ? (extra.size !== undefined ? extra.size : obj.size ?? null) : null,
    hash: isFile ? (extra.hash !== undefined ? extra.hash : obj.hash ?? null) : null,
    mode: st.mode, uid: st.uid, gid: st.gid, mtimeMs: st.mtimeMs,
    origin: s.d.nodeId, time: s.d.clock.now(),
  };
}
