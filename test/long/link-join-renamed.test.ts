// Invariant: a client groups the names of an inode as the server does, even where a name the server links
// had a pending move here when the server's change through the inode came: the move does not touch content,
// so the name joins the inode all the same.
//
// Fails without joinLinks (apply/link-align.ts) skipping only names with pending changes of their content: a
// pending rename of d kept it a file of its own here while d and e were one inode on the server, and nothing
// later grouped them again; the digests agreed (they do not see link groups), the trees did not (chaos s40
// seed 9265, c3: "beta/d.md: hard-link group differs").
import assert from 'node:assert/strict';
import { readFileSync, renameSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, conflictCopies, disconnect, eventually, journalAsOnDisk, journaled, reconnect, serverLinked } from '../farm.js';

test('a name the server links, apart here with a pending move, joins the inode at the server\'s next write', { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, { clients: 1 });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await serverLinked(farm, 'e', 'd', 'one inode\n');
  // The client holds d as a file of its own (as a conflict step or a removal undone can leave it).
  await farm.stopNode(c);
  writeFileSync(join(c, 'd.new'), readFileSync(join(c, 'd')));
  const was = statSync(join(c, 'd'));
  utimesSync(join(c, 'd.new'), was.atime, was.mtime); // the same attributes: nothing for capture to journal
  renameSync(join(c, 'd.new'), join(c, 'd'));
  journalAsOnDisk(c, ['d', 'e']);
  await farm.startNode(c);
  await assertSettled(farm.all);
  assert.notEqual(statSync(join(c, 'd')).ino, statSync(join(c, 'e')).ino, 'the client starts with d apart');
  await disconnect(farm, c);
  renameSync(join(c, 'd'), join(c, 'd2'));
  await eventually('the client journals the move', () => journalState(c).lml, (n) => n >= 1);
  const before = journalState(s).lastTid;
  writeFileSync(join(s, 'e'), 'written on the server through e\n');
  await journaled(s, before);
  reconnect(c);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assert.equal(readFileSync(join(d, 'd2'), 'utf8'), 'written on the server through e\n', `${d}: d2 has the write`);
    assert.equal(statSync(join(d, 'd2')).ino, statSync(join(d, 'e')).ino, `${d}: d2 and e one inode`);
    assert.deepEqual(conflictCopies(d), [], `${d}: no conflict copy`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs|refused/i), [], 'no refusal, no resync');
});
