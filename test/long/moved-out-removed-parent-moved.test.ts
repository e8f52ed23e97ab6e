// A guard (it passes on the code before it; it failed with the objectStep change of
// test/long/replaced-then-moved-there.test.ts made for directories too): a file moved out of a directory on a client, then the directory and the one above it removed there
// (`mv epsilon/sub/g a; rm -r epsilon`, a new epsilon made or not), while the server moves the directory above
// (`mv epsilon beta`) and writes the file (beta/sub/g): update beats delete, every node converges, the write
// reaches the file where the client moved it, no resync.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, changeAway, comeBack, journaled } from '../farm.js';

for (const remade of [false, true]) for (const how of ['disconnected', 'stopped'] as const) {
test(`mv epsilon/sub/g a; rm -r epsilon${remade ? '; mkdir epsilon' : ''} on a ${how} client, the server moves epsilon to beta and writes beta/sub/g: no resync`, { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'epsilon/sub'), { recursive: true });
      writeFileSync(join(s, 'epsilon/sub/g'), 'first\n');
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await changeAway(farm, c, how, [
    ['mv epsilon/sub/g a', () => renameSync(join(c, 'epsilon/sub/g'), join(c, 'a')), 1],
    ['rm -r epsilon', () => rmSync(join(c, 'epsilon'), { recursive: true }), 2],
    ...(remade ? [['mkdir epsilon', () => mkdirSync(join(c, 'epsilon')), 1] as const] : []),
  ]);
  let before = journalState(s).lastTid;
  renameSync(join(s, 'epsilon'), join(s, 'beta'));
  await journaled(s, before);
  before = journalState(s).lastTid;
  writeFileSync(join(s, 'beta/sub/g'), 'written on the server\n');
  await journaled(s, before);
  await comeBack(farm, c, how);
  await assertSettled(farm.all);
  assert.deepEqual(farm.logMessages(c, /resync|refused|does not apply/i), [], 'no refusal, no resync');
  for (const n of farm.all) assert.equal(readFileSync(join(n, 'a'), 'utf8'), 'written on the server\n', `${n}: the write is at a`);
});
}
