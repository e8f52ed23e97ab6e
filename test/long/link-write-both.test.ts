// Invariant: off line, a client links c to a, writes through a, then through c; once connected every node
// has both writes through both names, one inode, and the server took the batch as it came: no refusal, no
// resync.
//
// Fails without ApplyPath#baseOf finding c's own version before the write through a (FilesetDb#lastVersionOf):
// it followed a's pre-version instead, and refused the write through c as "made against version 0x0, current
// is 0x3". Here the client rebases it and the next try goes through; in chaos s39 seed 9230 (c1, after a
// reconnection full of conflict steps) it did not, three refusals and a resync.
import assert from 'node:assert/strict';
import { appendFileSync, linkSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, conflictCopies, disconnect, eventually, reconnect } from '../farm.js';

test('off line: link c to a, write through a, then through c; one file everywhere, no resync', { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, { clients: 1, prepare: (s) => writeFileSync(join(s, 'a.txt'), 'made on the server\n') });
  const [c] = farm.clients as [string];
  await assertSettled(farm.all);
  await disconnect(farm, c);
  linkSync(join(c, 'a.txt'), join(c, 'c.txt'));
  await eventually('the client journals the link', () => journalState(c).lml, (n) => n >= 1);
  writeFileSync(join(c, 'a.txt'), 'written through a\n');
  await eventually('the client journals the write through a', () => journalState(c).lml, (n) => n >= 2);
  appendFileSync(join(c, 'c.txt'), 'appended through c\n');
  await eventually('the client journals the append through c', () => journalState(c).lml, (n) => n >= 3);
  reconnect(c);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assert.equal(readFileSync(join(d, 'a.txt'), 'utf8'), 'written through a\nappended through c\n', `${d}: a has both writes`);
    assert.equal(statSync(join(d, 'a.txt')).ino, statSync(join(d, 'c.txt')).ino, `${d}: a and c one inode`);
    assert.deepEqual(conflictCopies(d), [], `${d}: no conflict copy`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs|refused/i), [], 'no refusal, no resync');
});
