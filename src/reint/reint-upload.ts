import { closeSync, openSync, readSync } from 'node:fs';
import { IntersyncError } from '#core/errors.js';
import type { LmlRecord } from '#core/record.js';
import { blockLength, missingBlocks, type BlockMap } from '#fsio/blocks.js';
import { encodeFrame, helloFrame } from '#net/protocol/frames.js';
import { BODY_BUDGET_S, bodyLimit } from '#net/rate-limit.js';
import type { ReintegratorDeps } from './reint-types.js';

/** Bytes of block frames an upload writes at once. */
const UPLOAD_RUN_BYTES = 4 << 20;

type UploadDeps = Pick<ReintegratorDeps, 'client' | 'log' | 'node' | 'transfers'>;

/** Send the server the blocks of a large file it lacks, compared with its own version of the object. */
export async function upload(d: UploadDeps, r: LmlRecord, abs: string, map: BlockMap): Promise<void> {
  let theirs: BlockMap | null = null;
  try {
    theirs = await d.client.blockMap(r.fid);
  } catch (e) {
    if (!(e instanceof IntersyncError) || e.code !== 'CONTENT_GONE') throw e;
  }
  const need = missingBlocks(theirs, map);
  // Opened before the request: a file moved away meanwhile is a local matter (retried once capture caught up),
  // not a failure of the server.
  let fd: number;
  try {
    fd = openSync(abs, 'r');
  } catch (e) {
    throw new IntersyncError('IO', `content of ${r.path} is not readable: ${(e as Error).message}`, { retriable: true, hint: 'retried once capture has caught up' });
  }
  const total = need.reduce((n, i) => n + blockLength(map, i), 0);
  const limit = d.client.bwlimit ?? null;
  if (bodyLimit(limit, total) !== limit) {
    d.log.warn({ path: r.path, bytes: total, bwlimit: limit?.rate, budgetS: BODY_BUDGET_S }, 'upload faster than the bandwidth limit: at the limit it would outlast the server\'s request timeout');
  }
  const t = d.transfers?.start('up', r.newPath ?? r.path, map.size, total);
  const head = [helloFrame({ node: d.node }), encodeFrame('content', { map })];
  // The transfer counts the bytes the request body took (at the bandwidth limit's pace), the head's aside.
  let skip = head.reduce((n, b) => n + b.length, 0);
  const onSent = (n: number): void => {
    const h = Math.min(skip, n);
    skip -= h;
    t?.add(n - h);
  };
  const frames = async function* (): AsyncGenerator<Buffer> {
    yield* head;
    // Frames go out 4 MiB at a time: one write per block made each a wake-up of both ends.
    let run: Buffer[] = [];
    let runBytes = 0;
    for (const i of need) {
      const len = blockLength(map, i);
      const buf = Buffer.allocUnsafe(len);
      if (readSync(fd, buf, 0, len, i * map.blockSize) !== len) throw new IntersyncError('IO', `${r.path} shrank while uploaded`, { retriable: true, hint: 'retried once capture has caught up' });
      run.push(encodeFrame('block', { index: i }, buf));
      runBytes += len;
      if (runBytes >= UPLOAD_RUN_BYTES) {
        yield Buffer.concat(run);
        run = [];
        runBytes = 0;
      }
    }
    if (run.length > 0) yield Buffer.concat(run);
    yield encodeFrame('end');
  };
  try {
    await d.client.upload(r.fid, frames(), { bytes: total, onSent });
  } finally {
    t?.end();
    closeSync(fd);
  }
  d.log.info({ path: r.path, blocks: map.blocks.length, sent: need.length }, 'uploaded');
}
