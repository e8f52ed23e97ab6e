import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { RACY_WINDOW_NS, lstatOrNull, nowNs, type DiskStat } from './disk.js';
import { sha256Hex } from '#core/sha256.js';

/** Fixed-size blocks, as Syncthing: a changed region ships as the blocks it touches. */
export const BLOCK_SIZE = 128 * 1024;

/** A file's content as a list of block hashes, plus its size and whole-file SHA-256. */
export interface BlockMap {
  readonly size: number;
  readonly hash: string;
  readonly blockSize: number;
  readonly blocks: readonly string[]; // first 128 bits of each block's SHA-256, hex
}

/** Bytes read at a time: whole blocks, so no block straddles two reads. */
const READ_BLOCKS = 64;

/**
 * Read `file` once for its whole SHA-256 and its block hashes, in runs of whole blocks into one buffer
 * (nothing copied or allocated per block; before, a stream of 1 MiB chunks was concatenated per block).
 * Both hashes stay on this thread: on this 2-core machine, shared with other work, hashing the blocks on
 * a worker thread (or WebCrypto's thread pool, slower still) measured no faster than here.
 */
export async function blockMapOf(file: string, blockSize = BLOCK_SIZE): Promise<BlockMap> {
  const fh = await open(file, 'r');
  const run = blockSize * READ_BLOCKS;
  const buf = Buffer.allocUnsafe(run);
  const whole = createHash('sha256');
  const blocks: string[] = [];
  let size = 0;
  try {
    for (;;) {
      const n = (await fh.read(buf, 0, run, size)).bytesRead;
      if (n === 0) break;
      size += n;
      whole.update(buf.subarray(0, n));
      for (let off = 0; off < n; off += blockSize) blocks.push(blockHash(buf.subarray(off, Math.min(n, off + blockSize))));
      // A short read is the end (a file that changes meanwhile changes its stat, which callers compare).
      if (n < run) break;
    }
  } finally {
    await fh.close();
  }
  return { size, hash: whole.digest('hex'), blockSize, blocks };
}

/** A block's hash in a map: the first 128 bits of its SHA-256, hex. */
export function blockHash(b: Uint8Array): string {
  return sha256Hex(b).slice(0, 32);
}

/** Indexes of the blocks of `want` that `have` does not hold anywhere (by hash), in order. */
export function missingBlocks(have: BlockMap | null, want: BlockMap): number[] {
  const known = new Set(have?.blocks ?? []);
  const out: number[] = [];
  want.blocks.forEach((b, i) => {
    if (!known.has(b)) out.push(i);
  });
  return out;
}

/** Where each present block of `want` can be read in the local file: block index -> byte offset there. */
export function localOffsets(have: BlockMap | null, want: BlockMap): Map<number, number> {
  const at = new Map<string, number>();
  have?.blocks.forEach((b, i) => {
    if (!at.has(b)) at.set(b, i * have.blockSize);
  });
  const out = new Map<number, number>();
  want.blocks.forEach((b, i) => {
    const off = at.get(b);
    if (off !== undefined) out.set(i, off);
  });
  return out;
}

export function blockLength(map: BlockMap, index: number): number {
  return Math.min(map.blockSize, map.size - index * map.blockSize);
}

/**
 * Block maps of this node's large files, so that a large file is hashed once per version on a node,
 * whoever asks: the server that serves its blocks, the client that applies a delta against its old
 * version. A map is a function of content, so maps are kept by content hash, and files are tied to one by
 * stat identity (inode, size, mtime, ctime): an entry whose file changed since has another identity and
 * is never found. Content this node assembled, received or copied keeps its map under its hash, so the
 * file it becomes is never read again to answer for it (`setWritten`, or `byHash` with the journal's word
 * that the file is unchanged).
 */
export class BlockMapCache {
  /** stat key -> content hash */
  readonly #files = new Map<string, string>();
  /** content hash and block size -> map */
  readonly #maps = new Map<string, BlockMap>();
  readonly #limit: number;

  constructor(limit = 64) {
    this.#limit = limit;
  }

  get(st: DiskStat, blockSize = BLOCK_SIZE): BlockMap | undefined {
    const hash = this.#files.get(keyOf(st, blockSize));
    return hash === undefined ? undefined : this.byHash(hash, blockSize);
  }

  /** The map of content `hash`, when this node has computed or checked one. */
  byHash(hash: string, blockSize = BLOCK_SIZE): BlockMap | undefined {
    return this.#maps.get(`${hash}:${blockSize}`);
  }

  /** Remember `map`, checked against the bytes it describes, by its content hash. */
  known(map: BlockMap): void {
    put(this.#maps, `${map.hash}:${map.blockSize}`, map, this.#limit);
  }

  /**
   * Remember `map` as the content of the file whose stat is `st`. Only when
   * the file's times were past the racy window when it was read: a change in
   * the same clock tick could otherwise keep its identity.
   */
  set(st: DiskStat, map: BlockMap, readAtNs: bigint): void {
    this.known(map);
    if (readAtNs - (st.mtimeNs > st.ctimeNs ? st.mtimeNs : st.ctimeNs) < RACY_WINDOW_NS) return;
    put(this.#files, keyOf(st, map.blockSize), map.hash, this.#limit);
  }

  /**
   * A file this node has just written from content checked against `map`,
   * its mtime set to the record's (in the past): any later write moves that
   * mtime, so the identity read after the rename vouches for `map`.
   */
  setWritten(st: DiskStat, map: BlockMap): void {
    this.known(map);
    put(this.#files, keyOf(st, map.blockSize), map.hash, this.#limit);
  }

  /** Forget what is known of the file whose stat is `st` (its content did not match). */
  drop(st: DiskStat): void {
    for (const k of [...this.#files.keys()]) if (k.startsWith(`${st.ino}:`)) this.#files.delete(k);
  }

  /** The block map of the file at `abs`: cached, else read and remembered. Null when it is not a file or changed while read. */
  async of(abs: string, blockSize = BLOCK_SIZE): Promise<{ map: BlockMap; st: DiskStat } | null> {
    const st = lstatOrNull(abs);
    if (st === null || st.type !== 'file') return null;
    const hit = this.get(st, blockSize);
    if (hit !== undefined) return { map: hit, st };
    const readAt = nowNs();
    const map = await blockMapOf(abs, blockSize);
    const after = lstatOrNull(abs);
    if (after === null || keyOf(after, blockSize) !== keyOf(st, blockSize) || map.size !== after.size) return null;
    this.set(after, map, readAt);
    return { map, st: after };
  }
}

/** Insert or refresh `key`, forgetting the least recently stored past `limit`. */
function put<V>(m: Map<string, V>, key: string, v: V, limit: number): void {
  m.delete(key);
  m.set(key, v);
  if (m.size > limit) m.delete(m.keys().next().value!);
}

function keyOf(st: DiskStat, blockSize: number): string {
  return `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}:${blockSize}`;
}
