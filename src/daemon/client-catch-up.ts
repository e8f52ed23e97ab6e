import { chmodSync, mkdirSync, renameSync, rmSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { IntersyncError } from '#core/errors.js';
import { parentOf } from '#core/paths.js';
import type { KmlRecord, LmlRecord, RecordDraft } from '#core/record.js';
import { conflictName } from '#core/conflict-name.js';
import type { Staged } from '#apply/apply-path.js';
import { lstatOrNull } from '#fsio/disk.js';
import type { ObjectRow } from '#journal/fileset-db.js';
import type { ClientState } from './client-state.js';

/*
 * A client's content behind: files whose content here is a stand-in, not the server's (their record came when
 * the server no longer held it), noted in meta; fetched when no later record brings it (catchUp), kept beside
 * before a local change would replace it on the server (keepServerContent). The names with a # in the comments
 * (#catchUp, #placedContent, ...) are the ClientNode methods these functions were; they keep their names.
 */

/** Files whose content here is not the server's (its record came when the server no longer held it), kept in meta. */
export function contentBehind(s: ClientState): Set<string> {
  s.behindSet ??= new Set(JSON.parse(s.db.getMeta('content_behind') ?? '[]') as string[]);
  return s.behindSet;
}

/** Called inside the transaction of the change that makes the file behind or not (the set is read back from meta after a rollback). */
export function noteBehind(s: ClientState, fid: string, behind: boolean): void {
  const all = contentBehind(s);
  if (all.has(fid) === behind) return;
  s.behindSet = null;
  const next = new Set(all);
  if (behind) next.add(fid);
  else next.delete(fid);
  s.db.setMeta('content_behind', JSON.stringify([...next]));
}

/**
 * Before local changes go to the server: a write, truncate or unlink of a file whose content here is only a
 * stand-in (see #placedContent) would replace or remove the server's content, never seen here. That content
 * is fetched first and kept beside it, as a conflict copy made here (journaled and replicated like any file).
 */
export async function keepServerContent(s: ClientState, lml: readonly LmlRecord[]): Promise<void> {
  const behind = contentBehind(s);
  if (behind.size === 0) return;
  const kept: string[] = [];
  const done = new Set<string>();
  for (const r0 of lml) {
    if (r0.kind !== 'write' && r0.kind !== 'truncate' && r0.kind !== 'unlink') continue;
    // A write through another name of a file's inode replaces the stand-in too, and on the server (one inode
    // there, once a link made here is accepted) the content it stands for (chaos seeds 9205 and 9208: the
    // write went out, or the fetch below put the server's content over it, and one of the two was lost).
    const targets: LmlRecord[] = behind.has(r0.fid) ? [r0] : [];
    if (r0.kind !== 'unlink') {
      for (const b of inodeNames(s, s.db.objectByFid(r0.fid))) {
        if (b.fid === r0.fid || !behind.has(b.fid)) continue;
        targets.push({ ...r0, fid: b.fid, path: b.path, preVersion: b.version, mode: b.mode, uid: b.uid, gid: b.gid, mtimeMs: b.mtimeMs });
      }
    }
    for (const r of targets) {
      if (done.has(r.fid)) continue;
      done.add(r.fid);
      try {
        const { staged, placeholder } = await s.apply.stageCurrent(r, s.source);
        if (placeholder) {
          rmSync(staged.file, { force: true });
          continue; // gone from the server too (its own later record says how): nothing to keep
        }
        const exists = (p: string): boolean => s.db.objectByPath(p) !== undefined || lstatOrNull(join(s.paths.dir, p)) !== null;
        const aside = conflictName(r.path, s.db.meta.nodeId, r.preVersion, exists);
        mkdirSync(join(s.paths.dir, parentOf(aside)), { recursive: true });
        chmodSync(staged.file, r.mode);
        utimesSync(staged.file, r.mtimeMs / 1000, r.mtimeMs / 1000);
        renameSync(staged.file, join(s.paths.dir, aside));
        kept.push(aside);
        noteBehind(s, r.fid, false);
        s.log.warn({ path: r.path, keptAs: aside }, 'conflict: changed here before its content came from the server; the server\'s content kept beside');
      } catch (e) {
        // Not sent before the server's content is kept: the removal or write would destroy it on the server.
        s.log.warn({ path: r.path, err: (e as Error).message }, 'cannot keep the server\'s content of a file changed here before it came');
        if (kept.length > 0) await s.capture.syncPaths(kept);
        throw new IntersyncError('IO', `cannot fetch the server's content of ${r.path} to keep it beside before this change is sent`, {
          retriable: true, hint: 'retried when the server answers', cause: e,
        });
      }
    }
  }
  // Journaled now, not when capture gets to it: until it is, this node would look caught up with the server
  // (nothing pending, the same state) while holding a file nobody else has.
  if (kept.length > 0) await s.capture.syncPaths(kept);
}

/**
 * A name of the inode a change of content `r` goes into, with a write or truncate journaled here after the
 * local record `seq` (made while the change's content was fetched); undefined when none. Before, such a write
 * passed the apply path's check (capture had given every name the disk's stat) and the server's content went
 * into the inode over it: on no node (chaos s72 seed 9301, c2; test/written-while-fetched.test.ts).
 */
export function writtenSince(s: ClientState, r: Pick<RecordDraft, 'kind' | 'fid'>, seq: bigint): string | undefined {
  if (r.kind !== 'write' && r.kind !== 'truncate') return undefined;
  if (s.db.lmlSeq === seq) return undefined;
  const names = inodeNames(s, s.db.objectByFid(r.fid));
  return names.find((x) => s.db.localRecordsOf(x.fid).some((y) => y.seq > seq && (y.kind === 'write' || y.kind === 'truncate')))?.path;
}

/** The names of a file's inode here, itself included, that are files on disk as that inode ([] for anything else). */
function inodeNames(s: ClientState, o: ObjectRow | undefined): ObjectRow[] {
  if (o?.type !== 'file' || o.ino === null) return o === undefined ? [] : [o];
  return s.db.objectsByIno(o.ino).filter((x) => x.type === 'file' && (x.fid === o.fid || lstatOrNull(join(s.paths.dir, x.path))?.ino === o.ino));
}

/**
 * Fetch the server's current content of files that are behind (see #placedContent), when no later record
 * brought it: after a rename or setattr of one (the server had only moved it when this node asked), and at
 * each connection. Still missing on the server, a file stays noted: a later record of the server brings it.
 */
export async function catchUp(s: ClientState, fids: Iterable<string>): Promise<void> {
  const behind = contentBehind(s);
  for (const fid of fids) {
    if (!behind.has(fid)) continue;
    // What changed here and is not journaled yet is journaled first, as before any change from the server: a
    // local write (or one a conflict step has just put back) must not be taken for the stand-in and replaced.
    const was = s.db.objectByFid(fid as ObjectRow['fid']);
    // Every name of its inode: a write through another one is a write of this file too.
    if (was !== undefined) await s.capture.syncPaths([was.path, ...inodeNames(s, was).map((x) => x.path).filter((p) => p !== was.path)]);
    const o = s.db.objectByFid(fid as ObjectRow['fid']);
    // Written or removed here since: the server's content is kept beside before that change is sent (#keepServerContent).
    if (s.db.localRecordsOf(fid as ObjectRow['fid']).some((x) => x.kind === 'write' || x.kind === 'truncate' || x.kind === 'unlink')) continue;
    // So when written through another name of its inode: capture journals such a write as that name's only (the
    // other names' rows follow it). Before, the fetch put the server's content into the inode over it, and the
    // write was on no node (chaos seeds 9205 and 9208, "DESTROYED").
    if (inodeNames(s, o).some((x) => x.fid !== fid && s.db.localRecordsOf(x.fid).some((y) => y.kind === 'write' || y.kind === 'truncate'))) continue;
    if (o === undefined || o.type !== 'file') {
      noteBehind(s, fid, false);
      continue;
    }
    const d: RecordDraft = {
      kind: 'write', fid: o.fid, path: o.path, newPath: null, target: null, preVersion: o.version, mode: o.mode, uid: o.uid, gid: o.gid,
      mtimeMs: o.mtimeMs, size: null, hash: null, origin: s.db.meta.nodeId, time: s.o.clock.now(),
    };
    try {
      const journaledAt = s.db.lmlSeq;
      const { staged, placeholder } = await s.apply.stageCurrent(d, s.source);
      if (placeholder || staged.hash === o.hash) {
        rmSync(staged.file, { force: true });
        if (!placeholder) noteBehind(s, fid, false);
        continue;
      }
      // Written here while it was fetched: kept as the other writes above are.
      if (writtenSince(s, d, journaledAt) !== undefined) {
        rmSync(staged.file, { force: true });
        continue;
      }
      s.apply.apply(d, staged, (identity) => {
        s.db.setContent(o.fid, staged.hash, staged.size, identity);
        noteBehind(s, fid, false);
      });
      s.log.info({ path: o.path, size: staged.size }, 'content missing from the server when its record came: fetched now');
    } catch (e) {
      // A local write meanwhile (capture journals it, then it is kept beside) or the link went down: tried again at the next connection.
      s.log.warn({ path: o.path, err: (e as Error).message }, 'cannot fetch the server\'s content of this file yet');
    }
  }
}

/**
 * The content a forwarded record leaves on disk when it is not the record's: what was staged (newer content,
 * or the empty stand-in), or, for a setattr, the content an earlier stand-in left. The object row must say
 * that, or capture would take the difference for a local change (an empty file written over the server's).
 */
export function placedContent(s: ClientState, r: KmlRecord, staged: Staged | null): { hash: string; size: number } | undefined {
  if (staged !== null) return staged.hash === r.hash ? undefined : { hash: staged.hash, size: staged.size };
  if (r.kind !== 'setattr' || r.hash === null) return undefined;
  const o = s.db.objectByFid(r.fid);
  return o?.type === 'file' && o.hash !== null && o.hash !== r.hash ? { hash: o.hash, size: o.size ?? 0 } : undefined;
}
