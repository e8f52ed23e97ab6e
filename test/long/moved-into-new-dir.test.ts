// Invariant: a server directory moved on a client into a directory made there and removed in it, the new
// directory then moved on, while the server moved a file into the removed directory and made another there:
// update beats delete, the directory is back at the client's name for it (inside the new directory), every
// node converges, no resync. Fails without the fix in reint/local-names.ts: localPath followed the first move
// into the new directory but not the new directory's own move (a move of an object made here), so the
// server's records named a place below the new directory's first name, where nothing is ("conflict on
// n/sub/e: parent n does not exist here", three times, then a resync; chaos s31 seed 9224, c1).
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, readFileSync, renameSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, changeAway, comeBack, eventually } from '../farm.js';

for (const how of ['disconnected', 'stopped'] as const) {
test(`a directory moved on a ${how} client into one made there and removed, that one moved on, the server adds to it: it is back at the client's name, no resync`, { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'a'));
      writeFileSync(join(s, 'a/f'), 'the first version\n');
      writeFileSync(join(s, 'x'), 'moved in on the server\n');
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await changeAway(farm, c, how, [
    ['mkdir n', () => mkdirSync(join(c, 'n'))],
    ['mv a n/sub', () => renameSync(join(c, 'a'), join(c, 'n/sub'))],
    ['rm n/sub/f', () => unlinkSync(join(c, 'n/sub/f'))],
    ['rmdir n/sub', () => rmdirSync(join(c, 'n/sub'))],
    ['mv n m', () => renameSync(join(c, 'n'), join(c, 'm'))],
  ]);
  const before = journalState(s).lastTid;
  renameSync(join(s, 'x'), join(s, 'a/e'));
  writeFileSync(join(s, 'a/g'), 'made on the server\n');
  await eventually('the server journals its two changes', () => journalState(s).lastTid, (n) => n >= before + 2n);
  await comeBack(farm, c, how);
  await assertSettled(farm.all);
  // Stopped, the client's start-up scan sees only that a is gone and m is new: the server's a comes back at a.
  const at = how === 'disconnected' ? 'm/sub' : 'a';
  for (const d of farm.all) {
    assert.equal(readFileSync(join(d, at, 'e'), 'utf8'), 'moved in on the server\n', `${d}: the server's move into the directory, at the client's name for it`);
    assert.equal(readFileSync(join(d, at, 'g'), 'utf8'), 'made on the server\n', `${d}: the server's new file, at the client's name for its directory`);
    assert.equal(lstatSync(join(d, 'm')).isDirectory(), true, `${d}: the client's new directory`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply/i), [], 'the client never resynced');
});
}
