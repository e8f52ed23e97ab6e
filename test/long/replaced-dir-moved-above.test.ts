// A guard (it passes on the code before it, written while tracing chaos s89 seed 9302): a directory moved over an empty one on a client (`mv beta/deep gamma/sub`), then a directory above
// both moved (`mv gamma alpha/deep`), while the server puts a file in the replaced directory and moves it on: the
// server's file is never taken for the moved directory's entry of the same name, every node converges, no resync.
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, changeAway, comeBack, journaled, treeFiles } from '../farm.js';

for (const then of ['made', 'made and moved'] as const) for (const how of ['disconnected', 'stopped'] as const) {
test(`mv beta/deep gamma/sub (empty); mv gamma alpha/deep on a ${how} client, the server ${then} gamma/sub/f.json: no resync`, { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'gamma/sub'), { recursive: true });
      mkdirSync(join(s, 'beta/deep'), { recursive: true });
      mkdirSync(join(s, 'alpha'));
      writeFileSync(join(s, 'beta/deep/f.json'), 'the client moves me\n');
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await changeAway(farm, c, how, [
    ['mv beta/deep gamma/sub', () => renameSync(join(c, 'beta/deep'), join(c, 'gamma/sub')), 1],
    ['mv gamma alpha/deep', () => renameSync(join(c, 'gamma'), join(c, 'alpha/deep')), 1],
  ]);
  let before = journalState(s).lastTid;
  writeFileSync(join(s, 'gamma/sub/f.json'), 'made on the server\n');
  await journaled(s, before);
  if (then === 'made and moved') {
    before = journalState(s).lastTid;
    renameSync(join(s, 'gamma/sub/f.json'), join(s, 'alpha/e'));
    await journaled(s, before);
  }
  await comeBack(farm, c, how);
  await assertSettled(farm.all);
  assert.deepEqual(farm.logMessages(c, /resync|refused|does not apply/i), [], 'no refusal, no resync');
  const want = treeFiles(s);
  assert.ok([...want.values()].includes('the client moves me\n') && [...want.values()].includes('made on the server\n'), [...want.entries()].join(' '));
  for (const n of farm.clients) assert.deepEqual(treeFiles(n), want, n);
});
}
