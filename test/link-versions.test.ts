// Invariant: a change the server accepts through one name of a hard-linked inode gives its version to every
// name the server holds of that inode, here too: the pending records of those names are made against it, and
// the server takes them at the next try, with no resync and no conflict copy.
//
// Test 1 fails without FilesetDb#acceptOwn finding the inode of a name removed here (its removal pending):
// off line, a client links b to a, writes through b and removes b; capture journals the write again as a's
// (Reconciler#carrierOf, made against a's version), the server accepts the link and the write through b,
// which gives a the write's version there (the record's `links` are a and b), and the client, with b gone
// from its object table, rebased nothing of a's. a's write was refused three times ("made against version
// …, current is …") and the client resynced (chaos seed 9202, c1: epsilon/sub/deep/a.txt).
import assert from 'node:assert/strict';
import { linkSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from './helpers.js';
import { Farm, assertSettled, conflictCopies, disconnect, eventually, readOrNull, reconnect } from './farm.js';

test('off line: link b to a, write through b, remove b; once connected a has the write on every node, no resync', { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, { clients: 1, prepare: (s) => writeFileSync(join(s, 'a.txt'), 'made on the server\n') });
  const [c] = farm.clients as [string];
  await assertSettled(farm.all);
  await disconnect(farm, c);
  linkSync(join(c, 'a.txt'), join(c, 'b.txt'));
  await eventually('the client journals the link', () => journalState(c).lml, (n) => n >= 1);
  writeFileSync(join(c, 'b.txt'), 'written off line through b\n');
  await eventually('the client journals the write', () => journalState(c).lml, (n) => n >= 2);
  unlinkSync(join(c, 'b.txt'));
  // The removal, and the write again as a's (b is gone, a holds it now).
  await eventually('the client journals the removal', () => journalState(c).lml, (n) => n >= 4);
  reconnect(c);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assert.equal(readFileSync(join(d, 'a.txt'), 'utf8'), 'written off line through b\n', `${d}: a has the write made through b`);
    assert.equal(readOrNull(join(d, 'b.txt')), null, `${d}: b removed`);
    assert.equal(statSync(join(d, 'a.txt')).nlink, 1, `${d}: a is the inode's only name`);
    assert.deepEqual(conflictCopies(d), [], `${d}: no conflict copy`);
  }
  // a's write goes in the batch that gives a the write's version there: refused once, then taken.
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs/i), [], 'no resync');
});
