// Invariant: nothing acknowledged is lost. A client writes a file while away; meanwhile another node moves the
// file and writes it at its new name. Both writes survive: the server's at the new name, the client's beside it
// (a conflict copy), on every node, with no resync. With and without a second name of the file made on the client
// while away (a hard link), whose name the server gave another file meanwhile.
import assert from 'node:assert/strict';
import { linkSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Farm, assertSettled, changeAway, comeBack, treeFiles } from '../farm.js';

for (const how of ['disconnected', 'stopped'] as const) {
  for (const linked of [false, true]) {
    test(`${how}: c1 writes x/c${linked ? ' through a link it made, gamma' : ''}; c2 moves x/c to c, writes c${linked ? ', makes its own gamma' : ''}; both writes survive`, { timeout: 120_000 }, async (t) => {
      const farm = await Farm.start(t, { clients: 2, prepare: (s) => {
        mkdirSync(join(s, 'x'));
        writeFileSync(join(s, 'x', 'c'), 'made on the server\n');
      } });
      const [c1, c2] = farm.clients as [string, string];
      const s = farm.server;
      await assertSettled(farm.all);
      await changeAway(farm, c1, how, [
        ...(linked ? [['the link', () => linkSync(join(c1, 'x', 'c'), join(c1, 'gamma'))] as const] : []),
        ['the write', () => writeFileSync(join(c1, 'x', 'c'), 'written on c1 while away\n')],
      ]);
      renameSync(join(c2, 'x', 'c'), join(c2, 'c'));
      await assertSettled([s, c2]);
      writeFileSync(join(c2, 'c'), 'written on c2 at the new name\n');
      if (linked) writeFileSync(join(c2, 'gamma'), 'gamma, made on c2\n');
      await assertSettled([s, c2]);
      await comeBack(farm, c1, how);
      await assertSettled(farm.all);
      for (const d of farm.all) {
        const files = treeFiles(d);
        const contents = [...files.values()];
        assert.equal(readFileSync(join(d, 'c'), 'utf8'), 'written on c2 at the new name\n', `${d}: c has c2's write`);
        assert.ok(contents.includes('written on c1 while away\n'), `${d}: c1's write is kept: ${JSON.stringify([...files])}`);
      }
      for (const d of farm.all) assert.deepEqual(farm.logMessages(d, /resyncing|does not apply/i), [], `${d}: no resync`);
    });
  }
}
