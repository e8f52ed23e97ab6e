// Invariant: a write through one name of a hard-linked file, not journaled yet when the server's change of
// another name of the file arrives, reaches every node. Found from chaos s54 seed 9250 (c3: an append through
// epsilon/e while its other name was moved by the server; the append was on no node, DESTROYED).
//
// The rename case fails without the fix (ObjectTable#applyToObjects: a setattr leaves each name's content as it
// is): the server's rename of a met the write (journaled as a's by capture's look before the rename), the
// conflict step put a back to the server's base and the write back in place as a new change of x; but b, the
// other name, still held the written content in its row, and capture's setattr of b (its change time had
// moved) gave x that content too. Nothing was sent, the digests differed, and the resync placed the server's
// content over the write. The chmod case is a guard (it passed before).
import assert from 'node:assert/strict';
import { appendFileSync, chmodSync, linkSync, lstatSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Farm, assertSettled, journaled } from '../farm.js';
import { journalState } from '../helpers.js';

const cases = [
  { how: 'rename a x', change: (s: string) => renameSync(join(s, 'a'), join(s, 'x')), names: ['x', 'b'] },
  { how: 'chmod 600 a', change: (s: string) => chmodSync(join(s, 'a'), 0o600), names: ['a', 'b'] },
];

for (const k of cases) {
  test(`a write through b, not journaled yet, meets the server's ${k.how}: it reaches every node`, { timeout: 120_000 }, async (t) => {
    // The client's capture waits 3 s before it journals: the server's change arrives first.
    const farm = await Farm.start(t, { clients: 1, clientArgs: ['--settle-ms', '3000'], prepare: (s) => {
      writeFileSync(join(s, 'a'), 'first\n');
      linkSync(join(s, 'a'), join(s, 'b'));
    } });
    const [c] = farm.clients as [string];
    const s = farm.server;
    await assertSettled(farm.all);
    appendFileSync(join(c, 'b'), 'appended on the client\n');
    const before = journalState(s).lastTid;
    k.change(s);
    await journaled(s, before);
    await assertSettled(farm.all, 40_000);
    for (const d of farm.all) {
      for (const n of k.names) assert.equal(readFileSync(join(d, n), 'utf8'), 'first\nappended on the client\n', `${d}: ${n}`);
      assert.equal(lstatSync(join(d, k.names[0]!)).ino, lstatSync(join(d, k.names[1]!)).ino, `${d}: one file`);
    }
    assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs/i), [], 'no resync');
  });
}
