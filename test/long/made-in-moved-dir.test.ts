// Invariant: a file made on a client while away, in a directory the client then moved away and whose name it
// then gave to another directory, is no rival of a file the server made meanwhile in that other directory under
// the same name: both keep their names, with no conflict copy and no resync.
//
// Fails without the era check in the conflict step's nameStep (a pending create onto the record's name counts only when
// that name, moved by the pending renames after it, still is the record's name): the client's create "a/f.json"
// (made in the old a, moved to b since) was taken for a rival of the server's e/f.json, which is a/f.json in this
// client's names now, and shipped as "a/f.conflict-….json" while the client kept b/f.json: "state differs … with
// nothing pending", a resync (chaos s58 seed 9265, c3).
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Farm, assertSettled, changeAway, comeBack, conflictCopies, journaled, treeFiles } from '../farm.js';
import { journalState } from '../helpers.js';

for (const how of ['disconnected', 'stopped'] as const) {
  test(`${how}: make a/f.json, move a to b, move e to a; the server makes e/f.json: no conflict, no resync`, { timeout: 120_000 }, async (t) => {
    const farm = await Farm.start(t, {
      clients: 1,
      prepare: (s) => {
        mkdirSync(join(s, 'a'));
        mkdirSync(join(s, 'e'));
      },
    });
    const [c] = farm.clients as [string];
    const s = farm.server;
    await assertSettled(farm.all);
    await changeAway(farm, c, how, [
      ['the create', () => writeFileSync(join(c, 'a', 'f.json'), 'made on the client\n')],
      ['the move of a', () => renameSync(join(c, 'a'), join(c, 'b'))],
      ['the move of e', () => renameSync(join(c, 'e'), join(c, 'a'))],
    ]);
    const before = journalState(s).lastTid;
    writeFileSync(join(s, 'e', 'f.json'), 'made on the server\n');
    await journaled(s, before);
    await comeBack(farm, c, how);
    await assertSettled(farm.all);
    const want = new Map([['a/f.json', 'made on the server\n'], ['b/f.json', 'made on the client\n']]);
    for (const d of farm.all) {
      const files = new Map([...treeFiles(d)].filter(([p]) => !p.startsWith('.intermezzo')));
      assert.deepEqual([...files].sort(), [...want].sort(), `${d}: each file at its name`);
      assert.deepEqual(conflictCopies(d), [], `${d}: no conflict copy`);
    }
    assert.deepEqual(farm.logMessages(c, /resyncing|does not apply|differs/i), [], 'no resync');
  });
}
