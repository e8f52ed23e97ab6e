// Invariant: a local move the conflict step redoes after the server's record (a move here and a write there
// both survive) puts the object where it is here now, also when the directory it was moved into moved on since:
// the move ships, the server's write is in it, on every node, with no conflict copy and no resync.
// Found by the chaos run, seed 9208, client c3 (TID 0x67), and seed 9213, client c2 (TID 0x3f): a file moved
// into a directory that was then moved (c3: `mv delta/sub/e epsilon/h`, then `mv epsilon alpha/sub`), written
// on the server meanwhile. The step redid the move to the name the LML's rename record gave it at its time
// (epsilon.conflict-…-40/h, the directory's name then), where no directory was any more: "cannot redo a local
// change after a conflict | ENOENT: … rename '…/delta/sub/e' -> '…/epsilon.conflict-69acb949b0c5705e-40/h'".
// The local move was lost: the file stayed at the server's name.
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from './helpers.js';
import { Farm, assertSettled, conflictCopies, disconnect, eventually, journaled, readOrNull, reconnect, treeFiles } from './farm.js';

test('a client off line moves f into d, then d to e; the server writes f: the move is redone to e/g, with the server\'s content', { timeout: 120_000 }, async (t) => {
  // Fails without the fix: the conflict step redid "mv f d/g" (the rename record's name at its time), d being
  // e by then: ENOENT, "cannot redo a local change after a conflict", and f stayed at f on every node.
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'd'));
      writeFileSync(join(s, 'f'), 'made on the server\n');
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await disconnect(farm, c);
  renameSync(join(c, 'f'), join(c, 'd/g'));
  await eventually('the client journals the move of f', () => journalState(c).lml, (n) => n >= 1);
  renameSync(join(c, 'd'), join(c, 'e'));
  await eventually('the client journals the move of d', () => journalState(c).lml, (n) => n >= 2);
  const before = journalState(s).lastTid;
  writeFileSync(join(s, 'f'), 'written on the server\n');
  await journaled(s, before);
  reconnect(c);
  const why = (): string => JSON.stringify(farm.logMessages(c, /refused|resync|does not apply|conflict|redo/));
  await eventually('the client\'s moves reach the server', () => readOrNull(join(s, 'e/g')), (x) => x !== null, 20_000, why);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assert.deepEqual([...treeFiles(d)], [['e/g', 'written on the server\n']], `${d}: e/g alone, with the server's write (client: ${why()})`);
    assert.deepEqual(conflictCopies(d), [], `${d}: no conflict copy`);
  }
  assert.deepEqual(farm.logMessages(c, /redo|resync|does not apply/), [], `no failed redo, no refusal, no resync: ${why()}`);
  assert.equal(journalState(c).lml, 0, 'the client\'s LML is empty');
});
