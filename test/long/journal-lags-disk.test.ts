// Invariant: a client whose journal lags its own disk (a name of a hard-linked inode whose row kept an older
// inode, so a change made through another name did not reach it) catches the journal up with the disk before it
// takes a difference from the server's digest for a reason to resync: it rescans, journals what the disk holds,
// sends it, and compares again.
//
// Fails without checkDigest (daemon/client-digest.ts) rescanning first: chaos s50 seed 9250, c2 (a chmod through one name; the
// server's record named every name of the inode, the client's row of one kept its old mode: "state differs …
// with nothing pending", a resync).
import assert from 'node:assert/strict';
import { chmodSync, linkSync, lstatSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { FilesetDb } from '#journal/fileset-db.js';
import { findFileset } from '#journal/layout.js';
import { Farm, assertSettled, eventually } from '../farm.js';

test('a client whose row of one name of a hard link lags the disk: a chmod through the other name converges with no resync', { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, { clients: 1, prepare: (s) => {
    writeFileSync(join(s, 'f'), 'one file\n');
    linkSync(join(s, 'f'), join(s, 'g'));
  } });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  // The client's row of g names an inode that is not g's (as an earlier step can leave it), written beside the
  // running daemon (SQLite takes the two writers in turn; only the row's identity changes, not the digest).
  const db = FilesetDb.open(findFileset(c).db);
  try {
    const g = db.objectByPath('g')!;
    db.setIdentity(g.fid, { ino: '4000000001', mtimeNs: 1n, ctimeNs: 1n, racy: false });
  } finally {
    db.close();
  }
  chmodSync(join(c, 'f'), 0o600);
  await eventually('the server has the chmod', () => lstatSync(join(s, 'g')).mode & 0o777, (m) => m === 0o600);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    for (const n of ['f', 'g']) assert.equal(lstatSync(join(d, n)).mode & 0o777, 0o600, `${d}: ${n} has the mode`);
    assert.equal(lstatSync(join(d, 'f')).ino, lstatSync(join(d, 'g')).ino, `${d}: f and g one file`);
  }
  assert.deepEqual(farm.logMessages(c, /resyncing|resync done|does not apply/i), [], 'no resync');
  assert.ok(farm.logMessages(c, /rescanning this node's disk/).length > 0, 'the digest differed, and the client looked at its disk again');
});
