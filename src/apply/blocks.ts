import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

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
    blocks.push(createHash('sha256').update(buf).digest('hex').slice(0, 32));
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
