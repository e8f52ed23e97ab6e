// Invariant: a file replaced by a rename over it on a client (`mv x e/sub/f`, the old e/sub/f removed there),
// while the server moves the old file elsewhere (`mv e/sub/f a/e`): update beats delete, the old file lives on
// at a/e, the moved one keeps the name e/sub/f, every node converges, no resync.
//
// Fails without objectStep making the old file straight at the end of the server's move when another object
// holds its old name here (`heldHere` in reint/conflict-object.ts): the moved one went beside as
// e/sub/f.conflict-…, for nothing; in chaos s89 seed 9302 (c1) the server then kept the old name and the client
// the conflict name, a resync.
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, changeAway, comeBack, journaled, treeFiles } from '../farm.js';

for (const how of ['disconnected', 'stopped'] as const) {
test(`mv x e/sub/f (over it) on a ${how} client, the server moves e/sub/f to a/e: both live on, no resync`, { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'e/sub'), { recursive: true });
      mkdirSync(join(s, 'a'));
      writeFileSync(join(s, 'e/sub/f'), 'the old one\n');
      writeFileSync(join(s, 'x'), 'the new one\n');
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await changeAway(farm, c, how, [
    ['mv x e/sub/f', () => renameSync(join(c, 'x'), join(c, 'e/sub/f')), 1],
  ]);
  const before = journalState(s).lastTid;
  renameSync(join(s, 'e/sub/f'), join(s, 'a/e'));
  await journaled(s, before);
  await comeBack(farm, c, how);
  await assertSettled(farm.all);
  assert.deepEqual(farm.logMessages(c, /resync|refused|does not apply/i), [], 'no refusal, no resync');
  for (const n of farm.all) {
    assert.deepEqual(Object.fromEntries(treeFiles(n)), { 'a/e': 'the old one\n', 'e/sub/f': 'the new one\n' }, n);
  }
});
}
