// Invariant: a file a client moved out of a directory and the directory it removed, off line, while the server
// removed the file: the server's removal applies where the file is here, and every node ends without both
// (the server's removal beats a move), with no resync.
//
// Test 1 is a guard (it passed before: the conflict step takes the removed directory back for the record).
// Test 2 (the directory's parent moved too) fails without the conflict step leaving the object where it is here when the server's name of it is in a
// directory that is not here (the conflict step's objectStep, `stay`), and ClientNode placing the server's record at
// it then: the step refused ("parent d does not exist here") three times, and the client resynced (chaos
// s40 seed 9271, c3: `mv beta/sub/g.txt epsilon/d.md; rmdir beta/sub` while the server removed g.txt).
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, conflictCopies, disconnect, eventually, journaled, readOrNull, reconnect, treeFiles } from '../farm.js';

test('off line: move d/g out to e and remove d, while the server removes d/g: removed everywhere, no resync', { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'd'));
      writeFileSync(join(s, 'd', 'g'), 'made on the server\n');
      writeFileSync(join(s, 'keep'), 'another file\n');
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await disconnect(farm, c);
  renameSync(join(c, 'd', 'g'), join(c, 'e'));
  await eventually('the client journals the move', () => journalState(c).lml, (n) => n >= 1);
  rmdirSync(join(c, 'd'));
  await eventually('the client journals the removal of d', () => journalState(c).lml, (n) => n >= 2);
  const before = journalState(s).lastTid;
  unlinkSync(join(s, 'd', 'g'));
  await journaled(s, before);
  reconnect(c);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assert.equal(readOrNull(join(d, 'e')), null, `${d}: e gone (the server removed the file)`);
    assert.equal(readOrNull(join(d, 'd', 'g')), null, `${d}: d/g gone`);
    assert.deepEqual([...treeFiles(d).keys()].filter((p) => !p.startsWith('.intermezzo')).sort(), ['keep'], `${d}: only keep is left`);
    assert.deepEqual(conflictCopies(d), [], `${d}: no conflict copy`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs|refused/i), [], 'no refusal, no resync');
});

test('off line: move p/d/g out to e, remove p/d, move p to q, while the server removes p/d/g: removed everywhere, no resync', { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'p', 'd'), { recursive: true });
      writeFileSync(join(s, 'p', 'd', 'g'), 'made on the server\n');
      writeFileSync(join(s, 'keep'), 'another file\n');
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await disconnect(farm, c);
  renameSync(join(c, 'p', 'd', 'g'), join(c, 'e'));
  await eventually('the client journals the move', () => journalState(c).lml, (n) => n >= 1);
  rmdirSync(join(c, 'p', 'd'));
  await eventually('the client journals the removal of p/d', () => journalState(c).lml, (n) => n >= 2);
  renameSync(join(c, 'p'), join(c, 'q'));
  await eventually('the client journals the move of p', () => journalState(c).lml, (n) => n >= 3);
  const before = journalState(s).lastTid;
  unlinkSync(join(s, 'p', 'd', 'g'));
  await journaled(s, before);
  reconnect(c);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assert.equal(readOrNull(join(d, 'e')), null, `${d}: e gone (the server removed the file)`);
    assert.deepEqual([...treeFiles(d).keys()].filter((p) => !p.startsWith('.intermezzo')).sort(), ['keep'], `${d}: only keep is left`);
    assert.deepEqual(conflictCopies(d), [], `${d}: no conflict copy`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs|refused/i), [], 'no refusal, no resync');
});
