import { NO_VERSION, asTid, type Fid, type NodeId, type Tid } from '#core/ids.js';
import { IntersyncError } from '#core/errors.js';
import { conflictName } from '#core/conflict-name.js';
import type { RecordDraft } from '#core/record.js';
import { sha256Hex } from '#core/sha256.js';
import type { Staged } from '#apply/apply-path.js';
import { confine } from '#apply/confine.js';
import { applyStaged } from '#apply/record-applier.js';
import { EMPTY_SHA256, hashFileSync, lstatOrNull } from '#fsio/disk.js';
import type { SnapshotEntry } from '#net/snapshot-source.js';
import { parseWireEntry } from '#net/protocol/wire-record.js';
import { modeChange, type AttrPolicy } from '#policy/attr-policy.js';
import { chmodSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { noteRefused } from './client-attrs.js';
import type { CopyDeps, CopyProgress } from './copy-deps.js';
import { CopyJournaler } from './copy-journaler.js';
import { isLarge, type Inline } from './fetch-plan.js';
import { evacuate, keepUnacknowledged, moveDir } from './resync-protect.js';

// Placing a copy's entries (files, directories, symlinks, hard links) and journaling them, for a first copy
// and a resync alike: each entry checked at the edge, admitted, then put in place through the apply path.

export interface PlaceContext {
  readonly d: CopyDeps;
  readonly tid: Tid;
  readonly fresh: boolean;
  readonly p: CopyProgress;
  skipped: number;
  /** The attribute policy of this copy (read once). */
  readonly policy: AttrPolicy;
  /** Files whose hard-link grouping here is not the server's (`linkGroupsApart`). */
  readonly apart: ReadonlySet<string>;
  /** A resync's entry at its name here as it is placed (resync-protect's localNamer); none for a first copy. */
  readonly here?: (e: SnapshotEntry) => SnapshotEntry;
  /** A resync's snapshot, by fid. */
  readonly inSnap?: ReadonlySet<string>;
}

/**
 * Place a run of small entries (with their content) in one transaction.
 * `note` false: none of them is a file written straight at its name, and
 * the WRITING note is left to the runs with the file-system thread.
 */
export function placeRun(ctx: PlaceContext, run: ReadonlyArray<[SnapshotEntry, Inline | undefined]>, checkedDirs = new Set<string>(), note = true): void {
  if (run.length === 0) return;
  const { d, fresh } = ctx;
  // Names written directly are noted first, so that a start after a crash knows they are not the user's.
  const files = fresh && note ? run.filter(([e]) => e.type === 'file').map(([e]) => e.path) : [];
  if (files.length > 0) d.db.setMeta(WRITING, JSON.stringify(files));
  d.db.batch(() => {
    for (const [e, got] of run) place(ctx, e, got, null, checkedDirs);
    if (files.length > 0) d.db.setMeta(WRITING, '[]');
  });
}

/** A large file: staged on its own (block transfer), then placed. */
export async function placeLarge(ctx: PlaceContext, entry: SnapshotEntry): Promise<void> {
  const { d } = ctx;
  const e = ctx.here?.(entry) ?? entry;
  const draft = admit(ctx, e);
  if (draft === null) {
    ctx.skipped++;
    return;
  }
  const staged = await d.apply.stage(draft, null, d.source);
  place(ctx, e, undefined, staged);
}

/**
 * A resync's entry goes to a name another object holds here: that one moves beside under a conflict name,
 * with its pending records. A directory the server does not have (made here, or removed there) at the name
 * of one of the server's is taken for it: it becomes the server's, and its entries follow.
 */
function freeName(ctx: PlaceContext, e: SnapshotEntry): void {
  const { d, tid } = ctx;
  const holder = d.db.objectByPath(e.path);
  if (holder === undefined || holder.fid === e.fid) return;
  if (holder.type === 'dir' && e.type === 'dir' && ctx.inSnap?.has(holder.fid) !== true) {
    d.db.forget(holder.fid);
    return;
  }
  const to = conflictName(e.path, d.db.meta.nodeId, tid, (q) => d.db.objectByPath(q) !== undefined || lstatOrNull(join(d.root, q)) !== null);
  renameSync(join(d.root, e.path), join(d.root, to));
  d.db.relocateLocal(holder.fid, to);
  d.log.warn({ path: e.path, keptAs: to }, 'resync: a local object held this name; kept beside');
}

/**
 * Put one snapshot entry in place and journal it, synchronously (so that many
 * of them share one transaction). `got` is its inline content, `staged` the
 * content of a large file, staged already (consumed either way).
 */
export function place(
  ctx: PlaceContext, entry: SnapshotEntry, got: Inline | undefined, staged: Staged | null, checkedDirs?: Set<string>,
): void {
  const { d, tid, p } = ctx;
  // At its name here now: a directory above it may have moved since the resync began.
  const e = ctx.here?.(entry) ?? entry;
  const version = asTid(BigInt(e.version));
  const drop = (): void => {
    if (staged !== null) rmSync(staged.file, { force: true });
  };
  const draft = admit(ctx, e, checkedDirs);
  if (draft === null) {
    drop();
    ctx.skipped++;
    return;
  }
  if (!ctx.fresh) {
    // An earlier attempt may have left this object here in an older state, or on disk but not journaled.
    const mine = d.db.objectByFid(e.fid as Fid);
    // A hard link whose other name is not that file here stays the file it is (rather than removed, then
    // left out for want of its content).
    if (mine !== undefined && mine.path === e.path && mine.type === e.type && (e.type === 'dir' || (mine.hash === e.hash && (e.linkOf === null || !linkable(d, e))))
      && (e.type !== 'symlink' || mine.target === e.target) && lstatOrNull(join(d.root, e.path)) !== null) {
      // Sharing its inode here with names the server holds apart: an inode of its own (the server's links to
      // it are made again after it).
      if (e.type === 'file' && ctx.apart.has(e.path) && (lstatOrNull(join(d.root, e.path))?.nlink ?? 1) > 1) ownInode(d, draft, e.path);
      // Here already but for its mode (a change of mode lost on the way): the mode is set, nothing fetched again.
      if (!sameMode(mine.mode, { ...e, mode: draft.mode })) chmodSync(join(d.root, e.path), draft.mode & 0o7777);
      const st = lstatOrNull(join(d.root, e.path));
      d.db.commitCopy(e.linkOf === null ? draft : { ...draft, kind: 'create', target: null }, version, st === null ? null : { ino: st.ino, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, racy: false });
      return;
    }
    // Another object holds the name here: out of the way first, so that this one can come to it as it is (a
    // directory moved with what it holds). Before, a directory of the server's kept with its pending move to
    // this name was forgotten with its move, and this one, unable to move here, was removed once its pending
    // entries were moved beside it.
    freeName(ctx, e);
    if (mine !== undefined && mine.type === 'dir' && e.type === 'dir' && moveDir(d, mine.path, e.path)) {
      // Moved on the server: moved here too, with what it holds (local changes below it are not the server's to remove).
      const st = lstatOrNull(join(d.root, e.path));
      d.db.commitCopy(draft, version, st === null ? null : { ino: st.ino, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, racy: false });
      return;
    }
    if (mine !== undefined) {
      if (mine.type === 'dir') evacuate(d, mine.path, tid);
      else keepUnacknowledged(d, mine, e, tid);
      rmSync(join(d.root, mine.path), { recursive: true, force: true });
      d.db.forget(mine.fid);
    }
    freeName(ctx, e); // below the object this one was here (removed just above), or made there meanwhile
  }
  const direct = ctx.fresh && draft.kind === 'create' && staged === null ? directOf(draft, e, got) : null;
  if (ctx.fresh && draft.kind === 'create' && staged === null && direct === null && d.behind === undefined) {
    ctx.skipped++; // gone from the server since the snapshot: the stream brings its removal
    return;
  }
  if (direct !== null) {
    try {
      d.apply.createDirect(direct.d, direct.buf, (identity) => d.db.commitCopyNew(direct.d, version, identity), checkedDirs);
      p.files++;
      p.bytes += direct.buf.length;
      if (direct.d.hash !== e.hash) d.behind?.(e.fid as Fid, e.hash);
      return;
    } catch (err) {
      if (!(err instanceof IntersyncError) || err.code !== 'CONFLICT') throw err; // else: something is at the name
    }
  }
  const there = lstatOrNull(join(d.root, e.path));
  if (there !== null && (ctx.fresh || d.db.objectByPath(e.path) === undefined)) {
    drop();
    if (e.type === 'dir' && there.type === 'dir') {
      d.db.commitCopy(draft, version, { ino: there.ino, mtimeNs: there.mtimeNs, ctimeNs: there.ctimeNs, racy: false });
      return;
    }
    const same = e.type === 'file' && there.type === 'file' && there.size === e.size && hashFileSync(join(d.root, e.path)) === e.hash;
    if (same) {
      d.db.commitCopy(draft, version, { ino: there.ino, mtimeNs: there.mtimeNs, ctimeNs: there.ctimeNs, racy: true });
      p.files++;
      return;
    }
    d.log.warn({ path: e.path }, 'first copy: a local file has this name; it is journaled and will conflict');
    ctx.skipped++;
    return;
  }
  let final = draft;
  if (draft.kind === 'link' && !linkable(d, e)) {
    // The name it links to is not that file here (kept elsewhere with local changes, or not placed): a file of
    // its own with the same content, from a local copy, rather than a failed resync; the next change through
    // either name on the server brings them back together.
    const copy = localCopyOf(d, e);
    if (copy === null) {
      d.log.warn({ path: e.path, linkOf: e.linkOf }, 'resync: a hard link whose other name is not here, and no local copy of its content: left out');
      ctx.skipped++;
      return;
    }
    final = { ...draft, kind: 'create', target: null };
    staged = d.apply.stageBytes(final, copy);
  }
  if (final.kind === 'create' && staged === null) {
    if (got !== undefined && got.data !== null && got.hash !== null) {
      final = { ...draft, hash: got.hash, size: got.data.length }; // newer than the snapshot: a later record says so
      staged = d.apply.stageBytes(final, got.data);
      if (got.hash !== e.hash) d.behind?.(e.fid as Fid, e.hash);
    } else if ((e.size ?? 0) === 0) {
      staged = d.apply.stageBytes(draft, Buffer.alloc(0));
    } else if (d.behind !== undefined) {
      final = { ...draft, hash: EMPTY_SHA256, size: 0 }; // a mirror's stand-in: the master's next record of it brings its content
      staged = d.apply.stageBytes(final, Buffer.alloc(0));
      d.behind(e.fid as Fid, e.hash);
    } else {
      ctx.skipped++; // gone from the server since the snapshot: the stream brings its removal
      return;
    }
  }
  applyStaged(d.apply, final, staged, new CopyJournaler(d.db, version));
  p.files++;
  p.bytes += e.size ?? 0;
}

/**
 * A new file (not a link) that can be written straight at its name, with the
 * record it is journaled as: its content came (an empty file needs none).
 * Null when it cannot: its content did not come (gone from the server).
 */
export function directOf(draft: RecordDraft, e: SnapshotEntry, got: Inline | undefined): { d: RecordDraft; buf: Buffer } | null {
  if (!hasContent(e, got)) return null;
  if ((e.size ?? 0) === 0) return { d: draft, buf: Buffer.alloc(0) };
  if (got?.data == null || got.hash === null) return null;
  return { d: { ...draft, hash: got.hash, size: got.data.length }, buf: got.data };
}

/** A new file (not a link, not large) whose content came (an empty file needs none). */
export function hasContent(e: SnapshotEntry, got: Inline | undefined): boolean {
  if (e.type !== 'file' || e.linkOf !== null || isLarge(e)) return false;
  return (e.size ?? 0) === 0 || (got?.data != null && got.hash !== null);
}

/** A snapshot entry as the server sent it, checked at the edge; null (logged) when it is malformed. */
export function checkedEntry(d: CopyDeps, v: unknown): SnapshotEntry | null {
  try {
    return parseWireEntry(v);
  } catch (e) {
    if (!(e instanceof IntersyncError)) throw e;
    d.log.warn({ code: e.code, err: e.message }, 'first copy: entry refused');
    return null;
  }
}

/**
 * The record an entry is placed and journaled as, or null (logged) when this node refuses it: a
 * path that is not confined to the tree (through a symlink here), a hard link to a name that is not
 * a file here, an escaping symlink under safe-links. Set-id bits and owners as the fileset's
 * attribute policy allows. Every entry goes through here before it is journaled.
 */
export function admit(ctx: PlaceContext, e: SnapshotEntry, checkedDirs?: Set<string>): RecordDraft | null {
  const { d } = ctx;
  try {
    confine(d.root, e.path, checkedDirs);
    if (e.linkOf !== null) {
      confine(d.root, e.linkOf, checkedDirs);
      // In a fresh copy the other name comes first, so a link to nothing is a bad snapshot; in a resync the
      // other name may be kept elsewhere here, which place() deals with (never a refusal for good: a refused
      // object's later records are skipped, and the node would stay apart from the server).
      if (ctx.fresh && d.db.objectByPath(e.linkOf)?.type !== 'file') throw IntersyncError.BAD_PATH(e.path, `hard link to ${e.linkOf}, which is not a file here`);
    }
    const draft = d.apply.localize(draftOf(e, d.serverNode as NodeId, d.clock.now()), ctx.policy);
    const mode = modeChange(draft.kind, e.mode, draft.mode);
    if (mode !== null) d.log[mode.warn ? 'warn' : 'info']({ path: e.path, mode: e.mode.toString(8), applied: draft.mode.toString(8) }, mode.message);
    return draft;
  } catch (err) {
    // In a fresh copy a missing parent is one refused here (or sent out of order): its entries are refused too.
    const refused = err instanceof IntersyncError && (err.code === 'BAD_PATH' || err.code === 'UNSAFE_LINK' || (ctx.fresh && err.code === 'CONFLICT'));
    if (!refused) throw err;
    d.log.warn({ path: e.path, code: err.code, err: err.message }, 'first copy: entry skipped');
    noteRefused(d.db, e.fid);
    return null;
  }
}

/** Meta key: the names a fresh copy is writing straight into place, until the batch is journaled. */
export const WRITING = 'copy_writing';

/** A crashed fresh copy left files it was writing and had not journaled (maybe half written): remove them. */
export function dropUnjournaled(d: Pick<CopyDeps, 'db' | 'root'>): void {
  const noted = JSON.parse(d.db.getMeta(WRITING) ?? '[]') as string[];
  for (const path of noted) {
    const abs = join(d.root, path);
    if (d.db.objectByPath(path) === undefined && lstatOrNull(abs)?.type === 'file') rmSync(abs, { force: true });
  }
  if (noted.length > 0) d.db.setMeta(WRITING, '[]');
}

/** The record a snapshot entry is placed and journaled as (before the attribute policy). */
export function draftOf(e: SnapshotEntry, origin: NodeId, now: number): RecordDraft {
  const kind = e.type === 'dir' ? 'mkdir' : e.type === 'symlink' ? 'symlink' : e.linkOf !== null ? 'link' : 'create';
  return {
    kind, fid: e.fid as Fid, path: e.path, newPath: null, target: e.type === 'symlink' ? e.target : e.linkOf,
    preVersion: NO_VERSION, mode: e.mode, uid: e.uid, gid: e.gid, mtimeMs: e.mtimeMs,
    size: e.type === 'file' ? e.size : null, hash: e.type === 'file' ? e.hash : null, origin, time: now,
  };
}

/** A symlink's mode means nothing here (as in the digest); other modes must match. */
export function sameMode(mode: number, e: SnapshotEntry): boolean {
  return e.type === 'symlink' || (mode & 0o7777) === (e.mode & 0o7777);
}

/** Give a file an inode of its own, with the server's content and attributes; the other names keep the old one. */
function ownInode(d: CopyDeps, draft: RecordDraft, path: string): void {
  const abs = join(d.root, path);
  try {
    const staged = d.apply.stageBytes(draft, readFileSync(abs)); // refused when the content is not the server's
    renameSync(staged.file, abs);
  } catch (e) {
    d.log.warn({ path, err: (e as Error).message }, 'resync: cannot give this name an inode of its own; it stays linked');
  }
}

/** The other name of a hard link to place is here, the same file (its content), so that a link to it is right. */
function linkable(d: CopyDeps, e: SnapshotEntry): boolean {
  if (e.linkOf === null) return false;
  const t = d.db.objectByPath(e.linkOf);
  return t !== undefined && t.type === 'file' && t.hash === e.hash && lstatOrNull(join(d.root, e.linkOf))?.type === 'file';
}

/** The bytes of a local file with the entry's content (not too large to hold), or null. */
function localCopyOf(d: CopyDeps, e: SnapshotEntry): Buffer | null {
  if (e.hash === null || (e.size ?? 0) > 64 << 20) return null;
  for (const o of d.db.objectsByHash(e.hash)) {
    if (o.type !== 'file') continue;
    try {
      const buf = readFileSync(join(d.root, o.path));
      if (sha256Hex(buf) === e.hash) return buf;
    } catch {
      // moved or removed meanwhile: try the next
    }
  }
  return null;
}
