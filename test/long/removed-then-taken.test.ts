// Invariant: a file a client changed while away, which the server removed and then gave its name to another
// object (a symlink moved there), ends as the server's object at the name and the client's content beside it,
// on every node, with no resync.
// A guard written for the widened chaos run's s29 seed 9214 (c1: "state differs … delta/g.txt: a file here,
// other content, other symlink target"). It passes: that case needs more than this (directories moved around
// the name meanwhile), not reproduced yet.
import assert from 'node:assert/strict';
import { lstatSync, readlinkSync, renameSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, conflictCopies, disconnect, eventually, journaled, readOrNull, reconnect } from '../farm.js';

for (const kind of ['symlink', 'file'] as const) {
test(`a file written on a client while away, removed on the server and its name taken by a moved ${kind}: the server's ${kind} at the name, the client's write beside it, no resync`, { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, { clients: 1 });
  const [c] = farm.clients as [string];
  const s = farm.server;
  let before = journalState(s).lastTid;
  writeFileSync(join(s, 'g.txt'), 'the first version\n');
  if (kind === 'symlink') symlinkSync('nowhere', join(s, 'd.md'));
  else writeFileSync(join(s, 'd.md'), 'moved over g.txt on the server\n');
  await journaled(s, before);
  await assertSettled(farm.all);
  await disconnect(farm, c);
  writeFileSync(join(c, 'g.txt'), 'written on the client\n');
  await eventually('the client journals its write', () => journalState(c).lml, (n) => n >= 1);
  before = journalState(s).lastTid;
  unlinkSync(join(s, 'g.txt'));
  await journaled(s, before);
  before = journalState(s).lastTid;
  renameSync(join(s, 'd.md'), join(s, 'g.txt'));
  await journaled(s, before);
  reconnect(c);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    if (kind === 'symlink') assert.equal(readlinkSync(join(d, 'g.txt')), 'nowhere', `${d}: the server's symlink at g.txt`);
    else assert.equal(readOrNull(join(d, 'g.txt')), 'moved over g.txt on the server\n', `${d}: the server's file at g.txt`);
    const copies = conflictCopies(d);
    assert.equal(copies.length, 1, `${d}: one conflict copy: ${copies.join(' ')}`);
    assert.equal(lstatSync(join(d, copies[0]!)).isFile(), true);
    assert.equal(readOrNull(join(d, copies[0]!)), 'written on the client\n', `${d}: the client's write beside it`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply/i), [], 'the client never resynced');
});
}
