// Invariant: a file made here and not accepted yet, whose pending create still names a place it left (a
// conflict step moved it and its records kept the old name, as chaos runs leave it), goes to the server at
// the name it has here when the server takes that old name: every node ends with the same names, no resync.
//
// Fails without the conflict step renaming such a record to the object's name here (the conflict step's nameStep,
// a pending record onto the name whose object moved on with no pending move of its own): it shipped under a
// fresh conflict name while the client held the file at the other, "state differs … with nothing pending",
// a resync (chaos s41 seeds 9270 and 9275, s42 seed 9247, s43 seed 9301).
import assert from 'node:assert/strict';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Fid } from '#core/ids.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { findFileset } from '#journal/layout.js';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, disconnect, eventually, journaled, reconnect, treeFiles } from '../farm.js';

test('a pending create that still names the place its file left: shipped at the file\'s name here', { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, { clients: 1, prepare: (s) => writeFileSync(join(s, 'keep'), 'on the server\n') });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await disconnect(farm, c);
  writeFileSync(join(c, 'x'), 'made on the client\n');
  await eventually('the client journals the file', () => journalState(c).lml, (n) => n >= 1);
  await farm.stopNode(c);
  // The file moves to y here; its row follows, its pending create still says x (the bookkeeping a conflict
  // step's move left behind in those runs).
  renameSync(join(c, 'x'), join(c, 'y'));
  const db = FilesetDb.open(findFileset(c).db);
  try {
    const o = db.objectByPath('x');
    assert.ok(o !== undefined, 'x journaled');
    const rec = db.readLml().find((r) => r.fid === o.fid);
    assert.ok(rec !== undefined, 'its create is pending');
    db.relocateLocal(o.fid as Fid, 'y');
    db.renameInLml(o.fid as Fid, rec.seq, 'y', 'x');
    assert.equal(db.readLml().find((r) => r.fid === o.fid)?.path, 'x', 'the record names x still');
  } finally {
    db.close();
  }
  const before = journalState(s).lastTid;
  writeFileSync(join(s, 'x'), 'made on the server\n');
  await journaled(s, before);
  await farm.startNode(c);
  reconnect(c);
  await assertSettled(farm.all);
  const names = (d: string): string[] => [...treeFiles(d).keys()].filter((p) => !p.startsWith('.intermezzo')).sort();
  for (const d of farm.all) {
    assert.deepEqual(names(d), ['keep', 'x', 'y'], `${d}: the server's x, the client's y`);
    assert.equal(readFileSync(join(d, 'y'), 'utf8'), 'made on the client\n', `${d}: y`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs|refused/i), [], 'no refusal, no resync');
});
