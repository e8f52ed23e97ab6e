// Invariant: a client that links a name to a file, writes the file and then removes every name of it while away
// never empties the file on the server, where the server moved and wrote it meanwhile: that write (acknowledged)
// is kept, at its name, on every node.
//
// The disconnected variant fails without the reintegrator dropping a write whose content is gone here with its object (no name of its
// inode left, a later record removes it): the write through the new name was sent with empty content, the server
// took it as made against the link's own version and emptied the inode under every name it has there, the
// other node's acknowledged write lost (chaos s58 seed 9272, c2: gamma/d.md linked to delta/c, delta/c written
// and removed, gamma/d.md removed; c3's writes of the inode on the server were emptied).
import assert from 'node:assert/strict';
import { linkSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Farm, assertSettled, changeAway, comeBack, journaled, treeFiles } from '../farm.js';
import { journalState } from '../helpers.js';

for (const how of ['disconnected', 'stopped'] as const) {
  test(`${how}: link y to x, write x, remove x and y; the server moves x to z and writes z: its write is kept`, { timeout: 120_000 }, async (t) => {
    const farm = await Farm.start(t, { clients: 1, prepare: (s) => writeFileSync(join(s, 'x'), 'made on the server\n') });
    const [c] = farm.clients as [string];
    const s = farm.server;
    await assertSettled(farm.all);
    await changeAway(farm, c, how, [
      ['the link', () => linkSync(join(c, 'x'), join(c, 'y'))],
      ['the write', () => writeFileSync(join(c, 'x'), 'written on the client\n')],
      ['the removal of x', () => unlinkSync(join(c, 'x'))],
      ['the removal of y', () => unlinkSync(join(c, 'y'))],
    ]);
    let before = journalState(s).lastTid;
    renameSync(join(s, 'x'), join(s, 'z'));
    await journaled(s, before);
    before = journalState(s).lastTid;
    writeFileSync(join(s, 'z'), 'written on the server\n');
    await journaled(s, before);
    await comeBack(farm, c, how);
    await assertSettled(farm.all);
    for (const d of farm.clients) assert.deepEqual([...treeFiles(d)].sort(), [...treeFiles(s)].sort(), `${d}: as on the server`);
    assert.equal(readFileSync(join(s, 'z'), 'utf8'), 'written on the server\n', `z holds the server's write: ${JSON.stringify([...treeFiles(s)])}`);
    assert.deepEqual(farm.logMessages(c, /resyncing|does not apply/i), [], 'no resync');
  });
}
