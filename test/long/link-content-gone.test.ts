// Invariant: a server's write through one name of a hard-linked file reaches a client that comes back after
// the server removed that name: the other name holds the write, as on the server, with no resync.
// Found by the widened chaos run (issue 11, seed 9216, c2): the write's content was asked for by the removed
// name's fid, which the server no longer had, so the client placed an empty stand-in in the inode, and the
// other name (still on the server, with the content) kept it: "state differs", a resync.
// Fails without the fix (ApplyPath#stageOrPlaceholder asking for the content by the record's other names).
import assert from 'node:assert/strict';
import { unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, serverLinked, disconnect, journaled, readOrNull, reconnect } from '../farm.js';

test('a write through a hard-linked name the server then removed reaches a client that was away, through the other name', { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, { clients: 1 });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await serverLinked(farm, 'a', 'b', 'the first version\n');
  await disconnect(farm, c);
  let before = journalState(s).lastTid;
  writeFileSync(join(s, 'a'), 'written on the server through a\n');
  await journaled(s, before);
  before = journalState(s).lastTid;
  unlinkSync(join(s, 'a'));
  await journaled(s, before);
  reconnect(c);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assert.equal(readOrNull(join(d, 'b')), 'written on the server through a\n', `${d}: b holds the write made through a`);
    assert.equal(readOrNull(join(d, 'a')), null, `${d}: a is gone`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply/i), [], 'the client never resynced');
});
