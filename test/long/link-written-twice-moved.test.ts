// Invariant: two clients write the same hard-linked file while away, and one of them moves it: both writes
// survive on every node (one at the file's name, the other kept beside), even when the write is an emptying
// truncate, and every node ends equal without a resync.
//
// From chaos s63 seed 9235: c1 truncated epsilon/a.txt (linked as beta/sub/h) to 0 bytes while stopped; c2
// wrote it in place and renamed it over gamma/g.txt while stopped, and came back first. c1 took the server's
// move as "merged: local content, the server's name", and the server's write after it wrote over c1's: the
// empty content was on no node.
import assert from 'node:assert/strict';
import { linkSync, renameSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Farm, assertJournalsAgree, assertSettled, changeAway, comeBack, journaled, serverLinked, treeFiles } from '../farm.js';
import { journalState } from '../helpers.js';

for (const how of ['disconnected', 'stopped'] as const) {
  for (const [size, server] of [[0, false], [5, false], [0, true]] as const) {
    const there = server ? '; the server links a as h2 and renames another file over g' : '';
    test(`${how}: c1 truncates a to ${size}; c2 writes a in place and moves it over g${there}: both writes kept everywhere`, { timeout: 120_000 }, async (t) => {
      const farm = await Farm.start(t, { clients: 2, prepare: (s) => writeFileSync(join(s, 'g'), 'g on the server\n') });
      const [c1, c2] = farm.clients as [string, string];
      await serverLinked(farm, 'a', 'h', 'made on the server, some forty bytes\n');
      await changeAway(farm, c1, how, [['the truncate', () => truncateSync(join(c1, 'a'), size)]]);
      await changeAway(farm, c2, how, [
        ['the write', () => writeFileSync(join(c2, 'a'), 'written in place on c2\n', { flag: 'r+' })],
        ['the move', () => renameSync(join(c2, 'a'), join(c2, 'g')), 2],
      ]);
      if (server) {
        const s = farm.server;
        let before = journalState(s).lastTid;
        linkSync(join(s, 'a'), join(s, 'h2'));
        await journaled(s, before);
        before = journalState(s).lastTid;
        writeFileSync(join(s, 'x'), 'x on the server\n');
        renameSync(join(s, 'x'), join(s, 'g'));
        await journaled(s, before);
      }
      await comeBack(farm, c2, how);
      await assertJournalsAgree([farm.server, c2]);
      await comeBack(farm, c1, how);
      await assertSettled(farm.all);
      const made = 'made on the server, some forty bytes\n';
      const truncated = made.slice(0, size);
      const written = `written in place on c2\n${made.slice('written in place on c2\n'.length)}`;
      for (const dir of farm.all) {
        const files = [...treeFiles(dir)];
        assert.ok(files.some(([, v]) => v === written), `c2's write on ${dir}: ${JSON.stringify(files)}`);
        assert.ok(files.some(([, v]) => v === truncated), `c1's truncate on ${dir}: ${JSON.stringify(files)}`);
      }
      for (const c of [c1, c2]) assert.deepEqual([...treeFiles(c)].sort(), [...treeFiles(farm.server)].sort(), `${c} holds what the server holds`);
      for (const c of [c1, c2]) assert.deepEqual(farm.logMessages(c, /resyncing|does not apply/i), [], 'no resync');
    });
  }
}
