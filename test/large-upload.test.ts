// Invariant: a large file a client uploads is written once on the server and read by it at most once:
// the staged upload is moved into place when its record comes (not copied, and not left behind in the
// staging folder), and the server answers the next block-map request for it from the map it checked
// while receiving, without reading the file again; the content is the client's, on both nodes.
//
// Fails without the change (checked with src/ at the commit before it): the staged upload stayed in
// `tmp/` after its record (copied into place), and the server read the whole file again to answer the
// block map of the client's next change (`reads` was 1).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BLOCK_SIZE } from '#fsio/blocks.js';
import { lstatOrNull } from '#fsio/disk.js';
import { inProcessPair, sleep, waitConverged } from './helpers.js';

test('an uploaded large file is moved into place, and its map answers the next delta without a read', { timeout: 180_000 }, async (t) => {
  const { node, srv, cli } = await inProcessPair(t, 'intersync-upload-');
  // Reads of a whole file by the server's block-map cache: a map asked for a file whose identity it does not know.
  const cache = node.apply.blockMaps;
  const of = cache.of.bind(cache);
  let reads = 0;
  cache.of = async (abs, blockSize) => {
    const st = lstatOrNull(abs);
    if (st !== null && cache.get(st, blockSize) === undefined) reads++;
    return of(abs, blockSize);
  };

  /** Until the server holds `want` at big.bin and both journals agree. */
  const arrived = async (want: Buffer): Promise<void> => {
    for (let i = 0; i < 900; i++) {
      let here: Buffer | null = null;
      try {
        here = readFileSync(join(srv, 'big.bin'));
      } catch {
        // not yet
      }
      if (here?.equals(want) === true) return waitConverged([srv, cli], 90_000);
      await sleep(100);
    }
    assert.fail('the client\'s content never reached the server');
  };

  const content = randomBytes(24 * BLOCK_SIZE + 5);
  writeFileSync(join(cli, 'big.bin'), content);
  await arrived(content);
  assert.ok(readFileSync(join(srv, 'big.bin')).equals(content));
  assert.deepEqual(readdirSync(node.paths.tmp).filter((n) => n.startsWith('staged-')), [], 'the staged upload was moved into place');

  reads = 0;
  const fd = openSync(join(cli, 'big.bin'), 'r+');
  const patch = randomBytes(1000);
  writeSync(fd, patch, 0, patch.length, 10 * BLOCK_SIZE + 77);
  closeSync(fd);
  patch.copy(content, 10 * BLOCK_SIZE + 77);
  await arrived(content);
  assert.equal(reads, 0, 'the server answered the block map of its version without reading it');
});
