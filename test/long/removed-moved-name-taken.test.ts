// Invariant: a file a client removed (with its directory, after moving that directory) that the server moved
// meanwhile comes back where the server's move leaves it, and the client's own object that now holds the file's
// old name here (its directory moved into the removed one's place) keeps its name: nothing moves it aside
// behind the server's back, and no resync follows.
// From chaos s75 seed 9255, c2: `mv gamma/sub epsilon/sub`, `rm -r epsilon/sub`, `mv gamma/deep epsilon/sub`,
// while the server moved gamma/sub/g.txt to alpha/deep/h. The conflict step placed the removed file straight at
// the end of the server's move, and still moved the client's epsilon/sub/g.txt (gamma/deep/g.txt on the server,
// its name here given by its directory's pending move) aside to g.conflict-…, telling no one: the server kept
// the old name, the client the conflict name ("here at", a resync).
// Fails without the check of `atEnd` before the occupant is moved aside in the conflict step's objectStep.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, changeAway, comeBack, journaled, type Away } from '../farm.js';

for (const how of ['disconnected', 'stopped'] as const satisfies readonly Away[]) {
  test(`a client (${how}) moves g/sub to e/sub, removes it, moves g/deep there; the server moves g/sub/x out: x back at its new name, e/sub/x stays, no resync`, { timeout: 120_000 }, async (t) => {
    const farm = await Farm.start(t, {
      clients: 1,
      prepare: (s) => {
        mkdirSync(join(s, 'g/sub'), { recursive: true });
        mkdirSync(join(s, 'g/deep'), { recursive: true });
        mkdirSync(join(s, 'e'));
        mkdirSync(join(s, 'a'));
        writeFileSync(join(s, 'g/sub/x'), 'the server\'s g/sub/x\n');
        writeFileSync(join(s, 'g/deep/x'), 'g/deep/x, moved to e/sub/x on the client\n');
      },
    });
    const [c] = farm.clients as [string];
    const s = farm.server;
    await assertSettled(farm.all);
    await changeAway(farm, c, how, [
      ['g/sub moved to e/sub', () => renameSync(join(c, 'g/sub'), join(c, 'e/sub'))],
      ['e/sub removed with its file', () => rmSync(join(c, 'e/sub'), { recursive: true }), 2],
      ['g/deep moved to e/sub', () => renameSync(join(c, 'g/deep'), join(c, 'e/sub'))],
    ]);
    const before = journalState(s).lastTid;
    renameSync(join(s, 'g/sub/x'), join(s, 'a/h'));
    await journaled(s, before);
    await comeBack(farm, c, how);
    await assertSettled(farm.all, 40_000);
    assert.deepEqual(farm.logMessages(c, /resync|refused|does not apply/i), [], 'no refusal, no resync');
    for (const d of farm.all) {
      assert.equal(readFileSync(join(d, 'a/h'), 'utf8'), 'the server\'s g/sub/x\n', `${d}: the server's move of the removed file is there`);
      assert.deepEqual(readdirSync(join(d, 'e/sub')), ['x'], `${d}: e/sub holds the client's moved file alone, at its name`);
      assert.equal(readFileSync(join(d, 'e/sub/x'), 'utf8'), 'g/deep/x, moved to e/sub/x on the client\n', `${d}: e/sub/x is g/deep's x`);
      assert.deepEqual(readdirSync(join(d, 'g')), [], `${d}: g is empty`);
    }
  });
}
