import { closeSync, constants, existsSync, fchmodSync, futimesSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { IntersyncError } from '#core/errors.js';
import type { KmlRecord, RecordDraft } from '#core/record.js';
import { DELTA_THRESHOLD } from '#core/format.js';
import { EMPTY_SHA256, lstatOrNull } from '#fsio/disk.js';
import type { BlockMap } from '#fsio/blocks.js';
import { assemble, type AssemblyBase } from './assemble.js';
import type { ApplyDeps, ApplyState } from './apply-deps.js';
import { checkBytes, tryChown } from './new-file.js';
import { unchangedSince } from './stat-identity.js';
import { stagedPath, tmpName } from './tmp-folder.js';

/** Content staged in the fileset's tmp folder, ready to be renamed into place. */
export interface Staged {
  readonly file: string;
  readonly hash: string;
  readonly size: number;
  /** The attributes already given to the staged file (owner, mode, mtime), when it was written for a known record. */
  readonly attrs?: Attrs;
  /** Its block map, when it was assembled from one (remembered for the next delta once it is in place). */
  readonly map?: BlockMap;
}

/** A record's owner, mode and mtime: what a staged file may carry already. */
export type Attrs = Pick<RecordDraft, 'mode' | 'uid' | 'gid' | 'mtimeMs'>;

/** Where the apply path gets file content it does not hold: the peer the record came from. */
export interface ContentSource {
  /** The peer's block map of the record's content (or of a newer content of that object). */
  blockMap(d: RecordDraft): Promise<BlockMap>;
  /** The given blocks of that content, in the order asked. */
  blocks(d: RecordDraft, map: BlockMap, indexes: readonly number[]): AsyncIterable<Buffer>;
  /** False when the map is the word of a peer that is no authority on the content (a client's upload): the result is hashed whole. */
  readonly trusted?: boolean;
}

/** ApplyPath#stage: `d`'s content from inline bytes, a local copy by hash, or a block delta from `source`. */
export async function stage(s: ApplyState, d: RecordDraft, inline: Buffer | null, source: ContentSource | null): Promise<Staged> {
  const want = d.hash!;
  if (inline !== null || d.size === 0) return stageBytes(s.deps.tmpDir, d, inline ?? Buffer.alloc(0));
  const tmp = tmpName(s.deps.tmpDir);
  const local = localCopy(s.deps, want);
  if (local !== null && lstatOrNull(local.abs)?.size === d.size) {
    // A staged upload is consumed (its record has come); a file of the tree is copied by the kernel.
    if (local.staged) renameSync(local.abs, tmp);
    else await copyFile(local.abs, tmp, constants.COPYFILE_EXCL);
    const map = s.blockMaps.byHash(want);
    return { file: tmp, hash: want, size: d.size, ...(map === undefined ? {} : { map }) };
  }
  if (source === null) throw IntersyncError.NEED_CONTENT(want);
  const map = await source.blockMap(d);
  const old = s.deps.db.objectByFid(d.fid);
  const oldAbs = old?.type === 'file' ? join(s.deps.root, old.path) : null;
  let base: AssemblyBase | null = null;
  if (oldAbs !== null && (old?.size ?? 0) >= DELTA_THRESHOLD / 4) {
    try {
      const known = await s.blockMaps.of(oldAbs, map.blockSize);
      if (known !== null) base = { abs: oldAbs, ...known };
    } catch {
      base = null;
    }
  }
  let fetched: number;
  try {
    fetched = await assemble({
      tmp, path: d.path, map, base, check: source.trusted === false ? 'whole' : 'blocks',
      fetch: (indexes) => source.blocks(d, map, indexes)[Symbol.asyncIterator](),
    });
  } catch (e) {
    rmSync(tmp, { force: true });
    if (base !== null) s.blockMaps.drop(base.st); // in case the local map was what did not hold
    throw e;
  }
  s.blockMaps.known(map);
  s.deps.log.debug({ path: d.path, blocks: map.blocks.length, fetched }, 'block delta');
  return { file: tmp, hash: map.hash, size: map.size, map };
}

/** ApplyPath#stageOrPlaceholder: `d`'s content, else the content of the peer's other names of its inode, else an empty stand-in. */
export async function stageOrPlaceholder(
  s: ApplyState, d: RecordDraft, inline: Buffer | null, source: ContentSource | null,
): Promise<{ staged: Staged; placeholder: boolean }> {
  try {
    return { staged: await stage(s, d, inline, source), placeholder: false };
  } catch (e) {
    if (!(e instanceof IntersyncError) || e.code !== 'CONTENT_GONE') throw e;
  }
  // The peer's other names of the inode (a hard link) hold the same content while the record's name is gone
  // there (removed since). Before, the empty stand-in went into the inode here, and a name the peer still
  // holds kept it: "state differs", a resync (chaos seed 9216, c2; test/long/link-content-gone.test.ts).
  for (const fid of (d as Partial<KmlRecord>).links ?? []) {
    if (fid === d.fid) continue;
    try {
      return { staged: await stage(s, { ...d, fid }, null, source), placeholder: false };
    } catch (e) {
      if (!(e instanceof IntersyncError) || e.code !== 'CONTENT_GONE') throw e;
    }
  }
  return { staged: stageBytes(s.deps.tmpDir, { ...d, hash: EMPTY_SHA256, size: 0 }, Buffer.alloc(0)), placeholder: true };
}

/** ApplyPath#stageBytes: inline bytes checked against `d`, written to a temp file in `tmpDir` with `d`'s attributes. */
export function stageBytes(tmpDir: string, d: RecordDraft, buf: Buffer): Staged {
  const got = checkBytes(d, buf);
  const tmp = tmpName(tmpDir);
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, buf);
    tryChown(fd, d.uid, d.gid); // before the mode: a change of owner clears set-id bits
    fchmodSync(fd, d.mode);
    futimesSync(fd, d.mtimeMs / 1000, d.mtimeMs / 1000);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  return { file: tmp, hash: got, size: buf.length, attrs: { mode: d.mode, uid: d.uid, gid: d.gid, mtimeMs: d.mtimeMs } };
}

/** A local file that holds content `hash` and has not changed since it was journaled, if any (`staged`: an upload). */
function localCopy(deps: ApplyDeps, hash: string): { abs: string; staged: boolean } | null {
  const staged = stagedPath(deps.tmpDir, hash);
  if (existsSync(staged)) return { abs: staged, staged: true };
  for (const o of deps.db.objectsByHash(hash)) {
    if (o.type !== 'file' || o.racy) continue;
    const abs = join(deps.root, o.path);
    const st = lstatOrNull(abs);
    if (st !== null && unchangedSince(o, st)) return { abs, staged: false };
  }
  return null;
}
