// Invariant: off line, a client moves one name of a hard-linked file and then removes it, while the server
// chmods the file through its other name: the removal is taken (the client's own move of the name came before
// it, no one else's change of that name meets it), the other name keeps the server's mode, and nothing resyncs.
//
// From chaos s76 seed 9244, c3: its rename of gamma/a.txt (kept beside as beta/a.conflict-…) was accepted, and
// its removal of that name, made before the server's chmod through beta/c reached it, was refused: the server
// counted c3's own move as a change of the name that meets the removal. The conflict step then brought the
// server's version back as a file of its own, with the mode the move's record carried: "other mode, hard
// links grouped otherwise", a resync.
//
// Fails without oneNameOf (apply/record-check.ts) leaving out the remover's own records (FilesetDb#hasLaterRecord's notFrom).
import assert from 'node:assert/strict';
import { chmodSync, existsSync, linkSync, lstatSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Farm, assertSettled, disconnect, journaled, journaledHere, reconnect, treeFiles } from '../farm.js';
import { journalState } from '../helpers.js';

test('off line: mv g h, rm h (one name of g/c); the server chmods c: the removal is taken, c keeps the mode, no resync', { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      writeFileSync(join(s, 'g'), 'made on the server\n', { mode: 0o644 });
      linkSync(join(s, 'g'), join(s, 'c'));
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await disconnect(farm, c);
  await journaledHere(c, 'the move', () => renameSync(join(c, 'g'), join(c, 'h')));
  await journaledHere(c, 'the removal', () => rmSync(join(c, 'h')));
  const before = journalState(s).lastTid;
  chmodSync(join(s, 'c'), 0o664);
  await journaled(s, before);
  reconnect(c);
  await assertSettled(farm.all, 40_000);
  for (const dir of farm.all) {
    assert.equal(lstatSync(join(dir, 'c')).mode & 0o777, 0o664, `c's mode on ${dir}`);
    assert.equal(existsSync(join(dir, 'h')) || existsSync(join(dir, 'g')), false, `the removed name stays removed on ${dir}: ${[...treeFiles(dir).keys()].join(' ')}`);
  }
  assert.deepEqual([...treeFiles(c)].sort(), [...treeFiles(s)].sort(), 'the client holds what the server holds');
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs/i), [], 'no refusal, no resync');
});
