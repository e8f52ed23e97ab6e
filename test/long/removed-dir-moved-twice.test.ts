// Invariant: a directory the server removes while a client, away, had moved it, made a file in it, then moved
// the directory above it over an emptied directory and moved the first directory out to the top ends with the
// client's file beside the removed directory's name on every node, and no resync. Chaos s97 seed 9382 (c1):
// `mv alpha/deep alpha/sub; echo > alpha/sub/b.txt; rmdir gamma/sub; mv alpha gamma/sub; mv gamma/sub/sub alpha`
// while the server removed alpha/deep; the file's create was refused ("parent gamma/sub/deep does not exist
// here"), named in the removed directory itself, and the client resynced.
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, changeAway, comeBack, eventually, journaled, treeFiles } from '../farm.js';

for (const how of ['disconnected', 'stopped'] as const) {
  test(`${how}: mv alpha/deep alpha/sub, a file in it, mv alpha over gamma/sub, mv gamma/sub/sub alpha; the server removes alpha/deep: the file is kept everywhere, no resync`, { timeout: 120_000 }, async (t) => {
    const farm = await Farm.start(t, {
      clients: 1,
      prepare: (s) => {
        mkdirSync(join(s, 'alpha/deep'), { recursive: true });
        mkdirSync(join(s, 'gamma/sub'), { recursive: true });
        writeFileSync(join(s, 'alpha/a.txt'), 'the server\'s a\n');
      },
    });
    const [c] = farm.clients as [string];
    const s = farm.server;
    await assertSettled(farm.all);
    await changeAway(farm, c, how, [
      ['the move of alpha/deep', () => renameSync(join(c, 'alpha/deep'), join(c, 'alpha/sub'))],
      ['the file', () => writeFileSync(join(c, 'alpha/sub/b.txt'), 'made on the client\n')],
      ['the rmdir', () => rmdirSync(join(c, 'gamma/sub'))],
      ['the move of alpha', () => renameSync(join(c, 'alpha'), join(c, 'gamma/sub'))],
      ['the move out', () => renameSync(join(c, 'gamma/sub/sub'), join(c, 'alpha'))],
    ]);
    const before = journalState(s).lastTid;
    rmdirSync(join(s, 'alpha/deep'));
    await journaled(s, before);
    await comeBack(farm, c, how);
    const why = (): string => JSON.stringify(farm.logMessages(c, /refused|resync|does not apply|conflict/));
    await eventually('the client\'s file reaches the server', () => [...treeFiles(s).values()], (v) => v.includes('made on the client\n'), 30_000, why);
    await assertSettled(farm.all);
    for (const d of farm.all) {
      const mine = [...treeFiles(d)].filter(([, v]) => v === 'made on the client\n').map(([k]) => k);
      assert.equal(mine.length, 1, `${d}: the client's file once (${JSON.stringify(mine)})`);
    }
    assert.deepEqual(farm.logMessages(c, /resync/i), [], 'the client never resynced');
    assert.equal(journalState(c).lml, 0, 'the client\'s LML is empty');
  });
}
