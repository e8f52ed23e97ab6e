// Invariant: a directory removed on both sides, in which this node made something before removing it (moved
// out since), is still there on the server for those records: nothing is refused, no resync. Chaos s54 seed
// 9255, c2: the server removed delta/sub/sub while the client, away, had made g.txt in it (kept from folding
// by a hard link), moved it out and removed the directory. The conflict step dropped the client's removal
// ("removed on both sides", new that day), and the create in the directory was refused for want of it
// ("parent delta/sub/sub does not exist here") three times: a resync.
//
// Fails without the fix (the conflict step's objectStep takes that step only when no pending record is made in the
// directory or linked to the file): "local change refused by the server; resyncing". It passed before the
// step existed (c7edc87), which introduced the fault.
import assert from 'node:assert/strict';
import { linkSync, lstatSync, mkdirSync, readFileSync, renameSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Farm, assertSettled, changeAway, comeBack, journaled } from '../farm.js';
import { journalState } from '../helpers.js';

test('removed on both sides after a file was made in it here and moved out: the file arrives, no resync', { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, { clients: 1, prepare: (s) => mkdirSync(join(s, 'd/sub'), { recursive: true }) });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await changeAway(farm, c, 'disconnected', [
    ['a file in d/sub', () => writeFileSync(join(c, 'd/sub/g.txt'), 'made in d/sub on the client\n')],
    ['a hard link to it', () => linkSync(join(c, 'd/sub/g.txt'), join(c, 'd/h'))],
    ['moved out', () => renameSync(join(c, 'd/sub/g.txt'), join(c, 'd/g.txt'))],
    ['rmdir d/sub', () => rmdirSync(join(c, 'd/sub'))],
  ]);
  const before = journalState(s).lastTid;
  rmdirSync(join(s, 'd/sub'));
  await journaled(s, before);
  await comeBack(farm, c, 'disconnected');
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assert.equal(readFileSync(join(d, 'd/g.txt'), 'utf8'), 'made in d/sub on the client\n', `${d}: d/g.txt`);
    assert.equal(lstatSync(join(d, 'd/g.txt')).ino, lstatSync(join(d, 'd/h')).ino, `${d}: d/h a hard link of d/g.txt`);
    assert.throws(() => lstatSync(join(d, 'd/sub')), /ENOENT/, `${d}: d/sub removed`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs/i), [], 'no resync');
});
