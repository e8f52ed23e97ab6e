// Invariant: a large file assembled from a block delta holds exactly the content its map names, whatever
// mix of the old version's blocks (copied in place by the kernel, or read from another place) and fetched
// blocks it took; only the blocks the old version lacks are fetched; a block that does not match its map,
// a map whose whole-file hash lies (when the file is hashed whole), or an old version that changes while
// it is used, fail the assembly instead of placing wrong content.
//
// These guard `apply/assemble.ts`, which replaced the apply path's read-hash-write loop (every block of
// the old version read through this process and the file hashed whole on this thread); the old loop had
// no kernel copy to get wrong, so there is no earlier behaviour for them to fail against.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { assemble, type AssemblyInput } from '#apply/assemble.js';
import { BLOCK_SIZE, blockMapOf, type BlockMap } from '#fsio/blocks.js';
import { lstatOrNull } from '#fsio/disk.js';
import { tmpDir } from './helpers.js';

interface Setup {
  dir: string;
  oldFile: string;
  newContent: Buffer;
  base: NonNullable<AssemblyInput['base']>;
  map: BlockMap;
}

async function setup(t: import('node:test').TestContext, oldContent: Buffer, newContent: Buffer): Promise<Setup> {
  const d = tmpDir('intersync-assemble-');
  t.after(() => d.cleanup());
  const oldFile = join(d.path, 'old.bin');
  writeFileSync(oldFile, oldContent);
  utimesSync(oldFile, new Date(1_600_000_000_000), new Date(1_600_000_000_000));
  const newFile = join(d.path, 'new.bin');
  writeFileSync(newFile, newContent);
  return { dir: d.path, oldFile, newContent, base: { abs: oldFile, map: await blockMapOf(oldFile), st: lstatOrNull(oldFile)! }, map: await blockMapOf(newFile) };
}

/** A peer that serves blocks of `content` and notes which it was asked for. */
function peer(content: Buffer, map: BlockMap, asked: number[][], tamper?: (i: number, b: Buffer) => Buffer): AssemblyInput['fetch'] {
  return (indexes) => {
    asked.push([...indexes]);
    return (async function* () {
      for (const i of indexes) {
        const b = Buffer.from(content.subarray(i * map.blockSize, Math.min(content.length, (i + 1) * map.blockSize)));
        yield tamper === undefined ? b : tamper(i, b);
      }
    })();
  };
}

test('a change in the middle fetches only the blocks it touches, and the result is the new content', async (t) => {
  const old = randomBytes(40 * BLOCK_SIZE + 777);
  const changed = Buffer.from(old);
  randomBytes(BLOCK_SIZE).copy(changed, 20 * BLOCK_SIZE + 4099); // unaligned: two blocks touched
  const s = await setup(t, old, changed);
  const asked: number[][] = [];
  const tmp = join(s.dir, 'out');
  for (const check of ['blocks', 'whole'] as const) {
    const out = `${tmp}-${check}`;
    const n = await assemble({ tmp: out, path: 'big.bin', map: s.map, base: s.base, check, fetch: peer(changed, s.map, asked) });
    assert.equal(n, 2);
    assert.deepEqual(asked.at(-1), [20, 21]);
    assert.ok(readFileSync(out).equals(changed), `content right (${check})`);
  }
});

test('content moved within the file comes from the old version, and a new file with no old version is fetched whole', async (t) => {
  const old = randomBytes(16 * BLOCK_SIZE);
  const shifted = Buffer.concat([randomBytes(BLOCK_SIZE), old.subarray(0, 10 * BLOCK_SIZE), randomBytes(100)]); // one block inserted at the front
  const s = await setup(t, old, shifted);
  const asked: number[][] = [];
  const n = await assemble({ tmp: join(s.dir, 'a'), path: 'big.bin', map: s.map, base: s.base, check: 'blocks', fetch: peer(shifted, s.map, asked) });
  assert.deepEqual(asked[0], [0, 11], 'only the inserted block and the new tail');
  assert.equal(n, 2);
  assert.ok(readFileSync(join(s.dir, 'a')).equals(shifted));
  const m = await assemble({ tmp: join(s.dir, 'b'), path: 'big.bin', map: s.map, base: null, check: 'blocks', fetch: peer(shifted, s.map, asked) });
  assert.equal(m, s.map.blocks.length);
  assert.ok(readFileSync(join(s.dir, 'b')).equals(shifted));
});

test('a block that does not match its map, a whole hash that lies, and an old version changed meanwhile all fail', async (t) => {
  const old = randomBytes(12 * BLOCK_SIZE);
  const changed = Buffer.from(old);
  changed.fill(1, 5 * BLOCK_SIZE, 5 * BLOCK_SIZE + 10);
  const s = await setup(t, old, changed);
  const bad = (i: number, b: Buffer): Buffer => (i === 5 ? Buffer.from(b).fill(2, 0, 1) : b);
  await assert.rejects(assemble({ tmp: join(s.dir, 'x'), path: 'big.bin', map: s.map, base: s.base, check: 'blocks', fetch: peer(changed, s.map, [], bad) }),
    (e: { code?: string }) => e.code === 'PROTOCOL', 'a wrong block');
  const lying = { ...s.map, hash: s.base.map.hash };
  await assemble({ tmp: join(s.dir, 'y1'), path: 'big.bin', map: lying, base: s.base, check: 'blocks', fetch: peer(changed, s.map, []) }); // the authority's word
  await assert.rejects(assemble({ tmp: join(s.dir, 'y2'), path: 'big.bin', map: lying, base: s.base, check: 'whole', fetch: peer(changed, s.map, []) }),
    (e: { code?: string }) => e.code === 'PROTOCOL', 'a whole hash that lies, from a peer that is no authority');
  const fetchThenTouch: AssemblyInput['fetch'] = (indexes) => {
    const inner = peer(changed, s.map, [])(indexes);
    return { next: async () => {
      writeFileSync(s.oldFile, Buffer.from(old).fill(9, 0, 1)); // a local write to the old version while blocks come
      return inner.next();
    } };
  };
  await assert.rejects(assemble({ tmp: join(s.dir, 'z'), path: 'big.bin', map: s.map, base: s.base, check: 'blocks', fetch: fetchThenTouch }),
    (e: { code?: string }) => e.code === 'PROTOCOL', 'the old version changed while used');
});
