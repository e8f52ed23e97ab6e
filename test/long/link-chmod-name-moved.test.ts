// Invariant: a chmod made on a client while away through a hard-linked file, which then removes the name it
// chmodded through (or keeps it), while the server moves that name elsewhere or removes it, reaches every name of the inode
// on every node, with no resync: the mode is the inode's, not a name's. Chaos s96 seed 9366 (c1): chmod 640
// through epsilon/f.json and `rm epsilon/f.json` while away, the server's `mv epsilon/f.json epsilon/sub/g.txt`;
// the client's chmod was dropped with the removal it conflicted with, its disk and rows kept 640 under the
// inode's other names with no record to say so, and its digest differed from the server's: a resync. The first
// and the fifth case fail without the fix.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, linkSync, lstatSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Farm, assertSettled, changeAway, comeBack, journaled } from '../farm.js';
import { journalState } from '../helpers.js';

// `server`: what the server does to f meanwhile, moves it or removes it (then the client's removal meets the
// server's: the chmod went with the dropped removal the same way).
const cases = [
  { how: 'disconnected', through: 'f', remove: true, server: 'move' },
  { how: 'stopped', through: 'f', remove: true, server: 'move' },
  { how: 'disconnected', through: 'g', remove: true, server: 'move' },
  { how: 'disconnected', through: 'f', remove: false, server: 'move' },
  { how: 'disconnected', through: 'f', remove: true, server: 'remove' },
  { how: 'stopped', through: 'f', remove: true, server: 'remove' },
] as const;

for (const { how, through, remove, server } of cases) {
  const did = server === 'move' ? 'moves f to sub/h' : 'removes f';
  test(`${how}: f and g one file; chmod 600 through ${through}${remove ? ' and rm f' : ''} on the client; the server ${did}; every name is 600 everywhere`, { timeout: 120_000 }, async (t) => {
    const farm = await Farm.start(t, {
      clients: 1,
      prepare: (s) => {
        mkdirSync(join(s, 'sub'));
        writeFileSync(join(s, 'f'), 'one inode, two names\n', { mode: 0o644 });
        linkSync(join(s, 'f'), join(s, 'g'));
      },
    });
    const [c] = farm.clients as [string];
    const s = farm.server;
    await assertSettled(farm.all);
    await changeAway(farm, c, how, [
      ['the chmod', () => chmodSync(join(c, through), 0o600)],
      ...(remove ? [['the removal of f', () => rmSync(join(c, 'f'))] as [string, () => void]] : []),
    ]);
    const before = journalState(s).lastTid;
    if (server === 'move') renameSync(join(s, 'f'), join(s, 'sub', 'h'));
    else rmSync(join(s, 'f'));
    await journaled(s, before);
    await comeBack(farm, c, how);
    await assertSettled(farm.all);
    assert.deepEqual(farm.logMessages(c, /resyncing|does not apply/i), [], 'no resync');
    const names = ['g', 'sub/h'].filter((n) => existsSync(join(s, n)));
    assert.ok(names.includes('g'), 'g is left on the server');
    for (const d of farm.all) {
      assert.equal(existsSync(join(d, 'f')), false, `${d}: f is gone`);
      for (const n of names) assert.equal(lstatSync(join(d, n)).mode & 0o777, 0o600, `${d}: ${n} has the client's mode`);
      if (names.length === 2) assert.equal(lstatSync(join(d, 'g')).ino, lstatSync(join(d, 'sub/h')).ino, `${d}: g and sub/h are one inode`);
    }
  });
}
