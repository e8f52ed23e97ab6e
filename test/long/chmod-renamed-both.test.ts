// A guard: a chmod and a move of the same file made on a client while away (also after a move of its directory),
// and a move of that file to another name on the server, end in one name and the client's mode on every node,
// with no resync. Written while tracing chaos s91 seed 9331 (c2: "sub.conflict-…-6f/e.conflict-…-43: other
// mode", a resync, where c2 had chmodded a hard link's name, moved its directory and then the name, while the
// server moved the name aside); it passes on the code it was written against, so that trace is still open.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, lstatSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Farm, assertSettled, changeAway, comeBack, journaled } from '../farm.js';
import { journalState } from '../helpers.js';

for (const how of ['disconnected', 'stopped'] as const) {
  for (const order of ['chmod then move', 'move then chmod', 'chmod, its directory moved, then move'] as const) {
    test(`${how}, ${order} on the client (a to c, 600); the server moves a to b; one name, 600 everywhere`, { timeout: 120_000 }, async (t) => {
      const farm = await Farm.start(t, { clients: 1, prepare: (s) => {
        writeFileSync(join(s, 'a'), 'made on the server\n', { mode: 0o644 });
        mkdirSync(join(s, 'd'));
        writeFileSync(join(s, 'd', 'a'), 'made on the server\n', { mode: 0o644 });
      } });
      const [c] = farm.clients as [string];
      const s = farm.server;
      await assertSettled(farm.all);
      const inDir = order === 'chmod, its directory moved, then move';
      const a = inDir ? 'd/a' : 'a';
      const chmod: [string, () => void] = ['the chmod', () => chmodSync(join(c, order === 'move then chmod' ? 'c' : a), 0o600)];
      const move: [string, () => void] = ['the move', () => renameSync(join(c, inDir ? 'e/a' : 'a'), join(c, 'c'))];
      const moveDir: [string, () => void] = ['the directory\'s move', () => renameSync(join(c, 'd'), join(c, 'e'))];
      await changeAway(farm, c, how, order === 'chmod then move' ? [chmod, move] : inDir ? [chmod, moveDir, move] : [move, chmod]);
      const before = journalState(s).lastTid;
      renameSync(join(s, a), join(s, 'b'));
      await journaled(s, before);
      await comeBack(farm, c, how);
      await assertSettled(farm.all);
      const names = (inDir ? ['d/a', 'e/a', 'b', 'c'] : ['a', 'b', 'c']).filter((n) => existsSync(join(s, n)));
      assert.equal(names.length, 1, `one name on the server: ${names.join(', ')}`);
      for (const d of farm.all) assert.equal(lstatSync(join(d, names[0]!)).mode & 0o777, 0o600, `${d}: ${names[0]} has the client's mode`);
      assert.deepEqual(farm.logMessages(c, /resyncing|does not apply/i), [], 'no resync');
    });
  }
}
