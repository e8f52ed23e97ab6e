// Invariant: a directory removed on a client (d/deep), then its parent replaced there by another directory
// moved over it (e over the then empty d, which has a deep of its own), while the server made a file in d/deep:
// update beats delete, d and d/deep come back at their names with the file, the moved e goes beside with its
// own deep, every node converges, no resync. Fails without the conflict step's takeBack bringing the directory
// above back first: d/deep came back inside the moved e (which held the name d), and e's own deep went beside
// it, on the client only (chaos s34 seed 9260, c1: rmdir gamma/deep, mv epsilon gamma over the empty gamma,
// while the server made gamma/deep/h: "state differs … with nothing pending", a resync).
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, renameSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, changeAway, comeBack, journaled } from '../farm.js';

for (const how of ['disconnected', 'stopped'] as const) {
test(`d/deep removed on a ${how} client, e (with e/deep) moved over the empty d, the server makes d/deep/h: d/deep is back with h, e beside, no resync`, { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'd/deep'), { recursive: true });
      mkdirSync(join(s, 'e/deep'), { recursive: true });
      writeFileSync(join(s, 'e/deep/x'), 'e\'s x\n');
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await changeAway(farm, c, how, [
    ['rmdir d/deep', () => rmdirSync(join(c, 'd/deep'))],
    ['mv e d', () => renameSync(join(c, 'e'), join(c, 'd'))],
  ]);
  const before = journalState(s).lastTid;
  writeFileSync(join(s, 'd/deep/h'), 'made on the server\n');
  await journaled(s, before);
  await comeBack(farm, c, how);
  await assertSettled(farm.all);
  assert.deepEqual(farm.logMessages(c, /resync|refused/i), [], `no refusal, no resync: ${farm.log(c).split('\n').filter((l) => /refused|conflict/.test(l)).join('\n')}`);
  for (const d of farm.all) {
    assert.deepEqual(readdirSync(join(d, 'd')), ['deep'], `${d}: d is the server's, with deep alone`);
    assert.deepEqual(readdirSync(join(d, 'd/deep')), ['h'], `${d}: d/deep holds the server's h`);
    const aside = readdirSync(d).filter((n) => n.startsWith('d.conflict-'));
    assert.equal(aside.length, 1, `${d}: e is beside d (${JSON.stringify(readdirSync(d))})`);
    assert.equal(readFileSync(join(d, aside[0]!, 'deep/x'), 'utf8'), 'e\'s x\n', `${d}: with its own deep`);
  }
});
}
