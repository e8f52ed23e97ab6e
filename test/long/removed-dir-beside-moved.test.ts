// Invariant: off line, a client makes a file in p/d and renames q to r, while the server moves p/d into q and
// removes it: the file the client made is kept beside the removed directory where that directory is here (in r),
// the pending record that made it names that place, and every node ends with the same names, no resync.
//
// A guard written while looking into chaos s70 seed 9247, c2 (a pending create named the place beside the
// removed directory's name of its time, while the conflict step had set the file beside the directory's place
// here; the server made it in the other directory, "here at …", a resync). This scenario passes on the code it
// was written on: the cause of 9247 is not reproduced yet (see docs/architecture.md, known open problems).
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, disconnect, journaled, journaledHere, reconnect, treeFiles } from '../farm.js';

test('off line: a file made in p/d; mv q r; the server moves p/d to q/d and removes it: the file is kept beside d in r, no resync', { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'p', 'd'), { recursive: true });
      writeFileSync(join(s, 'p', 'd', 'x'), 'in d\n');
      mkdirSync(join(s, 'q'));
      writeFileSync(join(s, 'q', 'y'), 'in q\n');
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await disconnect(farm, c);
  await journaledHere(c, 'the new file', () => writeFileSync(join(c, 'p', 'd', 'a.txt'), 'made on the client\n'));
  await journaledHere(c, 'the rename of q', () => renameSync(join(c, 'q'), join(c, 'r')));
  for (const fn of [() => renameSync(join(s, 'p', 'd'), join(s, 'q', 'd')), () => unlinkSync(join(s, 'q', 'd', 'x')), () => rmdirSync(join(s, 'q', 'd'))]) {
    const before = journalState(s).lastTid;
    fn();
    await journaled(s, before);
  }
  reconnect(c);
  await assertSettled(farm.all);
  const names = (d: string): string[] => [...treeFiles(d).keys()].filter((p) => !p.startsWith('.intermezzo')).sort();
  const want = names(s);
  const made = [...treeFiles(s)].filter(([, v]) => v === 'made on the client\n').map(([p]) => p);
  assert.equal(made.length, 1, `the client's new file is kept once: ${want.join(' ')}`);
  assert.ok(want.includes('r/y'), `q's file is in r: ${want.join(' ')}`);
  for (const d of farm.all) assert.deepEqual(names(d), want, `${d}: the server's names`);
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs|refused/i), [], 'no refusal, no resync');
});
