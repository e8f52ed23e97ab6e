// Invariant: a resync keeps a file only when its hard-link grouping here is the server's; equal content is
// not enough. Without linkGroupsApart the resync kept every name whose content equals the server's, and the
// chaos run ended with link groups apart (server {a b c}, client {a} {b c}) that nothing ever joined again.
import assert from 'node:assert/strict';
import { linkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { linkGroupsApart } from '#copy/link-groups.js';
import type { Fid } from '#core/ids.js';
import type { SnapshotEntry } from '#net/peer-client.js';
import { tmpDir } from './helpers.js';

function entry(path: string, linkOf: string | null = null): SnapshotEntry {
  return {
    fid: `feedfacefeedface-${path}` as Fid, path, type: 'file', version: '0x0000000000000001', mode: 0o644, uid: 0, gid: 0, mtimeMs: 1000,
    size: 5, hash: 'ab'.repeat(32), target: null, linkOf,
  };
}

test('linkGroupsApart names the files whose hard-link grouping here differs from the server\'s, and only those', (t) => {
  const d = tmpDir('intersync-links-');
  t.after(d.cleanup);
  for (const n of ['f', 'g', 'a', 'b', 'x', 'y', 'alone']) writeFileSync(join(d.path, n), 'same\n');
  linkSync(join(d.path, 'x'), join(d.path, 'xx')); // x and xx: one inode here and on the server
  linkSync(join(d.path, 'a'), join(d.path, 'ab')); // a and ab: one inode here, the server has them apart
  const entries = [
    entry('f'), entry('g', 'f'), // one inode on the server, two here
    entry('a'), entry('ab'), // two on the server, one here
    entry('x'), entry('xx', 'x'), // the same grouping on both sides
    entry('alone'), entry('y'),
  ];
  const apart = linkGroupsApart(d.path, entries, () => true);
  assert.deepEqual([...apart].sort(), ['a', 'ab', 'f', 'g']);
  // A name that does not hold the entry's object here (a local object made at the name of one removed here)
  // is left out: ab is a local name of a's inode, not the server's ab.
  assert.deepEqual([...linkGroupsApart(d.path, entries, (e) => e.path !== 'ab')].sort(), ['f', 'g']);
});
