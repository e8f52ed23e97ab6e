// Invariant: a directory removed on a client with its file (rm -r d/sub), the directory above then moved there
// (mv d e), while the server wrote the file: update beats delete, d/sub comes back with the server's file at
// the client's name for it (e/sub), every node converges, no resync. Fails without the conflict step's parentStep
// finding the removed directory by the removal of the record's file (its pending rmdir names it d/sub, the
// name of its time): "parent e/sub does not exist here", three times, then a resync (chaos s35 seed 9303, c1).
// The disconnected case fails without it; the stopped one is a guard (the start-up scan journals after the move).
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, changeAway, comeBack, journaled } from '../farm.js';

for (const how of ['disconnected', 'stopped'] as const) {
test(`rm -r d/sub then mv d e on a ${how} client, the server writes d/sub/f: e/sub/f is back with the server's content, no resync`, { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'd/sub'), { recursive: true });
      writeFileSync(join(s, 'd/sub/f'), 'the first f\n');
      writeFileSync(join(s, 'd/other'), 'stays\n');
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await changeAway(farm, c, how, [
    ['rm -r d/sub', () => rmSync(join(c, 'd/sub'), { recursive: true }), 2],
    ['mv d e', () => renameSync(join(c, 'd'), join(c, 'e')), 1],
  ]);
  const before = journalState(s).lastTid;
  appendFileSync(join(s, 'd/sub/f'), 'appended on the server\n');
  await journaled(s, before);
  await comeBack(farm, c, how);
  await assertSettled(farm.all);
  assert.deepEqual(farm.logMessages(c, /resync|refused|does not apply/i), [], 'no refusal, no resync');
  for (const d of farm.all) {
    assert.deepEqual(readdirSync(join(d, 'e')).sort(), ['other', 'sub'], `${d}: e holds other and sub`);
    assert.equal(readFileSync(join(d, 'e/sub/f'), 'utf8'), 'the first f\nappended on the server\n', `${d}: the server's f is back`);
  }
});
}
