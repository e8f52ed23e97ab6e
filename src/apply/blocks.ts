import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { RACY_WINDOW_NS, lstatOrNull, nowNs, type DiskStat } from '#presto/disk.js';
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

export async function blockMapOf(file: string, blockSize = BLOCK_SIZE): Promise<BlockMap> {
  const whole = createHash('sha256');
  const blocks: string[] = [];
  let pending: Buffer[] = [];
  let pendingLen = 0;
  let size = 0;
  const flush = (buf: Buffer): void => {
    blocks.push(sha256Hex(buf).slice(0, 32));
  };
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
    const b = chunk as Buffer;
    whole.update(b);
    size += b.length;
    let off = 0;
    while (off < b.length) {
      const take = Math.min(blockSize - pendingLen, b.length - off);
      pending.push(b.subarray(off, off + take));
      pendingLen += take;
      off += take;
      if (pendingLen === blockSize) {
        flush(Buffer.concat(pending));
        pending = [];
        pendingLen = 0;
      }
    }
  }
  if (pendingLen > 0) flush(Buffer.concat(pending));
  return { size, hash: whole.digest('hex'), blockSize, blocks };
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
 * Block maps by stat identity (inode, size, mtime, ctime), so that a large
 * file is hashed once per version on a node, whoever asks: the server that
 * serves its blocks, the client that applies a delta against its old version.
 * An entry whose file changed since has another identity and is never found.
 */
export class BlockMapCache {
  readonly #maps = new Map<string, BlockMap>();
  readonly #limit: number;

  constructor(limit = 64) {
    this.#limit = limit;
  }

  get(st: DiskStat, blockSize = BLOCK_SIZE): BlockMap | undefined {
    return this.#maps.get(keyOf(st, blockSize));
  }

  /**
   * Remember `map` as the content of the file whose stat is `st`. Only when
   * the file's times were past the racy window when it was read: a change in
   * the same clock tick could otherwise keep its identity.
   */
  set(st: DiskStat, map: BlockMap, readAtNs: bigint): void {
    if (readAtNs - (st.mtimeNs > st.ctimeNs ? st.mtimeNs : st.ctimeNs) < RACY_WINDOW_NS) return;
    this.#put(keyOf(st, map.blockSize), map);
  }

  /**
   * A file this node has just written from content checked against `map`,
   * its mtime set to the record's (in the past): any later write moves that
   * mtime, so the identity read after the rename vouches for `map`.
   */
  setWritten(st: DiskStat, map: BlockMap): void {
    this.#put(keyOf(st, map.blockSize), map);
  }

  /** Forget what is known of the file whose stat is `st` (its content did not match). */
  drop(st: DiskStat): void {
    for (const k of [...this.#maps.keys()]) if (k.startsWith(`${st.ino}:`)) this.#maps.delete(k);
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
    if (after === null || keyOf(after, blockSize) !== keyOf(st, blockSize)) return null;
    this.set(after, map, readAt);
    return { map, st: after };
  }

  #put(key: string, map: BlockMap): void {
    this.#maps.delete(key);
    this.#maps.set(key, map);
    if (this.#maps.size > this.#limit) this.#maps.delete(this.#maps.keys().next().value!);
  }
}

function keyOf(st: DiskStat, blockSize: number): string {
  return `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}:${blockSize}`;
}
