// Invariant: a file moved to the same new name on a client off line and on the server (the same script run on
// both, say) ends at that name on every node, whatever else the client did meanwhile (its old directory
// removed, the new one moved on), with no refusal and no resync.
// From chaos s80 seed 9250, c3: the server's move of alpha/sub.conflict-…/b.txt to epsilon/e was c3's own pending
// move too, with its old directory gone here and epsilon moved to gamma/deep: the conflict step placed the file
// at the move's end (gamma/deep/e here), found it taken, by the file itself, and refused the record ("an
// unjournaled file has this name here") three times: a resync.
// Fails without the check in the conflict step's objectStep that what holds the end of the move is the object itself.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, changeAway, comeBack, journaled, type Away } from '../farm.js';

for (const how of ['disconnected', 'stopped'] as const satisfies readonly Away[]) {
  test(`a client (${how}) moves a/x to e/y, removes a and moves e to g; the server moves a/x to e/y too: g/y everywhere, no resync`, { timeout: 120_000 }, async (t) => {
    const farm = await Farm.start(t, {
      clients: 1,
      prepare: (s) => {
        mkdirSync(join(s, 'a'));
        mkdirSync(join(s, 'e'));
        writeFileSync(join(s, 'a/x'), 'x\n');
      },
    });
    const [c] = farm.clients as [string];
    const s = farm.server;
    await assertSettled(farm.all);
    await changeAway(farm, c, how, [
      ['a/x moved to e/y', () => renameSync(join(c, 'a/x'), join(c, 'e/y'))],
      ['a removed', () => rmdirSync(join(c, 'a'))],
      ['e moved to g', () => renameSync(join(c, 'e'), join(c, 'g'))],
    ]);
    const before = journalState(s).lastTid;
    renameSync(join(s, 'a/x'), join(s, 'e/y'));
    await journaled(s, before);
    await comeBack(farm, c, how);
    await assertSettled(farm.all, 40_000);
    assert.deepEqual(farm.logMessages(c, /resync|refused|does not apply/i), [], 'no refusal, no resync');
    for (const d of farm.all) {
      assert.deepEqual(readdirSync(d).filter((n) => n !== '.intermezzo').sort(), ['g'], `${d}: a removed, e moved to g`);
      assert.deepEqual(readdirSync(join(d, 'g')), ['y'], `${d}: the file at g/y`);
      assert.equal(readFileSync(join(d, 'g/y'), 'utf8'), 'x\n', `${d}: with its content`);
    }
  });
}
