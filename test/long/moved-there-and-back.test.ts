// Invariant: a directory a client moved away and back off line, with a file made in it while it was away,
// reintegrates as the file made in the directory at its name: the move there and back is no move, and a server
// move meanwhile that would make the first move a cycle (the server moved the other directory into this one)
// does not stop it.
//
// Fails without the LML optimiser folding a move there and back across records made inside the directory
// meanwhile (their names rewritten to the directory's name): the first move (beta into gamma/sub) went to the
// server, where gamma was inside beta by then, refused three times as "a directory cannot move inside itself",
// and the client resynced (chaos s42 seed 9246, c1).
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, conflictCopies, disconnect, eventually, journaled, reconnect, treeFiles } from '../farm.js';

test('off line: move beta into gamma, make a file in it, move it back, while the server moves gamma into beta: no resync', { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'beta'));
      writeFileSync(join(s, 'beta', 'a'), 'in beta\n');
      mkdirSync(join(s, 'gamma'));
      writeFileSync(join(s, 'gamma', 'b'), 'in gamma\n');
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await disconnect(farm, c);
  renameSync(join(c, 'beta'), join(c, 'gamma', 'sub'));
  await eventually('the client journals the move', () => journalState(c).lml, (n) => n >= 1);
  writeFileSync(join(c, 'gamma', 'sub', 'h'), 'made while away\n');
  await eventually('the client journals the file', () => journalState(c).lml, (n) => n >= 2);
  renameSync(join(c, 'gamma', 'sub'), join(c, 'beta'));
  await eventually('the client journals the move back', () => journalState(c).lml, (n) => n >= 3);
  const before = journalState(s).lastTid;
  renameSync(join(s, 'gamma'), join(s, 'beta', 'sub'));
  await journaled(s, before);
  reconnect(c);
  await assertSettled(farm.all);
  const names = (d: string): string[] => [...treeFiles(d).keys()].filter((p) => !p.startsWith('.intermezzo')).sort();
  for (const d of farm.all) {
    assert.deepEqual(names(d), ['beta/a', 'beta/h', 'beta/sub/b'], `${d}: the server's move, and the file made in beta`);
    assert.equal(readFileSync(join(d, 'beta', 'h'), 'utf8'), 'made while away\n', `${d}: beta/h`);
    assert.deepEqual(conflictCopies(d), [], `${d}: no conflict copy`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs|refused/i), [], 'no refusal, no resync');
});
