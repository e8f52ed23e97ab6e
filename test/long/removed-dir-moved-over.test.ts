// Invariant: off line, a client moves gamma/deep out to delta, moves gamma into it (delta/sub) and makes a file in
// delta, while the server empties and removes gamma/deep: the server's removal meets a directory that gained an
// entry here, the entry is kept, and every node ends with the same names, no resync.
//
// Fails without two changes to the conflict step (chaos s44 seed 9230, c3, the start of a cascade of six
// resyncs). Without `stay` (the conflict step's objectStep: leave the directory where it is when the server's name
// of it lies inside it here), it moved delta back to "delta/sub/deep", inside itself (EINVAL). Without
// #besideRemoved naming where each object set beside the directory is now, the pending move of gamma named
// the place beside the directory's name of its time, gamma/sub.conflict-…, a cycle on the server: refused
// three times, a resync.
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, disconnect, eventually, journaled, reconnect, treeFiles } from '../farm.js';

test('off line: mv gamma/deep delta; mv gamma delta/sub; a file in delta; the server removes gamma/deep: no resync', { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'gamma', 'deep'), { recursive: true });
      writeFileSync(join(s, 'gamma', 'deep', 'x'), 'in deep\n');
      writeFileSync(join(s, 'gamma', 'g'), 'in gamma\n');
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await disconnect(farm, c);
  renameSync(join(c, 'gamma', 'deep'), join(c, 'delta'));
  await eventually('the client journals the move', () => journalState(c).lml, (n) => n >= 1);
  renameSync(join(c, 'gamma'), join(c, 'delta', 'sub'));
  await eventually('the client journals the second move', () => journalState(c).lml, (n) => n >= 2);
  writeFileSync(join(c, 'delta', 'new'), 'made on the client\n');
  await eventually('the client journals the file', () => journalState(c).lml, (n) => n >= 3);
  for (const step of [() => unlinkSync(join(s, 'gamma', 'deep', 'x')), () => rmdirSync(join(s, 'gamma', 'deep'))]) {
    const before = journalState(s).lastTid;
    step();
    await journaled(s, before);
  }
  reconnect(c);
  await assertSettled(farm.all);
  const names = (d: string): string[] => [...treeFiles(d).keys()].filter((p) => !p.startsWith('.intermezzo')).sort();
  const want = names(s);
  assert.ok(want.some((p) => p.split('/').pop()!.startsWith('new')), `the client's new file is kept: ${want.join(' ')}`);
  assert.ok(want.some((p) => p.endsWith('/g')), `gamma's file is kept: ${want.join(' ')}`);
  for (const d of farm.all) assert.deepEqual(names(d), want, `${d}: the server's names`);
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs|refused/i), [], 'no refusal, no resync');
});
