// Invariant: a hard link a client made while away, and wrote through, never carries that write over a newer
// server write of the file it linked to, when a resync came between: both writes survive on every node, and
// the names are grouped alike everywhere.
//
// From chaos s64 seed 9226, c3 (and s63 seed 9222, c1, by a conflict step): c3 linked a name to gamma/e off
// line and wrote through it; the server wrote gamma/e; c3 resynced, which placed the server's content at gamma/e
// as a file of its own and left the new name, still pending, on the old inode with c3's write. The link then
// went to the server as a link, joined gamma/e's inode there, and the write through it, made against the link's
// own version, replaced the server's write: it was on no node.
//
// Fails without the reintegrator sending a link whose name holds another inode here than its target's as a
// file of its own (Reintegrator#withContent): the server's write of c was on no node.
import assert from 'node:assert/strict';
import { appendFileSync, linkSync, lstatSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Farm, assertSettled, disconnect, eventually, journaled, pastRetention, reconnect, treeFiles } from '../farm.js';
import { journalState } from '../helpers.js';

test('link a to c and append through a off line; the server writes c; a resync: both writes kept everywhere', { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, { clients: 1, serverArgs: ['--retain-records', '5'], prepare: (s) => writeFileSync(join(s, 'c'), 'made on the server\n') });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await disconnect(farm, c);
  let lml = journalState(c).lml;
  linkSync(join(c, 'c'), join(c, 'a'));
  await eventually('the client journals the link', () => journalState(c).lml, (n) => n > lml);
  lml = journalState(c).lml;
  appendFileSync(join(c, 'a'), 'appended on the client through a\n');
  await eventually('the client journals the append', () => journalState(c).lml, (n) => n > lml);
  const before = journalState(s).lastTid;
  writeFileSync(join(s, 'c'), 'written on the server\n');
  await journaled(s, before);
  await pastRetention(farm);
  reconnect(c);
  await eventually('the client resynced', () => farm.logMessages(c, /resyncing/).length, (n) => n > 0);
  await assertSettled(farm.all, 40_000);
  const client = 'made on the server\nappended on the client through a\n';
  for (const dir of farm.all) {
    const files = [...treeFiles(dir)];
    assert.ok(files.some(([, v]) => v === 'written on the server\n'), `the server's write on ${dir}: ${JSON.stringify(files)}`);
    assert.ok(files.some(([, v]) => v === client), `the client's append on ${dir}: ${JSON.stringify(files)}`);
  }
  assert.deepEqual([...treeFiles(c)].sort(), [...treeFiles(s)].sort(), 'the client holds what the server holds');
  assert.equal(lstatSync(join(c, 'a')).ino === lstatSync(join(c, 'c')).ino, lstatSync(join(s, 'a')).ino === lstatSync(join(s, 'c')).ino, 'a and c grouped alike');
});
