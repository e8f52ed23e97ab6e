// Invariant: a client's change below a directory the server moved a moment ago, before the server's capture
// journaled the move, is placed at the directory's new name (by its parent's fid) and no resync follows.
// Found by the widened chaos run (issue 11, seed 9205: the server refused "parent beta does not exist
// here" with a last TID that did not hold the move; the client, caught up by that TID, made beta again
// under a new fid, could not apply the server's rename of the old one, and resynced).
import assert from 'node:assert/strict';
import { linkSync, mkdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Farm, assertSettled, eventually, readOrNull, treeFiles } from './farm.js';

test('a client writes below a directory the server has just moved, not journaled yet: the file ends at the new name on every node, no resync', { timeout: 120_000 }, async (t) => {
  // Fails without FilesetServer waiting for capture (ServedFileset.settle) when a directory on a record's
  // way is journaled but gone from disk: the refusal made the client think beta gone ("a directory kept here
  // is gone on the server: made there again"), and the file ended in a beta made again beside gamma.
  const farm = await Farm.start(t, {
    clients: 1,
    serverArgs: ['--settle-ms', '1500'], // the server's capture journals the move 1.5 s after it
    prepare: (s) => {
      mkdirSync(join(s, 'beta'));
      writeFileSync(join(s, 'beta/a'), 'a\n');
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  renameSync(join(s, 'beta'), join(s, 'gamma'));
  writeFileSync(join(c, 'beta/new'), 'made on the client in beta\n');
  await eventually('the client\'s file reaches the server', () => readOrNull(join(s, 'gamma/new')) ?? readOrNull(join(s, 'beta/new')), (x) => x !== null, 20_000);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assert.equal(readOrNull(join(d, 'gamma/new')), 'made on the client in beta\n', `${d}: gamma/new: ${JSON.stringify([...treeFiles(d)])}`);
    assert.equal(readOrNull(join(d, 'gamma/a')), 'a\n', `${d}: gamma/a`);
    assert.equal(readOrNull(join(d, 'beta')), null, `${d}: no beta`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|made there again/), [], 'no resync, no refusal loop');
});

test('a client links to a file in a directory the server has just moved, not journaled yet: one inode at the new names on every node, no resync', { timeout: 120_000 }, async (t) => {
  // Fails without the link's target in FilesetServer#ancestorUnjournaled: the server refused the link ("parent
  // beta does not exist here") with a last TID that did not hold the move, and the client made beta again
  // under a new fid ("a directory kept here is gone on the server: made there again"), then could not apply
  // the server's rename of the old one and resynced (chaos s45 seed 9287).
  const farm = await Farm.start(t, {
    clients: 1,
    serverArgs: ['--settle-ms', '1500'],
    prepare: (s) => {
      mkdirSync(join(s, 'beta'));
      mkdirSync(join(s, 'delta'));
      writeFileSync(join(s, 'beta/a'), 'a\n');
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  renameSync(join(s, 'beta'), join(s, 'gamma'));
  linkSync(join(c, 'beta/a'), join(c, 'delta/l'));
  await eventually('the client\'s link reaches the server', () => readOrNull(join(s, 'delta/l')), (x) => x !== null, 20_000);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assert.equal(readOrNull(join(d, 'gamma/a')), 'a\n', `${d}: gamma/a: ${JSON.stringify([...treeFiles(d)])}`);
    assert.equal(statSync(join(d, 'delta/l')).ino, statSync(join(d, 'gamma/a')).ino, `${d}: delta/l and gamma/a are one inode`);
    assert.equal(readOrNull(join(d, 'beta')), null, `${d}: no beta`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|made there again|file of its own/), [], 'no resync, no refusal loop, no split');
});
