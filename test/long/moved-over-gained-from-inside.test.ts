// Invariant: a directory a client moved away onto the name of a directory it removed (`rmdir g/deep; mv e/sub
// g/deep`), while the server moved a file out of the moved directory into the removed one (`mv e/sub/f g/deep/f`):
// the removed directory comes back with the file, the moved one goes beside, and no resync follows.
//
// Chaos s94 seed 9345, c3: the record's names here were worked out before the conflict step set the moved
// directory beside, so the file's old name still read g/deep/f, inside the server's directory come back; the
// client moved the file there ("object back at the server's name for its record"), then the server's move of it
// onto itself did not apply ("the new name is taken"), a resync. Fails without the names worked out again after
// the conflict step (client-apply.ts applyResolved).
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, renameSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Farm, assertSettled, changeAway, comeBack, journaled } from '../farm.js';
import { journalState } from '../helpers.js';

for (const how of ['disconnected', 'stopped'] as const) {
  test(`${how}: rmdir g/deep and mv e/sub g/deep on the client; mv e/sub/f g/deep/f on the server: g/deep holds f, the moved sub beside`, { timeout: 120_000 }, async (t) => {
    const farm = await Farm.start(t, {
      clients: 1,
      prepare: (s) => {
        mkdirSync(join(s, 'g/deep'), { recursive: true });
        mkdirSync(join(s, 'e/sub'), { recursive: true });
        writeFileSync(join(s, 'e/sub/f'), 'the server\'s f\n');
        writeFileSync(join(s, 'e/sub/x'), 'stays in sub\n');
      },
    });
    const [c] = farm.clients as [string];
    const s = farm.server;
    await assertSettled(farm.all);
    await changeAway(farm, c, how, [
      ['rmdir g/deep', () => rmdirSync(join(c, 'g/deep'))],
      ['mv e/sub g/deep', () => renameSync(join(c, 'e/sub'), join(c, 'g/deep'))],
    ]);
    const before = journalState(s).lastTid;
    renameSync(join(s, 'e/sub/f'), join(s, 'g/deep/f'));
    await journaled(s, before);
    await comeBack(farm, c, how);
    await assertSettled(farm.all);
    assert.deepEqual(farm.logMessages(c, /resyncing|does not apply/i), [], 'no resync');
    const aside = readdirSync(join(s, 'g')).filter((n) => n.startsWith('deep.conflict-'));
    assert.equal(aside.length, 1, `the client's moved sub beside g/deep on the server: ${readdirSync(join(s, 'g')).join(', ')}`);
    for (const d of farm.all) {
      assert.deepEqual(readdirSync(join(d, 'g/deep')), ['f'], `${d}: g/deep holds f alone`);
      assert.equal(readFileSync(join(d, 'g/deep/f'), 'utf8'), 'the server\'s f\n', `${d}: f`);
      assert.deepEqual(readdirSync(join(d, 'g', aside[0]!)), ['x'], `${d}: the moved sub beside, with x`);
    }
  });
}
