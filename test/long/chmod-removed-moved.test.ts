// Invariant: a file a client chmodded and then removed while away, which the server chmodded and moved
// meanwhile, comes back at the server's name (update beats delete) with the same mode on every node, and no
// resync.
//
// A guard, not a reproduction: the simplest form of chaos s58 seed 9276 (c2 chmodded, then removed gamma/sub/c
// off line; the server had chmodded it 600 and moved it; c2 held it back with another mode than the server's,
// "state differs … other mode", a resync). This form passes; the run also had directory moves and kills of c2.
import assert from 'node:assert/strict';
import { chmodSync, lstatSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Farm, assertSettled, changeAway, comeBack, journaled, treeFiles } from '../farm.js';
import { journalState } from '../helpers.js';

for (const how of ['disconnected', 'stopped'] as const) {
  test(`${how}: chmod a 664 and rm a on the client; the server chmods a 600 and moves it to b: b back, one mode everywhere`, { timeout: 120_000 }, async (t) => {
    const farm = await Farm.start(t, { clients: 1, prepare: (s) => writeFileSync(join(s, 'a'), 'made on the server\n', { mode: 0o644 }) });
    const [c] = farm.clients as [string];
    const s = farm.server;
    await assertSettled(farm.all);
    await changeAway(farm, c, how, [
      ['the chmod', () => chmodSync(join(c, 'a'), 0o664)],
      ['the removal', () => unlinkSync(join(c, 'a'))],
    ]);
    let before = journalState(s).lastTid;
    chmodSync(join(s, 'a'), 0o600);
    await journaled(s, before);
    before = journalState(s).lastTid;
    renameSync(join(s, 'a'), join(s, 'b'));
    await journaled(s, before);
    await comeBack(farm, c, how);
    await assertSettled(farm.all);
    assert.deepEqual([...treeFiles(c)].sort(), [...treeFiles(s)].sort(), 'the same files');
    const mode = (d: string): number => lstatSync(join(d, 'b')).mode & 0o777;
    assert.equal(mode(c), mode(s), 'b has one mode on every node');
    assert.deepEqual(farm.logMessages(c, /resyncing|does not apply/i), [], 'no resync');
  });
}
