// Invariant: a cached block map is only ever found for the file version it describes: a large file is
// hashed once per version on a node, and a change (or a change within the racy window) is never served
// from the cache.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { openSync, utimesSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BLOCK_SIZE, BlockMapCache, blockMapOf } from '#fsio/blocks.js';
import { lstatOrNull } from '#fsio/disk.js';
import { sleep, tmpDir } from './helpers.js';

function bigFile(t: import('node:test').TestContext): string {
  const d = tmpDir('intersync-blocks-');
  t.after(() => d.cleanup());
  const f = join(d.path, 'big.bin');
  writeFileSync(f, randomBytes(3 * BLOCK_SIZE + 1000));
  utimesSync(f, new Date(1_600_000_000_000), new Date(1_600_000_000_000)); // mtime settled; ctime is now
  return f;
}

test('a file is hashed once per version, and a change is never served from the cache', async (t) => {
  const f = bigFile(t);
  await sleep(80); // past the racy window of its ctime
  const cache = new BlockMapCache();
  const first = await cache.of(f);
  assert.ok(first !== null);
  assert.deepEqual(first.map, await blockMapOf(f), 'the map is the file\'s');
  const again = await cache.of(f);
  assert.equal(again?.map, first.map, 'the second ask is answered from the cache');

  // Rewrite one block in place, same size, and put the mtime back: the ctime (and so the identity) moves.
  const fd = openSync(f, 'r+');
  writeSync(fd, randomBytes(100), 0, 100, BLOCK_SIZE + 5);
  closeSync(fd);
  utimesSync(f, new Date(1_600_000_000_000), new Date(1_600_000_000_000));
  const changed = await cache.of(f);
  assert.ok(changed !== null);
  assert.notEqual(changed.map.hash, first.map.hash, 'the new content is read, not the cached map');
  assert.deepEqual(changed.map, await blockMapOf(f));
  assert.notEqual(changed.map.blocks[1], first.map.blocks[1]);
  assert.equal(changed.map.blocks[0], first.map.blocks[0]);
});

test('a map read within the racy window is not remembered; one written by this node is, until dropped', async (t) => {
  const f = bigFile(t);
  const cache = new BlockMapCache();
  const a = await cache.of(f); // ctime just now: a write in the same tick could keep the identity
  const b = await cache.of(f);
  assert.ok(a !== null && b !== null);
  assert.notEqual(b.map, a.map, 'read again, not served from the cache');
  assert.deepEqual(b.map, a.map);

  const st = lstatOrNull(f)!;
  cache.setWritten(st, a.map);
  assert.equal(cache.get(st), a.map, 'a file this node wrote from a checked map is known at once');
  cache.drop(st);
  assert.equal(cache.get(st), undefined, 'dropped');
});

test('the cache keeps at most its limit, forgetting the least recently stored', async (t) => {
  const f = bigFile(t);
  await sleep(80);
  const cache = new BlockMapCache(2);
  const st = lstatOrNull(f)!;
  const map = await blockMapOf(f);
  const other = (ino: string): typeof st => ({ ...st, ino });
  cache.setWritten(other('1'), map);
  cache.setWritten(other('2'), map);
  cache.setWritten(other('3'), map);
  assert.equal(cache.get(other('1')), undefined);
  assert.equal(cache.get(other('2')), map);
  assert.equal(cache.get(other('3')), map);
});
