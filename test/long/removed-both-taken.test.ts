// Invariant: a directory removed on both sides is gone, and nothing else moves for it: an object this node
// put at its name since (a directory moved there) keeps that name. Chaos s53 seed 9260, c1: the client removed
// gamma/deep, then moved epsilon (holding its own deep) over the now empty gamma; the server removed gamma/deep
// too. The conflict step for the server's removal made the removed directory's row again at gamma/deep, to
// apply the removal to it, and first moved the client's own deep, which held that name here, beside it
// (deep.conflict-…), with no log line. Its mkdir had reached the server already at gamma/deep: the names
// differed for good, and the client resynced ("here at gamma.conflict-…/deep.conflict-…").
//
// Fails without either half of the fix, with a resync: the conflict step's objectStep (removed on both sides: the
// local removal is dropped and the server's journaled as history, nothing on disk moves; without it the
// client's deep went to g/deep.conflict-…), and ConflictResolver#prepare (a removed directory that is not here
// has no entries here; without it g/deep/f, the client's, went beside as an entry the removed one gained).
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Farm, assertSettled, changeAway, comeBack, conflictCopies, journaled, treeFiles } from '../farm.js';
import { journalState } from '../helpers.js';

test('removed on both sides, and its name taken here by a directory moved there: that directory keeps the name', { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'g/deep'), { recursive: true });
      mkdirSync(join(s, 'e'));
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  // The client's own deep, accepted by the server.
  mkdirSync(join(c, 'e/deep'));
  writeFileSync(join(c, 'e/deep/f'), 'made on the client\n');
  await assertSettled(farm.all);
  await changeAway(farm, c, 'disconnected', [
    ['rmdir g/deep', () => rmdirSync(join(c, 'g/deep'))],
    ['mv e g (over the empty g)', () => renameSync(join(c, 'e'), join(c, 'g'))],
  ]);
  const before = journalState(s).lastTid;
  rmdirSync(join(s, 'g/deep'));
  await journaled(s, before);
  await comeBack(farm, c, 'disconnected');
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assert.deepEqual([...treeFiles(d)], [['g/deep/f', 'made on the client\n']], `${d}: the client's deep at g/deep`);
    assert.deepEqual(conflictCopies(d), [], `${d}: no conflict copy`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs/i), [], 'no resync');
});
