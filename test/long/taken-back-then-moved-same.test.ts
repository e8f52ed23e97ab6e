// Invariant: a client that removed directory beta, moved its own epsilon onto the name (`rmdir beta; mv epsilon
// beta`) and moved a file inside it (`mv beta/sub/g.txt beta/deep/a.txt`), while the server put an entry into
// beta, moved it away (`mv beta alpha/sub`), made the same move of epsilon and wrote epsilon/sub/g.txt: every
// node converges, with the server's write in the file where the client moved it, no resync.
// A guard, written from chaos s86 seed 9335, c1 (6 resyncs: "parent beta/sub does not exist here", the client's
// pending move of g.txt naming it by beta/sub, its name before a conflict step set beta aside): it passes, so this
// shape alone does not reproduce that run; its cause is not found yet (docs/architecture.md, Known open problems).
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, readFileSync, renameSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, changeAway, comeBack, journaled } from '../farm.js';

for (const how of ['disconnected'] as const) {
test(`rmdir beta; mv epsilon beta; mv beta/sub/g.txt beta/deep/a.txt on a ${how} client, the server's beta gains, moves away, epsilon moves to beta and g.txt is written`, { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'beta'));
      mkdirSync(join(s, 'epsilon/sub'), { recursive: true });
      mkdirSync(join(s, 'epsilon/deep'));
      writeFileSync(join(s, 'epsilon/sub/g.txt'), 'the first g\n');
      mkdirSync(join(s, 'delta'));
      writeFileSync(join(s, 'delta/g.txt'), 'goes into beta\n');
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await changeAway(farm, c, how, [
    ['rmdir beta', () => rmdirSync(join(c, 'beta')), 1],
    ['mv epsilon beta', () => renameSync(join(c, 'epsilon'), join(c, 'beta')), 1],
    ['mv beta/sub/g.txt beta/deep/a.txt', () => renameSync(join(c, 'beta/sub/g.txt'), join(c, 'beta/deep/a.txt')), 1],
  ]);
  let before = journalState(s).lastTid;
  renameSync(join(s, 'delta/g.txt'), join(s, 'beta/g.txt'));
  await journaled(s, before);
  before = journalState(s).lastTid;
  mkdirSync(join(s, 'alpha'));
  renameSync(join(s, 'beta'), join(s, 'alpha/sub'));
  await journaled(s, before);
  before = journalState(s).lastTid;
  renameSync(join(s, 'epsilon'), join(s, 'beta'));
  await journaled(s, before);
  before = journalState(s).lastTid;
  appendFileSync(join(s, 'beta/sub/g.txt'), 'appended on the server\n');
  await journaled(s, before);
  await comeBack(farm, c, how);
  await assertSettled(farm.all);
  assert.deepEqual(farm.logMessages(c, /resync|refused|does not apply/i), [], 'no refusal, no resync');
  const homes = farm.all.map((n) => readFileSync(join(n, 'beta/deep/a.txt'), 'utf8'));
  for (const h of homes) assert.equal(h, 'the first g\nappended on the server\n', 'the file the client moved holds the server\'s write');
});
}
