// Invariant: a client that empties a directory and moves another one over it while away, while the server
// writes the file the client removed from it, ends with the same tree as the server, the server's write kept
// (update beats delete), and no resync.
//
// A guard, not a reproduction (this form converges): the simplest form of chaos s58 seed 9268, c3: `rm beta/sub/b.txt` (one of two names), then `mv -T delta/sub beta/sub` over the
// emptied directory, off line; the server wrote beta/sub/b.txt. c3 set its own delta/sub/b.txt aside under a
// conflict name the server never gave it: "state differs … here at", a resync.
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Farm, assertSettled, changeAway, comeBack, journaled, treeFiles } from '../farm.js';
import { journalState } from '../helpers.js';

for (const how of ['disconnected', 'stopped'] as const) {
  test(`${how}: rm beta/sub/b.txt, mv -T delta/sub beta/sub; the server writes beta/sub/b.txt: its write kept, one tree`, { timeout: 120_000 }, async (t) => {
    const farm = await Farm.start(t, {
      clients: 1,
      prepare: (s) => {
        mkdirSync(join(s, 'beta', 'sub'), { recursive: true });
        mkdirSync(join(s, 'delta', 'sub'), { recursive: true });
        writeFileSync(join(s, 'beta', 'sub', 'b.txt'), 'beta b on the server\n');
        writeFileSync(join(s, 'delta', 'sub', 'b.txt'), 'delta b on the server\n');
      },
    });
    const [c] = farm.clients as [string];
    const s = farm.server;
    await assertSettled(farm.all);
    await changeAway(farm, c, how, [
      ['the removal', () => unlinkSync(join(c, 'beta', 'sub', 'b.txt'))],
      ['the move over the empty directory', () => renameSync(join(c, 'delta', 'sub'), join(c, 'beta', 'sub')), 2],
    ]);
    const before = journalState(s).lastTid;
    writeFileSync(join(s, 'beta', 'sub', 'b.txt'), 'written on the server\n');
    await journaled(s, before);
    await comeBack(farm, c, how);
    await assertSettled(farm.all);
    const onServer = treeFiles(s);
    assert.ok([...onServer.values()].includes('written on the server\n'), `the server's write is kept: ${JSON.stringify([...onServer])}`);
    assert.ok([...onServer.values()].includes('delta b on the server\n'), 'and the moved file');
    assert.deepEqual([...treeFiles(c)].sort(), [...onServer].sort(), 'the client holds what the server holds, at the same names');
    assert.deepEqual(farm.logMessages(c, /resyncing|does not apply/i), [], 'no resync');
  });
}
