// Invariant: a move and a write of the same file on two nodes both survive, on every node, whatever reaches the
// server first, with no resync: a change of content (or of the mode) does not meet a move. Here and through
// another name of a hard-linked file; the move made while away (disconnected or stopped).
import assert from 'node:assert/strict';
import { chmodSync, linkSync, lstatSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Farm, assertSettled, changeAway, comeBack } from '../farm.js';

for (const how of ['disconnected', 'stopped'] as const) {
  for (const through of ['f', 'h'] as const) {
    test(`${how}: c1 moves f to g; c2 writes and chmods ${through === 'f' ? 'f' : 'h, a hard link of f'}; both survive everywhere`, { timeout: 120_000 }, async (t) => {
      const farm = await Farm.start(t, { clients: 2, prepare: (s) => {
        writeFileSync(join(s, 'f'), 'made on the server\n');
        linkSync(join(s, 'f'), join(s, 'h'));
      } });
      const [c1, c2] = farm.clients as [string, string];
      await assertSettled(farm.all);
      await changeAway(farm, c1, how, [['the move', () => renameSync(join(c1, 'f'), join(c1, 'g'))]]);
      writeFileSync(join(c2, through), 'written on c2\n');
      chmodSync(join(c2, through), 0o600);
      await assertSettled([farm.server, c2]);
      await comeBack(farm, c1, how);
      await assertSettled(farm.all);
      for (const d of farm.all) {
        assert.equal(readFileSync(join(d, 'g'), 'utf8'), 'written on c2\n', `${d}: g has c2's write`);
        assert.equal(lstatSync(join(d, 'g')).mode & 0o777, 0o600, `${d}: and its mode`);
        assert.equal(lstatSync(join(d, 'g')).ino, lstatSync(join(d, 'h')).ino, `${d}: g and h one file`);
        assert.equal(lstatSync(join(d, 'f'), { throwIfNoEntry: false }), undefined, `${d}: f moved`);
      }
      for (const d of farm.all) assert.deepEqual(farm.logMessages(d, /resync|does not apply|differs|conflict/i), [], `${d}: no resync, no conflict`);
    });
  }
}
