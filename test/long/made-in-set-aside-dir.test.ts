// Invariant: a directory made on a client while away, whose pending mkdir still names the place its parent left
// (a conflict step set the parent aside and the record kept the old name, as chaos runs leave it), is no rival of
// a directory the server makes at that old name in another parent: it keeps its name, in its own parent, on
// every node, with no resync.
//
// Fails without the directory check in the conflict step's nameStep (a pending record onto the name counts only when
// it gives the name in the directory that holds the name here now, RecordDraft.parent): the client's
// `mkdir alpha/sub` (its alpha set aside as alpha.c since) was taken for a rival of the server's alpha/sub and
// shipped as alpha/sub.conflict-…; the server placed it by its parent as alpha.c/sub.conflict-… while the client
// kept alpha.c/sub: "state differs … here at", a resync (chaos s61 seed 9246, c2).
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Fid } from '#core/ids.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { findFileset } from '#journal/layout.js';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, disconnect, eventually, journaled, reconnect, treeFiles } from '../farm.js';

test('a pending mkdir that still names the place its parent left: no rival of the server\'s directory there', { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, { clients: 1, prepare: (s) => writeFileSync(join(s, 'keep'), 'on the server\n') });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await disconnect(farm, c);
  mkdirSync(join(c, 'alpha'));
  await eventually('the client journals alpha', () => journalState(c).lml, (n) => n >= 1);
  mkdirSync(join(c, 'alpha', 'sub'));
  await eventually('the client journals alpha/sub', () => journalState(c).lml, (n) => n >= 2);
  writeFileSync(join(c, 'alpha', 'sub', 'f'), 'made on the client\n');
  await eventually('the client journals alpha/sub/f', () => journalState(c).lml, (n) => n >= 3);
  await farm.stopNode(c);
  // alpha is set aside as alpha.c; the pending mkdir of its sub still says alpha/sub (what a conflict step's
  // move left behind in that run); its parent is alpha's fid all the same.
  renameSync(join(c, 'alpha'), join(c, 'alpha.c'));
  const db = FilesetDb.open(findFileset(c).db);
  try {
    const alpha = db.objectByPath('alpha');
    const sub = db.objectByPath('alpha/sub');
    assert.ok(alpha !== undefined && sub !== undefined, 'alpha and alpha/sub journaled');
    db.relocateLocal(alpha.fid as Fid, 'alpha.c');
    const rec = db.readLml().find((r) => r.fid === sub.fid && r.kind === 'mkdir');
    assert.ok(rec !== undefined && rec.parent === alpha.fid, 'the mkdir of sub is pending, in alpha by fid');
    db.renameInLml(sub.fid as Fid, rec.seq, 'alpha.c/sub', 'alpha/sub');
    assert.equal(db.readLml().find((r) => r.fid === sub.fid && r.kind === 'mkdir')?.path, 'alpha/sub', 'the record names alpha/sub still');
  } finally {
    db.close();
  }
  let before = journalState(s).lastTid;
  mkdirSync(join(s, 'alpha'));
  await journaled(s, before);
  before = journalState(s).lastTid;
  mkdirSync(join(s, 'alpha', 'sub'));
  await journaled(s, before);
  await farm.startNode(c);
  reconnect(c);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assert.deepEqual([...treeFiles(d)].sort(), [['alpha.c/sub/f', 'made on the client\n'], ['keep', 'on the server\n']], `${d}: the client's sub in alpha.c`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs|refused/i), [], 'no refusal, no resync');
});
