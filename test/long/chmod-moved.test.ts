// Invariant: a change of mode made on a client while away and a move of the same file on the server both
// survive, on every node, with no resync: the conflict step merges them (the server's name, the client's mode).
//
// Fails without ConflictResolver putting back the server's attributes as the base of a file whose mode changed
// here (not the row's, which holds the local chmod): the redo's chmod found the mode already on disk and in the
// journal, so capture journaled nothing, the chmod never reached the server, and the client, differing from the
// server's digest, resynced and lost it (chaos s51 seed 9261, c2: "delta/sub/a.txt: other mode").
import assert from 'node:assert/strict';
import { chmodSync, lstatSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Farm, assertSettled, changeAway, comeBack, journaled } from '../farm.js';
import { journalState } from '../helpers.js';

for (const how of ['disconnected', 'stopped'] as const) {
  test(`${how}: chmod a 600 on the client; the server moves a to b; b is 600 everywhere`, { timeout: 120_000 }, async (t) => {
    const farm = await Farm.start(t, { clients: 1, prepare: (s) => writeFileSync(join(s, 'a'), 'made on the server\n', { mode: 0o644 }) });
    const [c] = farm.clients as [string];
    const s = farm.server;
    await assertSettled(farm.all);
    await changeAway(farm, c, how, [['the chmod', () => chmodSync(join(c, 'a'), 0o600)]]);
    const before = journalState(s).lastTid;
    renameSync(join(s, 'a'), join(s, 'b'));
    await journaled(s, before);
    await comeBack(farm, c, how);
    await assertSettled(farm.all);
    for (const d of farm.all) assert.equal(lstatSync(join(d, 'b')).mode & 0o777, 0o600, `${d}: b has the client's mode`);
    assert.deepEqual(farm.logMessages(c, /resyncing|does not apply/i), [], 'no resync');
  });
}
