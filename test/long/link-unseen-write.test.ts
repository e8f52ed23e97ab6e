// Invariant: a write through a hard link a client made, to a file the server changed after what the client had
// applied, is a conflict: neither write is lost, and every node ends equal without a resync.
// Found by the widened chaos run (issue 11, seed 9218, c3): c3 linked delta/c to delta/g.txt and wrote
// through delta/c while the server, restarted, had journaled its own truncate of delta/g.txt; c3's
// reintegration reached the server before its stream did. The write's object was the new link, whose version
// on the server was the link's own, so the pre-version check passed: the server's truncate was overwritten
// (lost), and c3, applying the truncate afterwards through the other names only, held two inodes where the
// server held one ("state differs", a resync).
// Fails without the fix (net/server.ts: a reintegration's `seen` and FilesetDb#foreignContentAfter): the
// server's write is gone from every node.
import assert from 'node:assert/strict';
import { chmodSync, linkSync, lstatSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, eventually, journaled, treeFiles } from '../farm.js';

for (const how of ['write', 'chmod'] as const) {
test(`a ${how} through a new hard link on a client whose stream lags, to a file the server wrote meanwhile: both writes survive, one inode everywhere, no resync`, { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, { clients: 1, proxied: true });
  const [c] = farm.clients as [string];
  const s = farm.server;
  let before = journalState(s).lastTid;
  writeFileSync(join(s, 'g.txt'), 'the first version\n');
  await journaled(s, before);
  await assertSettled(farm.all);
  farm.proxyOf(c).stallStreams();
  before = journalState(s).lastTid;
  writeFileSync(join(s, 'g.txt'), 'written on the server\n');
  await journaled(s, before);
  const written = journalState(s).lastTid;
  linkSync(join(c, 'g.txt'), join(c, 'c'));
  if (how === 'write') writeFileSync(join(c, 'c'), 'written on the client through c\n');
  else chmodSync(join(c, 'c'), 0o600);
  const why = (): string => JSON.stringify(farm.logMessages(c, /refused|resync|does not apply|conflict|redo/));
  await eventually('the server accepts the client\'s link', () => journalState(s).lastTid > written, (v) => v, 20_000, why);
  // The write is refused (with the fix) or accepted (without it): either way the answer has come.
  await eventually('the server answers the client\'s change', () => journalState(c).lml === 0 || farm.logMessages(c, /reintegration refused/).length > 0, (v) => v, 20_000, why);
  farm.proxyOf(c).resumeStreams();
  await assertSettled(farm.all);
  for (const d of farm.all) {
    const files = [...treeFiles(d)].sort();
    const contents = files.map(([, body]) => body);
    assert.ok(contents.includes('written on the server\n'), `${d}: the server's write is kept (${JSON.stringify(files)}; client: ${why()})`);
    if (how === 'write') assert.ok(contents.includes('written on the client through c\n'), `${d}: the client's write is kept (${JSON.stringify(files)})`);
    assert.equal(lstatSync(join(d, 'g.txt')).ino, lstatSync(join(d, 'c')).ino, `${d}: g.txt and c are one inode`);
    if (how === 'chmod') assert.equal(lstatSync(join(d, 'c')).mode & 0o777, 0o600, `${d}: the client's chmod through c`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply/i), [], `the client never resynced: ${why()}`);
});
}
