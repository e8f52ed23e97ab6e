// Invariant: a chmod made on a client while away through a hard-linked file, while the server removes one of
// its names, reaches the name that is left on every node, with no resync: the mode is the inode's, not a name's.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, linkSync, lstatSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Farm, assertSettled, changeAway, comeBack, journaled } from '../farm.js';
import { journalState } from '../helpers.js';

for (const how of ['disconnected', 'stopped'] as const) {
  for (const through of ['f', 'g'] as const) {
    test(`${how}: f and g one file; chmod 600 through ${through} on the client; the server removes f; g is 600 everywhere`, { timeout: 120_000 }, async (t) => {
      const farm = await Farm.start(t, {
        clients: 1,
        prepare: (s) => {
          writeFileSync(join(s, 'f'), 'one inode, two names\n', { mode: 0o644 });
          linkSync(join(s, 'f'), join(s, 'g'));
        },
      });
      const [c] = farm.clients as [string];
      const s = farm.server;
      await assertSettled(farm.all);
      await changeAway(farm, c, how, [['the chmod', () => chmodSync(join(c, through), 0o600)]]);
      const before = journalState(s).lastTid;
      rmSync(join(s, 'f'));
      await journaled(s, before);
      await comeBack(farm, c, how);
      await assertSettled(farm.all);
      assert.deepEqual(farm.logMessages(c, /resyncing|does not apply/i), [], 'no resync');
      for (const d of farm.all) {
        assert.equal(existsSync(join(d, 'f')), false, `${d}: f is gone`);
        assert.equal(lstatSync(join(d, 'g')).mode & 0o777, 0o600, `${d}: g has the client's mode`);
      }
    });
  }
}
