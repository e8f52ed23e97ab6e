// Invariant: on a client, a file moved out of d/sub and removed there, d/sub removed, then d moved to e, while the
// server wrote the file at d/sub/f: update beats delete, d/sub comes back at the client's name for it (e/sub)
// with the server's f in it, every node converges, no resync.
//
// Fails without the conflict step's parentStep finding the removed directory by the server's name of it (its
// pending rmdir names it d/sub, the name of its time, and neither the record, a write naming no parent, nor the
// file's own removal, made elsewhere, leads to it): "parent e/sub does not exist here", three times, then a
// resync (chaos s85 seed 9331, c3: mv epsilon/sub/f.json delta/sub/b.txt, rm it, rmdir epsilon/sub, mv epsilon
// alpha/sub, while the server wrote epsilon/sub/f.json). The stopped case is a guard: the start-up scan journals
// what it finds, not the steps.
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, changeAway, comeBack, journaled } from '../farm.js';

for (const how of ['disconnected', 'stopped'] as const) {
test(`mv d/sub/f x; rm x; rmdir d/sub; mv d e on a ${how} client, the server writes d/sub/f: e/sub/f is back with it, no resync`, { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'd/sub'), { recursive: true });
      mkdirSync(join(s, 'x'));
      writeFileSync(join(s, 'd/sub/f'), 'the first f\n');
      writeFileSync(join(s, 'd/other'), 'stays\n');
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await changeAway(farm, c, how, [
    ['mv d/sub/f x/b', () => renameSync(join(c, 'd/sub/f'), join(c, 'x/b')), 1],
    ['rm x/b', () => rmSync(join(c, 'x/b')), 1],
    ['rmdir d/sub', () => rmdirSync(join(c, 'd/sub')), 1],
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
    assert.deepEqual(readdirSync(join(d, 'x')), [], `${d}: x is empty`);
  }
});
}
