// Invariant: a file made on the server, hard-linked, then removed under its first name, reaches a client that
// comes back after all three: the link holds the content, as on the server, with no resync.
// Found by the chaos run s31 (seed 9228: all three clients resynced at one TID on "other content" of
// beta/sub.conflict-…/d.conflict-…-91.md). The create's content was gone from the server under its own name
// when the client asked for it, so an empty stand-in was placed and counted behind for that name only; the
// link then joined the stand-in, the removal took the name that was behind, and nothing fetched the link's.
// Fails without the fix (ClientNode: a link to a name still behind is behind too).
import assert from 'node:assert/strict';
import { linkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, disconnect, journaled, readOrNull, reconnect } from '../farm.js';

for (const size of ['small', 'large'] as const) {
test(`a ${size} file made, linked and removed under its first name on the server while a client was away: the link holds its content there too, no resync`, { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, { clients: 1 });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await disconnect(farm, c);
  // Large: past the size that travels inline with its record, so it moves as blocks.
  const content = size === 'small' ? 'made on the server\n' : 'made on the server, in blocks\n'.repeat(50_000);
  let before = journalState(s).lastTid;
  writeFileSync(join(s, 'f'), content);
  await journaled(s, before);
  before = journalState(s).lastTid;
  linkSync(join(s, 'f'), join(s, 'g'));
  await journaled(s, before);
  before = journalState(s).lastTid;
  unlinkSync(join(s, 'f'));
  await journaled(s, before);
  reconnect(c);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assert.equal(readOrNull(join(d, 'g')), content, `${d}: g holds the content`);
    assert.equal(readOrNull(join(d, 'f')), null, `${d}: f is gone`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply/i), [], 'the client never resynced');
});
}
