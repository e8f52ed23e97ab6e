// Invariant: two hard links the server makes to a name a client removed meanwhile (its removal pending) are
// one file on the client too, as on the server once the removal is accepted there.
//
// Fails without ClientNode noting the inode of the first link, placed as a file of its own, as the removed
// name's (FilesetDb#noteRemovedLinkAt): the second link was placed as a file of its own as well, and the
// client held b and c apart for good while the server held them as one file (the digests agree: they do not
// see link groups; chaos s40 seed 9278, c2: "alpha/deep/f.json: hard-link group differs").
import assert from 'node:assert/strict';
import { linkSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, disconnect, eventually, journaled, readOrNull, reconnect } from '../farm.js';

test('the server links b and c to a, which the client removed off line: b and c are one file everywhere', { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, { clients: 1, prepare: (s) => writeFileSync(join(s, 'a'), 'made on the server\n') });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await disconnect(farm, c);
  unlinkSync(join(c, 'a'));
  await eventually('the client journals the removal', () => journalState(c).lml, (n) => n >= 1);
  for (const name of ['b', 'c']) {
    const before = journalState(s).lastTid;
    linkSync(join(s, 'a'), join(s, name));
    await journaled(s, before);
  }
  reconnect(c);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assert.equal(readOrNull(join(d, 'a')), null, `${d}: a removed`);
    assert.equal(readFileSync(join(d, 'b'), 'utf8'), 'made on the server\n', `${d}: b holds the content`);
    assert.equal(statSync(join(d, 'b')).ino, statSync(join(d, 'c')).ino, `${d}: b and c one inode`);
    assert.equal(statSync(join(d, 'b')).nlink, 2, `${d}: b and c the inode's only names`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs|refused/i), [], 'no refusal, no resync');
});
