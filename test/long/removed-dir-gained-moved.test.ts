// Invariant: a client makes a file in d/sub, then moves d to e, while away; the server removes d/sub (empty
// there). The file the directory gained here is kept beside it (e/a.conflict-…), and the pending record that
// made it names that same place on the server: every node has the file there, once, and no resync.
//
// A guard, written while tracing chaos s70 seed 9247 (c2: "state differs … here at gamma.conflict-…/deep/
// a.conflict-…", a record naming a place beside a removed directory other than the one the object had here):
// this simpler case passes as it is; 9247's cause (more moves and conflict steps around it) is not found yet.
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, changeAway, comeBack, journaled, treeFiles } from '../farm.js';

for (const how of ['disconnected', 'stopped'] as const) {
  test(`${how}: the client makes d/sub/a then moves d to e; the server removes d/sub; a is beside e/sub's place on every node, no resync`, { timeout: 120_000 }, async (t) => {
    const farm = await Farm.start(t, { clients: 1, prepare: (s) => mkdirSync(join(s, 'd/sub'), { recursive: true }) });
    const [c] = farm.clients as [string];
    const s = farm.server;
    await assertSettled(farm.all);
    await changeAway(farm, c, how, [
      ['the new file', () => writeFileSync(join(c, 'd/sub/a'), 'made on the client\n')],
      ['the move', () => renameSync(join(c, 'd'), join(c, 'e'))],
    ]);
    const before = journalState(s).lastTid;
    rmdirSync(join(s, 'd/sub'));
    await journaled(s, before);
    await comeBack(farm, c, how);
    await assertSettled(farm.all);
    const trees = farm.all.map((dir) => [...treeFiles(dir)].sort());
    for (const [i, dir] of farm.all.entries()) {
      assert.deepEqual(trees[i], trees[0], `${dir} has the server's tree`);
      const kept = [...treeFiles(dir)].filter(([, v]) => v === 'made on the client\n').map(([k]) => k);
      assert.equal(kept.length, 1, `the client's file once on ${dir}: ${JSON.stringify(kept)}`);
    }
    assert.deepEqual(farm.logMessages(c, /resyncing|does not apply/i), [], 'no resync');
  });
}
