import { createHash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { copyFile, open, type FileHandle } from 'node:fs/promises';
import { IntersyncError } from '#core/errors.js';
import { lstatOrNull, type DiskStat } from '#fsio/disk.js';
import { blockHash, blockLength, localOffsets, type BlockMap } from '#fsio/blocks.js';

/** This node's old version of a file, and its block map as the cache vouches for it by stat identity. */
export interface AssemblyBase {
  readonly abs: string;
  readonly map: BlockMap;
  readonly st: DiskStat;
}

export interface AssemblyInput {
  /** The file to write: created here, must not exist. */
  readonly tmp: string;
  readonly path: string;
  /** The content wanted. */
  readonly map: BlockMap;
  readonly base: AssemblyBase | null;
  /** The given blocks of the wanted content from the peer, in the order asked. */
  readonly fetch: (indexes: readonly number[]) => AsyncIterator<Buffer>;
  /**
   * Each block that does not come from the old version at its place is checked against its hash in
   * `map` as it comes, so every block hash of `map` holds. 'blocks': the map's whole-file hash is then taken as the
   * peer's word (a server's content: the server is the authority on it). 'whole': the file written is
   * also read back and hashed whole (an upload from a client, whose map must not name content it is not).
   */
  readonly check: 'blocks' | 'whole';
}

/** Block writes in flight at once. */
const WRITES_IN_FLIGHT = 16;

/**
 * Write the content `map` describes into `tmp`: the blocks this node's old version holds at the same
 * place come with one kernel copy of that version (no bytes through this process), blocks it holds
 * elsewhere are read from it, the rest is fetched and each checked against its block hash; writes go
 * positionally through the thread pool, so this thread keeps reading the peer's answer meanwhile (an
 * `fdatasync` every 64 MiB to start the write-back early measured slower in all: the writes waited).
 * The old version must not change meanwhile (its stat identity is compared at the end): the map vouches
 * for it only as it was.
 * Returns the number of blocks fetched.
 */
export async function assemble(a: AssemblyInput): Promise<number> {
  const { map, base } = a;
  const n = map.blocks.length;
  const same = (i: number): boolean => base !== null && base.map.blockSize === map.blockSize && base.map.blocks[i] === map.blocks[i] &&
    blockLength(base.map, i) === blockLength(map, i);
  const elsewhere = base === null ? new Map<number, number>() : localOffsets(base.map, map);
  const fetchList: number[] = [];
  let copied = 0;
  for (let i = 0; i < n; i++) {
    if (same(i)) copied++;
    else if (!elsewhere.has(i)) fetchList.push(i);
  }
  // Every block fetched, in order: the whole-file hash is taken as they pass, instead of reading the file back.
  const passing = a.check === 'whole' && fetchList.length === n ? createHash('sha256') : null;
  // The kernel copies the old version (copy_file_range) while the peer's answer is on its way.
  const fetched = a.fetch(fetchList);
  const check = (i: number, buf: Buffer): void => {
    if (buf.length !== blockLength(map, i)) throw IntersyncError.PROTOCOL(`block ${i} of ${a.path} has ${buf.length} bytes, expected ${blockLength(map, i)}`);
    if (blockHash(buf) !== map.blocks[i]) throw IntersyncError.PROTOCOL(`block ${i} of ${a.path} does not match the peer's map`);
  };
  let fh: FileHandle | null = null;
  const writes = new Set<Promise<unknown>>();
  const write = async (buf: Buffer, i: number): Promise<void> => {
    while (writes.size >= WRITES_IN_FLIGHT) await Promise.race(writes);
    const p = fh!.write(buf, 0, buf.length, i * map.blockSize).finally(() => writes.delete(p));
    p.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
    writes.add(p);
  };
  try {
    if (copied > 0 && base !== null) {
      await copyFile(base.abs, a.tmp, constants.COPYFILE_EXCL);
      fh = await open(a.tmp, 'r+');
      await fh.chmod(0o600);
      await fh.truncate(map.size);
    } else {
      fh = await open(a.tmp, 'wx', 0o600);
    }
    if (elsewhere.size > copied && base !== null) {
      const src = await open(base.abs, 'r');
      try {
        for (const [i, off] of elsewhere) {
          if (same(i)) continue;
          const buf = Buffer.allocUnsafe(blockLength(map, i));
          const { bytesRead } = await src.read(buf, 0, buf.length, off);
          if (bytesRead !== buf.length) throw IntersyncError.PROTOCOL(`${a.path} changed here while assembled`);
          check(i, buf);
          await write(buf, i);
        }
      } finally {
        await src.close();
      }
    }
    try {
      for (const i of fetchList) {
        const next = await fetched.next();
        if (next.done === true) throw IntersyncError.PROTOCOL(`peer sent too few blocks for ${a.path}`);
        check(i, next.value);
        passing?.update(next.value);
        await write(next.value, i);
      }
    } finally {
      // Ended whether all blocks came or not: the source lets go of its response (and its transfer is over).
      await fetched.return?.();
    }
    await Promise.all(writes);
    const size = (await fh.stat()).size;
    if (size !== map.size) throw IntersyncError.PROTOCOL(`assembled ${a.path} has ${size} bytes, expected ${map.size}`);
  } catch (e) {
    await Promise.allSettled(writes);
    throw e;
  } finally {
    await fh?.close();
  }
  if (base !== null && copied + elsewhere.size > 0) {
    const now = lstatOrNull(base.abs);
    if (now === null || now.ino !== base.st.ino || now.size !== base.st.size || now.mtimeNs !== base.st.mtimeNs || now.ctimeNs !== base.st.ctimeNs) {
      throw IntersyncError.PROTOCOL(`${a.path} changed here while assembled from it`);
    }
  }
  if (a.check === 'whole') {
    let h = passing;
    if (h === null) {
      h = createHash('sha256');
      for await (const chunk of createReadStream(a.tmp, { highWaterMark: 8 << 20 })) h.update(chunk as Buffer);
    }
    if (h.digest('hex') !== map.hash) throw IntersyncError.PROTOCOL(`assembled ${a.path} does not match the peer's hash`);
  }
  return fetchList.length;
}
