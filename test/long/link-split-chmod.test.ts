// A guard (it passes on the code before it, written while tracing chaos s91 seed 9331, "other mode" on a client): one name of a hard-linked pair chmodded on a client (every name of the inode takes the mode there),
// while the server replaces the other name by a new file (`mv tmp h`: the pair splits there): the split and
// the mode both land, h keeps the server's mode and b the client's, every node converges, no resync.
import assert from 'node:assert/strict';
import { chmodSync, linkSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, changeAway, comeBack, journaled, treeFiles } from '../farm.js';

for (const how of ['disconnected', 'stopped'] as const) {
test(`chmod b (hard-linked to h) on a ${how} client, the server replaces h: b keeps the mode, h its own, no resync`, { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      writeFileSync(join(s, 'b'), 'shared\n');
      chmodSync(join(s, 'b'), 0o644);
      linkSync(join(s, 'b'), join(s, 'h'));
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await changeAway(farm, c, how, [
    ['chmod 640 b', () => chmodSync(join(c, 'b'), 0o640), 1],
  ]);
  const before = journalState(s).lastTid;
  writeFileSync(join(s, 'tmp'), 'replaced on the server\n');
  chmodSync(join(s, 'tmp'), 0o644);
  renameSync(join(s, 'tmp'), join(s, 'h'));
  await journaled(s, before);
  await comeBack(farm, c, how);
  await assertSettled(farm.all);
  assert.deepEqual(farm.logMessages(c, /resync|refused|does not apply/i), [], 'no refusal, no resync');
  for (const n of farm.all) {
    assert.deepEqual(Object.fromEntries(treeFiles(n)), { b: 'shared\n', h: 'replaced on the server\n' }, n);
    assert.equal(statSync(join(n, 'b')).mode & 0o777, 0o640, `${n}: b`);
    assert.equal(statSync(join(n, 'h')).mode & 0o777, 0o644, `${n}: h`);
    assert.notEqual(statSync(join(n, 'b')).ino, statSync(join(n, 'h')).ino, `${n}: apart`);
  }
});
}
