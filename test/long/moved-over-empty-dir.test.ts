// Invariant: a directory moved on a client over an empty directory (rename(2) replaces it), a file in the moved
// directory removed there, while the server changed that file: the server's change comes back in the moved
// directory, at the client's name for it; the empty directory stays removed; every node converges, no resync.
// Fails without the conflict step's throughOwnMove: the conflict step took the server's path, which names the moved
// directory through the client's own pending move, for one below the directory removed there, brought that one
// back, set the moved one beside, and put the file in the wrong one, on the client only (chaos s32 seed 9221,
// c2: mv gamma.conflict-… gamma/sub over an empty gamma/sub; "state differs … with nothing pending", a resync).
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readdirSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, changeAway, comeBack, journaled } from '../farm.js';

for (const how of ['disconnected', 'stopped'] as const) {
test(`g moved over an empty h/sub on a ${how} client, g/f removed there, g/f chmodded on the server: f is back in h/sub, no resync`, { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'g'));
      writeFileSync(join(s, 'g/f'), 'the server\'s f\n');
      writeFileSync(join(s, 'g/other'), 'stays in g\n');
      mkdirSync(join(s, 'h/sub'), { recursive: true });
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await changeAway(farm, c, how, [
    ['rm g/f', () => unlinkSync(join(c, 'g/f'))],
    ['mv g h/sub', () => renameSync(join(c, 'g'), join(c, 'h/sub'))],
  ]);
  const before = journalState(s).lastTid;
  chmodSync(join(s, 'g/f'), 0o600);
  await journaled(s, before);
  await comeBack(farm, c, how);
  await assertSettled(farm.all);
  assert.deepEqual(farm.logMessages(c, /resync|refused/i), [], 'no refusal, no resync');
  for (const d of farm.all) {
    assert.deepEqual(readdirSync(d).filter((n) => n !== '.intermezzo').sort(), ['h'], `${d}: g moved away`);
    assert.deepEqual(readdirSync(join(d, 'h')), ['sub'], `${d}: h holds the moved directory alone`);
    assert.deepEqual(readdirSync(join(d, 'h/sub')).sort(), ['f', 'other'], `${d}: the server's f is back in the moved directory`);
    assert.equal(statSync(join(d, 'h/sub/f')).mode & 0o777, 0o600, `${d}: with the server's mode`);
  }
});
}
