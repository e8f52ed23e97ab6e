// Invariant: a directory or file moved on a client a moment before a server record of it (or of what it holds) is
// applied there, capture not having journaled the move yet, is still a move: the record applies at the new
// name, no removal is journaled, nothing is lost and no resync follows. And records a disconnected client made
// in a directory merged since with the server's are placed by the server's fid of it.
// Found by the chaos run, seed 9203, client c1: `mv delta alpha/sub` came just before the server's
// `setattr delta/g.txt`. Before the fix, journaling what changed at delta/g.txt before applying the record
// (syncPaths) looked at that name alone and journaled "unlink delta/g.txt"; the conflict step dropped that
// removal, put the server's content back at delta/g.txt and failed (ENOENT: delta was gone), and the object was
// gone from c1's table: the record did not apply three times ("object … does not exist here") and c1 resynced.
// Its second resync came from a rename made in c1's own delta, merged at 0x4 with the server's: the record still
// named c1's old fid as its directory, so the server could not follow that directory's later move and refused it
// three times ("parent beta.conflict-… does not exist here").
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { findFileset } from '#journal/layout.js';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, disconnect, eventually, journaled, readOrNull, treeFiles } from '../farm.js';

test('a server chmod of d/f reaches a client that has just moved d to e, before its capture journaled the move: e/f keeps its identity, no resync', { timeout: 120_000 }, async (t) => {
  // Fails without the fix: before applying the record the client journaled what changed at d/f (syncPaths)
  // and took the file, gone from d with its directory, for removed ("unlink d/f"); the conflict step then
  // dropped that removal and put the server's content back at d/f, which failed (ENOENT: d was gone), and
  // the object was lost: the record did not apply three times ("object … does not exist here") and the
  // client resynced the whole fileset.
  const farm = await Farm.start(t, {
    clients: 1,
    clientArgs: ['--settle-ms', '1500'], // the client's capture journals the move 1.5 s after it
    prepare: (s) => {
      mkdirSync(join(s, 'd'));
      writeFileSync(join(s, 'd/f'), 'made on the server\n', { mode: 0o644 });
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  renameSync(join(c, 'd'), join(c, 'e'));
  chmodSync(join(s, 'd/f'), 0o600);
  const why = (): string => JSON.stringify(farm.logMessages(c, /refused|resync|does not apply|retrying|conflict/));
  await eventually('the client\'s move reaches the server', () => readOrNull(join(s, 'e/f')), (x) => x !== null, 20_000, why);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assert.deepEqual([...treeFiles(d)], [['e/f', 'made on the server\n']], `${d}: e/f alone (client: ${why()})`);
    assert.equal(statSync(join(d, 'e/f')).mode & 0o777, 0o600, `${d}: e/f has the server's mode`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|conflict/), [], `no conflict, no refusal, no resync: ${why()}`);
  assert.equal(journalState(c).lml, 0, 'the client\'s LML is empty');
});

test('the same with the file itself moved (f to g) a moment before the server\'s chmod of f came: one file, at g, with the server\'s mode', { timeout: 120_000 }, async (t) => {
  // Fails without the fix: the client journaled "unlink f" (the name alone was looked at), the conflict step
  // brought f back for the server's change (update beats delete), and capture then took g for a new file: the
  // move became a copy, f and g on every node.
  const farm = await Farm.start(t, {
    clients: 1,
    clientArgs: ['--settle-ms', '1500'],
    prepare: (s) => writeFileSync(join(s, 'f'), 'made on the server\n', { mode: 0o644 }),
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  renameSync(join(c, 'f'), join(c, 'g'));
  chmodSync(join(s, 'f'), 0o600);
  const why = (): string => JSON.stringify(farm.logMessages(c, /refused|resync|does not apply|retrying|conflict/));
  await eventually('the client\'s move reaches the server', () => readOrNull(join(s, 'g')), (x) => x !== null, 20_000, why);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assert.deepEqual([...treeFiles(d)], [['g', 'made on the server\n']], `${d}: g alone (client: ${why()})`);
    assert.equal(statSync(join(d, 'g')).mode & 0o777, 0o600, `${d}: g has the server's mode`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply/), [], `no refusal, no resync: ${why()}`);
  assert.equal(journalState(c).lml, 0, 'the client\'s LML is empty');
});

test('a file a disconnected client made in its d, merged with the server\'s d, lands at e/f when the server has just moved d to e', { timeout: 120_000 }, async (t) => {
  // Fails without the fix: merging the two directories gave the client's d the server's fid in the LML's own
  // records (fid) but not in those naming it as their directory (parent): "create d/f" reached the server
  // naming a directory the server never had, so it was not placed in d where d is now, and was refused
  // ("parent d does not exist here"). Chaos seed 9203: such a record, three times refused, made c1 resync.
  const farm = await Farm.start(t, {
    clients: 1,
    serverArgs: ['--settle-ms', '1500'], // the server's capture journals its move 1.5 s after it
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await disconnect(farm, c);
  mkdirSync(join(c, 'd'));
  writeFileSync(join(c, 'd/f'), 'made on the client\n');
  await eventually('the client journals d and d/f', () => journalState(c).lml, (n) => n >= 2);
  const before = journalState(s).lastTid;
  mkdirSync(join(s, 'd'));
  await journaled(s, before);
  renameSync(join(s, 'd'), join(s, 'e')); // journaled on the server 1.5 s from now
  // As `intersync reconnect` does, without its process start (about a second): the client takes the server's
  // mkdir d (the merge) and sends its create well before the server journals the move.
  rmSync(findFileset(c).offlineFile);
  const why = (): string => JSON.stringify(farm.logMessages(c, /refused|resync|does not apply|conflict/));
  await eventually('the client\'s file reaches the server', () => readOrNull(join(s, 'e/f')), (x) => x !== null, 20_000, why);
  await assertSettled(farm.all);
  for (const d of farm.all) assert.deepEqual([...treeFiles(d)], [['e/f', 'made on the client\n']], `${d}: e/f alone (client: ${why()})`);
  assert.deepEqual(farm.logMessages(c, /refused|resync|does not apply/), [], `no refusal, no resync: ${why()}`);
  assert.equal(journalState(c).lml, 0, 'the client\'s LML is empty');
});
