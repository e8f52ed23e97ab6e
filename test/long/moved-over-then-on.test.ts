// Invariant: a client that moved a directory over an empty one (`mv a d/sub`: rename(2) replaces an empty
// directory) and then moved it on (`mv d/sub d/deep`), off line, meets a server's new entry in the directory it
// replaced (d/sub there) with nothing lost: the entry stays in the server's directory on every node, the
// client's directory ends at d/deep with what it holds, and no resync follows.
// From chaos s76 seed 9259, c3: `mv alpha beta/sub` over the empty beta/sub, then beta/sub moved on to beta/deep,
// while c2 made the symlink beta/sub/g.txt. The server's path beta/sub/g.txt followed c3's pending move of its
// own directory (beta/sub -> beta/deep) as if that directory were the server's beta/sub, and the symlink went
// into alpha's directory: it stayed there on c3 alone ("here at", a resync).
// Fails without local-names' follow of a rename whose object a pending rename brought to its name: the server's
// entry landed in the client's directory.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readlinkSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, changeAway, comeBack, journaled, type Away } from '../farm.js';

for (const how of ['disconnected', 'stopped'] as const satisfies readonly Away[]) {
  test(`a client (${how}) moves a over the empty d/sub, then on to d/deep; the server makes d/sub/g: each lands in its own directory, no resync`, { timeout: 120_000 }, async (t) => {
    const farm = await Farm.start(t, {
      clients: 1,
      prepare: (s) => {
        mkdirSync(join(s, 'a'));
        writeFileSync(join(s, 'a/x'), 'a\'s x\n');
        mkdirSync(join(s, 'd/sub'), { recursive: true });
      },
    });
    const [c] = farm.clients as [string];
    const s = farm.server;
    await assertSettled(farm.all);
    await changeAway(farm, c, how, [
      // The empty d/sub removed and a moved in its place: two records.
      ['a moved over the empty d/sub', () => renameSync(join(c, 'a'), join(c, 'd/sub')), 2],
      ['d/sub moved on to d/deep', () => renameSync(join(c, 'd/sub'), join(c, 'd/deep'))],
    ]);
    const before = journalState(s).lastTid;
    symlinkSync('nowhere', join(s, 'd/sub/g'));
    writeFileSync(join(s, 'd/sub/f'), 'made on the server in d/sub\n');
    await journaled(s, before);
    await comeBack(farm, c, how);
    await assertSettled(farm.all, 40_000);
    assert.deepEqual(farm.logMessages(c, /resync|refused|does not apply/i), [], 'no refusal, no resync');
    for (const d of farm.all) {
      assert.deepEqual(readdirSync(join(d, 'd/sub')).sort(), ['f', 'g'], `${d}: d/sub holds the server's entries`);
      assert.equal(readlinkSync(join(d, 'd/sub/g')), 'nowhere', `${d}: d/sub/g is the server's symlink`);
      assert.equal(readFileSync(join(d, 'd/sub/f'), 'utf8'), 'made on the server in d/sub\n', `${d}: d/sub/f is the server's`);
      assert.deepEqual(readdirSync(join(d, 'd/deep')), ['x'], `${d}: the client's directory is at d/deep with its file`);
      assert.equal(readFileSync(join(d, 'd/deep/x'), 'utf8'), 'a\'s x\n', `${d}: d/deep/x is a's x`);
    }
  });
}
