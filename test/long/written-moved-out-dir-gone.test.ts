// A guard (it passes on the code before it): a file moved out of a directory on a client, the directory then removed there (or made into
// something else), while the server writes the file at its old name: the write reaches the file where the client
// moved it, the move and the removal reach the server, every node converges, no resync.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, renameSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, changeAway, comeBack, journaled, treeFiles } from '../farm.js';

for (const moved of [false, true]) for (const how of ['disconnected', 'stopped'] as const) {
test(`mv d/sub/x e/y; rm -r d on a ${how} client, the server ${moved ? 'moves d to b and writes b/sub/x' : 'writes d/sub/x'}: the write lands at e/y, no resync`, { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'd/sub'), { recursive: true });
      mkdirSync(join(s, 'e'));
      writeFileSync(join(s, 'd/sub/x'), 'first\n');
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await changeAway(farm, c, how, [
    ['mv d/sub/x e/y', () => renameSync(join(c, 'd/sub/x'), join(c, 'e/y')), 1],
    ['rmdir d/sub', () => rmdirSync(join(c, 'd/sub')), 1],
    ['rmdir d', () => rmdirSync(join(c, 'd')), 1],
  ]);
  let before = journalState(s).lastTid;
  if (moved) {
    renameSync(join(s, 'd'), join(s, 'b'));
    await journaled(s, before);
    before = journalState(s).lastTid;
  }
  writeFileSync(join(s, moved ? 'b/sub/x' : 'd/sub/x'), 'written on the server\n');
  await journaled(s, before);
  await comeBack(farm, c, how);
  await assertSettled(farm.all);
  assert.deepEqual(farm.logMessages(c, /resync|refused|does not apply/i), [], 'no refusal, no resync');
  for (const n of farm.all) {
    const files = treeFiles(n);
    assert.equal(readFileSync(join(n, 'e/y'), 'utf8'), 'written on the server\n', `${n}: the server's write is at e/y`);
    assert.deepEqual([...files.keys()].sort(), ['e/y'], `${n}: ${[...files.keys()].join(' ')}`);
  }
});
}
