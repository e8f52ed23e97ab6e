// Invariant: a client that, away, moved directory epsilon into delta and then out of it again (a file made in
// it in between), while the server moved delta into epsilon, converges with no resync: the moves replay on
// the server with no step that would put a directory inside itself. Chaos s97 seed 9390 (c3): the pending move
// of epsilon into delta was refused for ever there ("a directory cannot move inside itself"), where the server
// held delta inside epsilon, though the client's later move took epsilon out again; the client resynced.
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, changeAway, comeBack, journaled, treeFiles } from '../farm.js';

for (const how of ['disconnected', 'stopped'] as const) {
  for (const between of [true, false]) {
    test(`${how}: mv epsilon delta/sub${between ? ', a file in it' : ''}, mv delta/sub beta/sub on the client; mv delta epsilon/sub on the server: converged, no resync`, { timeout: 120_000 }, async (t) => {
      const farm = await Farm.start(t, {
        clients: 1,
        prepare: (s) => {
          for (const d of ['beta', 'delta', 'epsilon']) mkdirSync(join(s, d));
          writeFileSync(join(s, 'delta/d.txt'), 'in delta\n');
          writeFileSync(join(s, 'epsilon/e.txt'), 'in epsilon\n');
        },
      });
      const [c] = farm.clients as [string];
      const s = farm.server;
      await assertSettled(farm.all);
      await changeAway(farm, c, how, [
        ['the move into delta', () => renameSync(join(c, 'epsilon'), join(c, 'delta/sub'))],
        ...(between ? [['the file', () => writeFileSync(join(c, 'delta/sub/new.txt'), 'made on the client\n')] as [string, () => void]] : []),
        ['the move out', () => renameSync(join(c, 'delta/sub'), join(c, 'beta/sub'))],
      ]);
      const before = journalState(s).lastTid;
      renameSync(join(s, 'delta'), join(s, 'epsilon/sub'));
      await journaled(s, before);
      await comeBack(farm, c, how);
      await assertSettled(farm.all);
      assert.deepEqual(farm.logMessages(c, /resync/i), [], 'the client never resynced');
      const files = [...treeFiles(s).values()];
      for (const want of ['in delta\n', 'in epsilon\n', ...(between ? ['made on the client\n'] : [])]) assert.ok(files.includes(want), `the server holds ${JSON.stringify(want)}`);
      assert.equal(journalState(c).lml, 0, 'the client\'s LML is empty');
    });
  }
}
