// Invariant: a file made on a client while away, in a directory the client then moved, ends at the same name on
// every node when the server gave the file's first name to another file meanwhile: the client's file is kept
// beside under a conflict name, there and here alike, with no resync.
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Farm, assertSettled, changeAway, comeBack, journaled, treeFiles } from '../farm.js';
import { journalState } from '../helpers.js';

for (const how of ['disconnected', 'stopped'] as const) {
  test(`${how}: make d/b.txt, move d to e; the server makes its own d/b.txt; both kept, the same names everywhere`, { timeout: 120_000 }, async (t) => {
    const farm = await Farm.start(t, { clients: 1, prepare: (s) => mkdirSync(join(s, 'd')) });
    const [c] = farm.clients as [string];
    const s = farm.server;
    await assertSettled(farm.all);
    await changeAway(farm, c, how, [
      ['the create', () => writeFileSync(join(c, 'd', 'b.txt'), 'made on the client\n')],
      ['the move', () => renameSync(join(c, 'd'), join(c, 'e'))],
    ]);
    const before = journalState(s).lastTid;
    writeFileSync(join(s, 'd', 'b.txt'), 'made on the server\n');
    await journaled(s, before);
    await comeBack(farm, c, how);
    await assertSettled(farm.all);
    const onServer = treeFiles(s);
    assert.deepEqual([...treeFiles(c)].sort(), [...onServer].sort(), 'the client holds what the server holds, at the same names');
    assert.ok([...onServer.values()].includes('made on the client\n'), `the client's file is kept: ${JSON.stringify([...onServer])}`);
    assert.ok([...onServer.values()].includes('made on the server\n'), 'and the server\'s');
    assert.deepEqual(farm.logMessages(c, /resyncing|does not apply/i), [], 'no resync');
  });
}
