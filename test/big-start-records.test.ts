// Issue 19, item 5: the first journaling in runs (bulk-journal.ts) makes the records the reconciler makes for the
// same tree: a small mixed tree (files, empty and nested directories, symlinks, a hard link, modes) journaled by a
// first start (the bulk path), and the same tree moved into the directory of a running node (the reconciler walks
// a new directory: the path every first start took before), give the same records (kind, path, type, mode, size,
// hash, target; in any order) and the same digest, equal to the disk's.
import assert from 'node:assert/strict';
import { chmodSync, linkSync, mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { formatDigest } from '#core/digest.js';
import type { KmlRecord } from '#core/record.js';
import { digestOfDisk } from '#presto/scan.js';
import { records, settle, startNode, tmpDir } from './helpers.js';

function mixed(root: string): void {
  const p = (s: string): string => join(root, s);
  mkdirSync(p('a/b/c'), { recursive: true });
  mkdirSync(p('empty'));
  mkdirSync(p('x'), { mode: 0o700 });
  writeFileSync(p('top.txt'), 'top\n');
  writeFileSync(p('a/f.txt'), 'f\n');
  writeFileSync(p('a/b/g.bin'), Buffer.alloc(1_200_000, 7)); // past the inline size: left to the reconciler (its block map)
  writeFileSync(p('a/b/c/h'), '');
  writeFileSync(p('x/secret'), 's\n');
  chmodSync(p('x/secret'), 0o600);
  writeFileSync(p('a/run.sh'), '#!/bin/sh\n');
  chmodSync(p('a/run.sh'), 0o755);
  for (let i = 0; i < 40; i++) writeFileSync(p(`a/b/n${i}`), `n${i}\n`);
  symlinkSync('../top.txt', p('a/to-top'));
  symlinkSync('nowhere', p('x/dangling'));
  symlinkSync('a/b', p('dirlink'));
  mkdirSync(p('a/b/c/deep'));
  linkSync(p('a/f.txt'), p('a/b/c/deep/f-again')); // a hard link, deeper than its first name
}

function shape(recs: readonly KmlRecord[]): string[] {
  return recs.map((r) => `${r.kind} ${r.path} ${r.mode.toString(8)} ${r.size ?? '-'} ${r.hash ?? '-'} ${r.target ?? '-'}`).sort();
}

test('the first journaling in runs makes the same records and digest as the reconciler', async (t) => {
  const box = tmpDir('intersync-bigrec-');
  const logs = tmpDir('intersync-bigrec-logs-');
  t.after(() => {
    box.cleanup();
    logs.cleanup();
  });
  // Bulk: the tree is there before the first start.
  const bulk = join(box.path, 'bulk');
  mkdirSync(join(bulk, 'tree'), { recursive: true });
  mixed(join(bulk, 'tree'));
  const a = await startNode(bulk, logs.path);
  let bulkRecs: KmlRecord[];
  let bulkDigest: string;
  try {
    await settle(a);
    bulkRecs = records(a);
    bulkDigest = formatDigest(a.db.digest);
  } finally {
    await a.stop();
  }
  // Reconciler: the same tree made beside, then moved into the directory a running node watches.
  const rec = join(box.path, 'rec');
  const staging = join(box.path, 'staging');
  mkdirSync(rec);
  mkdirSync(staging);
  mixed(staging);
  const b = await startNode(rec, logs.path);
  let recRecs: KmlRecord[];
  let recDigest: string;
  try {
    renameSync(staging, join(rec, 'tree'));
    await settle(b);
    recRecs = records(b);
    recDigest = formatDigest(b.db.digest);
  } finally {
    await b.stop();
  }
  assert.deepEqual(shape(bulkRecs), shape(recRecs));
  assert.ok(bulkRecs.some((r) => r.kind === 'link'), 'the hard link is a link record');
  assert.equal(bulkDigest, recDigest);
  assert.equal(bulkDigest, formatDigest((await digestOfDisk(bulk)).digest));
});
