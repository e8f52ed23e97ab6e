// Invariant: a client that writes through one name of a hard-linked file while away and then moves the other
// name over a third file keeps its write when the server removed the first name meanwhile: the inode lives on
// under the moved name, with the client's content, on every node.
//
// From chaos s58 seed 9279, c2: append to beta/sub/d.md (linked as gamma/sub/h) off line, then
// `mv gamma/sub/h beta/d.md`; the server had removed beta/sub/d.md. The append never reached the server, and
// c2 resynced ("other content"), keeping it only as a copy beside.
//
// Fails without the conflict step's heirNamesThen (#heirNameThen when written: a name with a pending move may take the changes made through the
// removed name, under its name of then): the append was kept beside twice as conflict copies, and d on the
// server kept the old content.
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Farm, assertSettled, changeAway, comeBack, journaled, serverLinked, treeFiles } from '../farm.js';
import { journalState } from '../helpers.js';

for (const how of ['disconnected', 'stopped'] as const) {
  for (const [over, moveFirst] of [[true, false], [false, false], [false, true]] as const) {
    const steps = moveFirst ? `move h (a's other name) to d, append through a` : `append through a, move h (a's other name) ${over ? 'over d' : 'to d'}`;
    test(`${how}: ${steps}; the server removes a: d holds the append everywhere`, { timeout: 120_000 }, async (t) => {
      const farm = await Farm.start(t, { clients: 1, prepare: (s) => { if (over) writeFileSync(join(s, 'd'), 'd on the server\n'); } });
      const [c] = farm.clients as [string];
      const s = farm.server;
      await serverLinked(farm, 'a', 'h', 'made on the server\n');
      const append = ['the append', () => appendFileSync(join(c, 'a'), 'appended on the client\n')] as const;
      const move = ['the move', () => renameSync(join(c, 'h'), join(c, 'd'))] as const;
      await changeAway(farm, c, how, moveFirst ? [move, append] : [append, move]);
      const before = journalState(s).lastTid;
      unlinkSync(join(s, 'a'));
      await journaled(s, before);
      await comeBack(farm, c, how);
      await assertSettled(farm.all);
      const want = 'made on the server\nappended on the client\n';
      assert.equal(readFileSync(join(s, 'd'), 'utf8'), want, `d on the server: ${JSON.stringify([...treeFiles(s)])}`);
      assert.deepEqual([...treeFiles(c)].sort(), [...treeFiles(s)].sort(), 'the client holds what the server holds');
      assert.deepEqual(farm.logMessages(c, /resyncing|does not apply/i), [], 'no resync');
    });
  }
}
