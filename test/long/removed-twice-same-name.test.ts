// Invariant: two directories removed on a client at one name (`rmdir e`, then `mv d e` and `rmdir e`), while the
// server made d/g in the second: update beats delete for that one, d (the client's e) comes back with g in it,
// the other stays removed, every node converges, no resync.
//
// Fails without parentStep preferring the removal of the record's own directory (by fid) among the removals at
// that name: it took the first one, the other directory's, brought that one back at e with the server's g in it,
// and shipped the move of d under a conflict name; g was in one directory here and in another on the server
// for good ("here at e/g", a resync; chaos s85 seed 9335, c1: epsilon/sub removed twice, the server's
// alpha.conflict-…/sub/g.txt at epsilon/sub/g.txt). The stopped case is a guard: the start-up scan journals what
// it finds (d and e removed), not the steps, and d comes back at its name.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, changeAway, comeBack, journaled } from '../farm.js';

for (const how of ['disconnected', 'stopped'] as const) {
test(`rmdir e; mv d e; rmdir e on a ${how} client, the server makes d/g: d is back with g, at e when the move is known, no resync`, { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'd'));
      mkdirSync(join(s, 'e'));
      writeFileSync(join(s, 'other'), 'stays\n');
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await changeAway(farm, c, how, [
    ['rmdir e', () => rmdirSync(join(c, 'e')), 1],
    ['mv d e', () => renameSync(join(c, 'd'), join(c, 'e')), 1],
    ['rmdir e', () => rmdirSync(join(c, 'e')), 1],
  ]);
  const before = journalState(s).lastTid;
  writeFileSync(join(s, 'd/g'), 'made on the server\n');
  await journaled(s, before);
  await comeBack(farm, c, how);
  await assertSettled(farm.all);
  assert.deepEqual(farm.logMessages(c, /resync|refused|does not apply/i), [], 'no refusal, no resync');
  // Stopped, the start-up scan finds d and e gone, two removals: d comes back at its name.
  const at = how === 'disconnected' ? 'e' : 'd';
  for (const n of farm.all) {
    assert.deepEqual(readdirSync(n).filter((x) => !x.startsWith('.')).sort(), [at, 'other'], `${n}: ${at} and other, nothing else`);
    assert.equal(readFileSync(join(n, at, 'g'), 'utf8'), 'made on the server\n', `${n}: the server's g is in ${at}`);
  }
});
}
