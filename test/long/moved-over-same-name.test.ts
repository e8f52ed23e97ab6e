// Invariant: a directory moved on a client over an empty directory (mv e d, rename(2) replaces the empty d),
// while the server made a file in d with the name of a file in e: update beats delete, the server's d comes
// back with its file, e goes beside with its own file of that name, every node converges, no resync. Fails
// without the conflict step's nameStep leaving the name alone when the record's directory (by fid) is not here: the
// client's file in e, at the same name, was set beside as if the two were one name's rivals, and the client
// then held e's file under a conflict name the server never gave it ("state differs … with nothing pending", a
// resync; chaos s38 seed 9221, c2).
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, changeAway, comeBack, journaled } from '../farm.js';

for (const how of ['disconnected', 'stopped'] as const) {
test(`e (with e/g) moved over an empty d on a ${how} client, the server makes d/g: d is back with its g, e beside with its own, no resync`, { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'd'));
      mkdirSync(join(s, 'e'));
      writeFileSync(join(s, 'e/g'), 'e\'s g\n');
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await changeAway(farm, c, how, [['mv e d', () => renameSync(join(c, 'e'), join(c, 'd'))]]);
  const before = journalState(s).lastTid;
  writeFileSync(join(s, 'd/g'), 'the server\'s g\n');
  await journaled(s, before);
  await comeBack(farm, c, how);
  await assertSettled(farm.all);
  assert.deepEqual(farm.logMessages(c, /resync|refused/i), [], 'no refusal, no resync');
  for (const d of farm.all) {
    assert.deepEqual(readdirSync(join(d, 'd')), ['g'], `${d}: d is the server's, with its g alone`);
    assert.equal(readFileSync(join(d, 'd/g'), 'utf8'), 'the server\'s g\n', `${d}: d/g is the server's`);
    const aside = readdirSync(d).filter((n) => n.startsWith('d.conflict-'));
    assert.equal(aside.length, 1, `${d}: e is beside d (${JSON.stringify(readdirSync(d))})`);
    assert.deepEqual(readdirSync(join(d, aside[0]!)), ['g'], `${d}: with its own g, under its name`);
    assert.equal(readFileSync(join(d, aside[0]!, 'g'), 'utf8'), 'e\'s g\n', `${d}: e's g`);
  }
});
}
