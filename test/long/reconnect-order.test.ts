// Invariant: a client that starts (or comes back) with pending changes sends them only after the server's
// records have come (the reconnection sequence), so the outcome does not depend on which request reaches the
// server first. Found by test/long/hardlinks.test.ts failing now and then ("a name of a hard link replaced by
// a symlink … past retention", 5 of 6 runs under load): the client's removal of f reached the server before
// the stream told the client to resync; otherwise the resync kept the symlink beside. The same race let a
// write through a new link reach a restarted server before the client had its change (chaos seed 9218).
// Fails without the fix (Reintegrator#holdForStream, armed by ClientNode.start before the follower runs (daemon/client-node.ts)): with the stream held,
// the client's changes go at once.
import assert from 'node:assert/strict';
import { chmodSync, lstatSync, readFileSync, readlinkSync, statSync, symlinkSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, serverLinked, conflictCopies, eventually, journaled, pastRetention } from '../farm.js';

test('a client started with pending changes sends them only once its stream has said hello; past retention the resync decides, the same every time', { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, { clients: 1, proxied: true, serverArgs: ['--retain-records', '5'] });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await serverLinked(farm, 'f', 'g', 'version 1\n');
  await farm.stopNode(c);
  const before = journalState(s).lastTid;
  chmodSync(join(s, 'g'), 0o600);
  await journaled(s, before);
  await pastRetention(farm, 10);
  unlinkSync(join(c, 'f'));
  symlinkSync('other-0', join(c, 'f'));
  farm.proxyOf(c).stallStreams();
  await farm.startNode(c);
  await eventually('the client journals its removal of f and its symlink', () => journalState(c).lml, (n) => n >= 2);
  // A negative check needs some time to pass: the reintegrator sends within milliseconds of a commit.
  await sleep(2000);
  assert.ok(journalState(c).lml >= 2, 'nothing is sent while the stream has not said hello');
  assert.equal(lstatSync(join(s, 'f')).isFile(), true, 'the server still has f');
  farm.proxyOf(c).resumeStreams();
  await eventually('the client resynced past retention', () => farm.logMessages(c, /retention/).length, (n) => n > 0);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assert.equal(statSync(join(d, 'f')).ino, statSync(join(d, 'g')).ino, `${d}: f and g are one inode`);
    assert.equal(readFileSync(join(d, 'f'), 'utf8'), 'version 1\n');
    for (const n of ['f', 'g']) assert.equal((statSync(join(d, n)).mode & 0o777).toString(8), '600', `${d}: ${n} has the server's mode`);
    const copies = conflictCopies(d);
    assert.equal(copies.length, 1, `${d}: one conflict copy: ${copies.join(' ')}`);
    assert.equal(readlinkSync(join(d, copies[0]!)), 'other-0', `${d}: the client's symlink kept beside`);
  }
});
