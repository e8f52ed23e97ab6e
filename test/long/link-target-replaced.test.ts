// Invariant: a hard link the server made to a file the client replaced meanwhile (rename over it, not accepted
// yet) is placed on the client with the attributes of the server's file, not those of the file now at the
// target's name: every node converges, modes equal, no resync. Fails without the fix in apply/local-attrs.ts
// (localize gave the link the mode of whatever file held the target's name here, 0644 for 0640, and logged it as
// "set-id bits from a peer dropped"; the digests differed: "state differs … with nothing pending", a resync;
// chaos s33 seed 9225, c1 and c2).
import assert from 'node:assert/strict';
import { chmodSync, linkSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, changeAway, comeBack, journaled } from '../farm.js';

for (const how of ['disconnected', 'stopped'] as const) {
test(`o moved over t on a ${how} client, the server links l to t (mode 0640): l has t's mode and content everywhere, no resync`, { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      writeFileSync(join(s, 't'), 'the server\'s t\n');
      chmodSync(join(s, 't'), 0o640);
      writeFileSync(join(s, 'o'), 'the other file\n');
      chmodSync(join(s, 'o'), 0o644);
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await changeAway(farm, c, how, [['mv o t', () => renameSync(join(c, 'o'), join(c, 't'))]]);
  const before = journalState(s).lastTid;
  linkSync(join(s, 't'), join(s, 'l'));
  await journaled(s, before);
  await comeBack(farm, c, how);
  await assertSettled(farm.all);
  assert.deepEqual(farm.logMessages(c, /resync|refused|set-id/i), [], 'no refusal, no resync, no set-id bits dropped');
  for (const d of farm.all) {
    assert.equal(readFileSync(join(d, 'l'), 'utf8'), 'the server\'s t\n', `${d}: l holds the server's t`);
    assert.equal(statSync(join(d, 'l')).mode & 0o7777, 0o640, `${d}: l has the server's t's mode`);
    assert.equal(readFileSync(join(d, 't'), 'utf8'), 'the other file\n', `${d}: t is the moved file`);
  }
});
}
