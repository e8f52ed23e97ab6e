// Invariant: a client removes one name of a hard-linked file off line while the server moves that name: the
// move beats the removal (the name comes back at the server's new name), and it comes back as a name of the
// inode the client still holds under the other name, as on the server.
//
// Fails without the conflict step linking the name back to the inode's surviving name here instead of
// fetching the server's content into a file of its own (the conflict step's objectStep, needsServerContent with a
// survivor): f and h were one file on the server, two here, for good (the digests agree: they do not see link
// groups; chaos s42 seed 9253, c3: "delta/sub/e: hard-link group differs").
import assert from 'node:assert/strict';
import { readFileSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, disconnect, eventually, journaled, readOrNull, reconnect, serverLinked } from '../farm.js';

test('off line: remove g, a second name of f, while the server moves g to h: h comes back as a name of f\'s inode', { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, { clients: 1 });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await serverLinked(farm, 'f', 'g', 'one inode\n');
  await disconnect(farm, c);
  unlinkSync(join(c, 'g'));
  await eventually('the client journals the removal', () => journalState(c).lml, (n) => n >= 1);
  const before = journalState(s).lastTid;
  renameSync(join(s, 'g'), join(s, 'h'));
  await journaled(s, before);
  reconnect(c);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assert.equal(readOrNull(join(d, 'g')), null, `${d}: g gone`);
    assert.equal(readFileSync(join(d, 'h'), 'utf8'), 'one inode\n', `${d}: h, the moved name`);
    assert.equal(statSync(join(d, 'h')).ino, statSync(join(d, 'f')).ino, `${d}: f and h one inode`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs|refused/i), [], 'no refusal, no resync');
});
