// Invariant: a directory moved to one place on a client while away and to another on the server, whose entries
// the server then writes (and the client changed one of), ends at one name with every write kept, on every node,
// and no resync. Written while tracing chaos s93 seed 9301, c5 (its own epsilon moved to alpha/deep here, to
// alpha.conflict-…/sub on the server, then epsilon/sub/a.txt written there: "parent …/sub/sub does not exist
// here", a resync).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Farm, assertSettled, changeAway, comeBack, journaled } from '../farm.js';
import { journalState } from '../helpers.js';

for (const how of ['disconnected', 'stopped'] as const) {
  for (const localWrite of [false, true]) {
    test(`${how}: e moved to a/deep on the client${localWrite ? ' and e/sub/h written there' : ''}; e moved to x/sub on the server and e/sub/a written: one name, every write kept`, { timeout: 120_000 }, async (t) => {
      const farm = await Farm.start(t, {
        clients: 1,
        prepare: (s) => {
          mkdirSync(join(s, 'e/sub'), { recursive: true });
          writeFileSync(join(s, 'e/sub/a'), 'a first\n');
          writeFileSync(join(s, 'e/sub/h'), 'h first\n');
          mkdirSync(join(s, 'a'));
          mkdirSync(join(s, 'x'));
        },
      });
      const [c] = farm.clients as [string];
      const s = farm.server;
      await assertSettled(farm.all);
      const steps: Array<[string, () => void]> = [['the move', () => renameSync(join(c, 'e'), join(c, 'a/deep'))]];
      if (localWrite) steps.push(['the write', () => writeFileSync(join(c, 'a/deep/sub/h'), 'h written on the client\n')]);
      await changeAway(farm, c, how, steps);
      let before = journalState(s).lastTid;
      renameSync(join(s, 'e'), join(s, 'x/sub'));
      await journaled(s, before);
      before = journalState(s).lastTid;
      writeFileSync(join(s, 'x/sub/sub/a'), 'a written on the server\n');
      await journaled(s, before);
      await comeBack(farm, c, how);
      await assertSettled(farm.all);
      assert.deepEqual(farm.logMessages(c, /resyncing|does not apply/i), [], 'no resync');
      const at = ['a/deep', 'x/sub'].filter((p) => existsSync(join(s, p)));
      assert.equal(at.length, 1, `one name on the server: ${at.join(', ')}`);
      for (const d of farm.all) {
        assert.equal(readFileSync(join(d, at[0]!, 'sub/a'), 'utf8'), 'a written on the server\n', `${d}: the server's write`);
        if (localWrite) {
          const hs = ['sub/h'].map((p) => readFileSync(join(d, at[0]!, p), 'utf8'));
          assert.deepEqual(hs, ['h written on the client\n'], `${d}: the client's write`);
        }
      }
    });
  }
}
