// Invariant: a name both sides took while apart ends as two objects, each with its own content, and no
// refusal loop follows. Found by the widened chaos run (issue 11, seed 20260517).
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from './helpers.js';
import { Farm, disconnect, reconnect, assertSettled, eventually, journaled, readOrNull, treeFiles } from './farm.js';



test('a directory a disconnected client made and then renamed onto a name the server made meanwhile stays its own directory', { timeout: 120_000 }, async (t) => {
  // Fails without the fix: the server's "mkdir delta" merged with the client's directory that a pending
  // rename had moved to delta (both "made" delta): the rename record took the server directory's fid, and the
  // server refused "rename gamma -> delta" for ever ("the object is at delta here"), resync after resync,
  // so the client's delta/mine never reached the server.
  const farm = await Farm.start(t, { clients: 1 });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  // The server is down while the client makes gamma: its record is tried (and may have reached the
  // server), so the optimiser keeps it apart from the later rename.
  await farm.stopNode(s);
  mkdirSync(join(c, 'gamma'));
  writeFileSync(join(c, 'gamma/mine'), 'made on the client in gamma\n');
  await eventually('the client journals gamma and gamma/mine', () => journalState(c).lml, (n) => n >= 2);
  await eventually('the client tried to send them', () => farm.logMessages(c, /reintegration failed/).length, (n) => n > 0);
  await disconnect(farm, c);
  renameSync(join(c, 'gamma'), join(c, 'delta'));
  await eventually('the client journals the rename', () => journalState(c).lml, (n) => n >= 3);
  await farm.startNode(s);
  const before = journalState(s).lastTid;
  mkdirSync(join(s, 'delta'));
  writeFileSync(join(s, 'delta/theirs'), 'made on the server in delta\n');
  await journaled(s, before);
  reconnect(c);
  const why = (): string => JSON.stringify(farm.logMessages(c, /refused|resync|does not apply/));
  await eventually('the client\'s file reaches the server', () => [...treeFiles(s).values()], (v) => v.includes('made on the client in gamma\n'), 20_000, why);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assert.equal(readOrNull(join(d, 'delta/theirs')), 'made on the server in delta\n', `${d}: the server's delta/theirs`);
    const mine = [...treeFiles(d)].filter(([, v]) => v === 'made on the client in gamma\n').map(([k]) => k);
    assert.equal(mine.length, 1, `${d}: the client's file once (${JSON.stringify(mine)})`);
    assert.notEqual(mine[0], 'delta/mine', `${d}: the client's file is not merged into the server's delta`);
  }
  assert.deepEqual(farm.logMessages(c, /resync/i), [], 'the client never resynced');
  assert.equal(journalState(c).lml, 0, 'the client\'s LML is empty');
});
