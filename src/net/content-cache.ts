import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import type { KmlRecord } from '#core/record.js';
import { blockLength, type BlockMap, type BlockMapCache } from '#fsio/blocks.js';
import { isInlineSize } from '#core/format.js';
import type { FilesetDb, ObjectRow } from '#journal/fileset-db.js';
import { lstatOrNull } from '#fsio/disk.js';
import { sha256Hex } from '#core/sha256.js';

/** Blocks read and sent at once, at most (4 MiB). */
const RUN_BLOCKS = 32;

/**
 * Reads of this node's file content for peers: inline bytes for small files,
 * block maps (cached by stat identity, so a large file is hashed once per
 * version) and block ranges for large ones. A read never returns bytes that do
 * not match the hash it claims.
 */
export class ContentReader {
  readonly #root: string;
  readonly #db: FilesetDb;
  readonly #maps: BlockMapCache;

  constructor(root: string, db: FilesetDb, maps: BlockMapCache) {
    this.#root = root;
    this.#db = db;
    this.#maps = maps;
  }

  /** The content of a small file record when this node still holds exactly it, else null. */
  inline(r: Pick<KmlRecord, 'kind' | 'fid' | 'hash' | 'size'>): Buffer | null {
    if ((r.kind !== 'create' && r.kind !== 'write' && r.kind !== 'truncate') || r.hash === null) return null;
    if (!isInlineSize(r.size ?? 0)) return null;
    if (r.size === 0) return Buffer.alloc(0);
    const o = this.#db.objectByFid(r.fid);
    if (o === undefined || o.hash !== r.hash) return null;
    return this.current(o);
  }

  /** The content of small file object `o` as the table describes it, else null (changed since, or large). */
  current(o: Pick<ObjectRow, 'path' | 'hash' | 'size' | 'type'>): Buffer | null {
    if (o.type !== 'file' || o.hash === null || !isInlineSize(o.size ?? 0)) return null;
    if (o.size === 0) return Buffer.alloc(0);
    // The size is known: one read of it (a file of another length fails the hash check, as a changed one does).
    const size = o.size ?? 0;
    let fd: number;
    try {
      fd = openSync(join(this.#root, o.path), 'r');
    } catch {
      return null;
    }
    try {
      const buf = Buffer.allocUnsafe(size);
      if (readSync(fd, buf, 0, size, 0) !== size) return null;
      return sha256Hex(buf) === o.hash ? buf : null;
    } catch {
      return null;
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Current block map of object `fid`, or null when it is no file here. A file unchanged since it was
   * journaled holds its journaled hash, so a map this node knows for that hash answers without a read.
   */
  async blockMap(fid: string): Promise<{ map: BlockMap; path: string } | null> {
    const o = this.#db.objectByFid(fid as never);
    if (o === undefined || o.type !== 'file') return null;
    const abs = join(this.#root, o.path);
    const known = o.hash === null || o.racy ? undefined : this.#maps.byHash(o.hash);
    if (known !== undefined) {
      const st = lstatOrNull(abs);
      if (st !== null && st.ino === o.ino && st.size === o.size && st.mtimeNs === o.mtimeNs && st.ctimeNs === o.ctimeNs) {
        this.#maps.setWritten(st, known); // the journal vouches for this identity as the map's content
        return { map: known, path: abs };
      }
    }
    const got = await this.#maps.of(abs);
    return got === null ? null : { map: got.map, path: abs };
  }

  /**
   * Read blocks `indexes` of the file at `path` whose map is `map`, in order. Consecutive blocks are read
   * and yielded together, up to 4 MiB at a time: the answer is the blocks' bytes back to back, so fewer,
   * larger writes move it (one per block made each a wake-up of both ends).
   */
  *blocks(path: string, map: BlockMap, indexes: readonly number[]): Generator<Buffer> {
    const fd = openSync(path, 'r');
    try {
      for (let k = 0; k < indexes.length;) {
        const first = indexes[k]!;
        let run = 1;
        while (k + run < indexes.length && indexes[k + run] === first + run && run < RUN_BLOCKS) run++;
        let len = 0;
        for (let j = 0; j < run; j++) len += blockLength(map, first + j);
        const buf = Buffer.allocUnsafe(len);
        const n = readSync(fd, buf, 0, len, first * map.blockSize);
        if (n !== len) throw new Error('file shrank while read');
        k += run;
        yield buf;
      }
    } finally {
      closeSync(fd);
    }
  }

  /** True when content `hash` is here: staged by an upload or held by an unchanged object. */
  has(hash: string, stagedPath: string): boolean {
    if (lstatOrNull(stagedPath) !== null) return true;
    return this.#db.objectsByHash(hash).some((o) => o.type === 'file' && !o.racy);
  }
}
