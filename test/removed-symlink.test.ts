// Invariant: a symlink a client removed while the server moved it comes back as the symlink it was (the
// server's move stands over the removal, as for a file), with its target, and no resync follows. Found by
// the widened chaos run (issue 11, seed 9201: "alpha/sub.conflict-…/a.txt: a file here, other content,
// other symlink target" on all three clients, then "write of a symlink" refused by the server).
import assert from 'node:assert/strict';
import { mkdirSync, readlinkSync, renameSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from './helpers.js';
import { Farm, assertSettled, disconnect, eventually, journaled, readOrNull, reconnect } from './farm.js';

test('a symlink removed on a client off line and renamed on the server comes back as a symlink at the server\'s name, no resync', { timeout: 120_000 }, async (t) => {
  // Fails without the removal naming the symlink's target (Reconciler#draftGone) and the conflict step making
  // a symlink from it: the conflict step brought it back as an empty file, the digests differed with
  // nothing pending, and the client resynced ("state differs": "d/t: a file here, … other symlink target").
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'd'));
      writeFileSync(join(s, 'd/e'), 'the target\n');
      symlinkSync('e', join(s, 'd/s'));
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await disconnect(farm, c);
  unlinkSync(join(c, 'd/s'));
  await eventually('the client journals the removal', () => journalState(c).lml, (n) => n >= 1);
  const before = journalState(s).lastTid;
  renameSync(join(s, 'd/s'), join(s, 'd/t'));
  await journaled(s, before);
  reconnect(c);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assert.equal(readOrNull(join(d, 'd/s')), null, `${d}: d/s moved`);
    assert.equal(readlinkSync(join(d, 'd/t')), 'e', `${d}: d/t is the symlink, to e`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs/i), [], 'no resync, no refusal');
});
