// Invariant: a server's record that a client was applying when its process died (noted in flight, renamed into
// place, not journaled) is journaled at the client's next start as the server's record, never as a local change
// of the client's; one that did not reach the disk is dropped, and the server's stream brings it again. Every
// note is cleared. (The server's side of the same recovery: recovery.test.ts; both run recoverInFlight.)
import assert from 'node:assert/strict';
import { chmodSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Tid } from '#core/ids.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { findFileset } from '#journal/layout.js';
import { recordToWire } from '#net/protocol/wire-record.js';
import { Farm, assertSettled, eventually, readOrNull } from './farm.js';
import { journalState } from './helpers.js';

test('a forwarded record in flight at a crash: journaled as the server\'s if it reached the disk, else applied again', { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, { clients: 1, prepare: (s) => writeFileSync(join(s, 'a.txt'), 'before\n') });
  const [c] = farm.clients as [string];
  await assertSettled(farm.all);
  await farm.stopNode(c);
  const before = journalState(farm.server).lastTid;
  writeFileSync(join(farm.server, 'reached.txt'), 'on disk before the crash\n');
  writeFileSync(join(farm.server, 'missed.txt'), 'never written on the client\n');
  await eventually('the server journals both', () => journalState(farm.server).lastTid, (tid) => tid >= before + 2n);
  await farm.stopNode(farm.server);

  const srv = FilesetDb.open(findFileset(farm.server).db, { readonly: true, check: false });
  const made = srv.readKml(before as Tid, 100);
  srv.close();
  const reached = made.find((r) => r.path === 'reached.txt')!;
  const missed = made.find((r) => r.path === 'missed.txt')!;
  assert.ok(reached !== undefined && missed !== undefined, 'the server journaled both files');
  // As the apply path leaves a client killed between the rename and the commit: the notes, one file in place.
  const db = FilesetDb.open(findFileset(c).db);
  db.markInflight(JSON.stringify({ via: 'forward', r: recordToWire(reached) }));
  db.markInflight(JSON.stringify({ via: 'forward', r: recordToWire(missed) }));
  const nodeId = db.meta.nodeId;
  db.close();
  const at = join(c, 'reached.txt');
  writeFileSync(at, 'on disk before the crash\n');
  chmodSync(at, reached.mode & 0o7777);
  utimesSync(at, reached.mtimeMs / 1000, reached.mtimeMs / 1000);

  await farm.startNode(farm.server);
  await farm.startNode(c);
  await assertSettled(farm.all);
  assert.equal(farm.logMessages(c, /recovered a change that was in flight/).length, 1, 'the change that reached the disk is recovered, once');
  assert.equal(readOrNull(join(c, 'missed.txt')), 'never written on the client\n', 'the other one came again');
  await farm.stopNode(c);
  await farm.stopNode(farm.server);
  const cdb = FilesetDb.open(findFileset(c).db, { readonly: true, check: false });
  try {
    assert.deepEqual(cdb.inflight(), [], 'every note is cleared');
    assert.equal(cdb.kmlAt(reached.tid)?.path, 'reached.txt', 'journaled as the server\'s record, at its TID');
    assert.equal(cdb.lmlCount(), 0, 'nothing journaled as a local change');
  } finally {
    cdb.close();
  }
  const sdb = FilesetDb.open(findFileset(farm.server).db, { readonly: true, check: false });
  try {
    assert.deepEqual(sdb.readKml(before as Tid, 100).filter((r) => r.origin === nodeId).map((r) => `${r.kind} ${r.path}`), [], 'the client sent none of it back');
  } finally {
    sdb.close();
  }
});
