// Invariant: a move changes names only. A peer's rename carrying other attributes than the object has here (its
// origin's at the move: older ones after a peer's chmod it was rebased over, or a chmod made with the move) leaves
// the journal as the disk: the object keeps its attributes. A chmod made with a move is journaled as a setattr of
// its own after the rename, so it reaches every node.
//
// Fails without ObjectTable#applyToObjects keeping the object's attributes on a rename: the row took the record's
// mode while the apply path only renamed, and the journal said 600 where the disk held 644, for good (chaos s49
// seed 9244, c3: "alpha/h: other mode", a resync).
import assert from 'node:assert/strict';
import { chmodSync, lstatSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { NodeId } from '#core/ids.js';
import type { RecordDraft } from '#core/record.js';
import { applyFixture } from './apply-fixture.js';

test('a peer\'s rename with another mode than the file has here: the journal keeps the mode the disk has', async (t) => {
  const { root, db, rec, apply } = applyFixture(t, 'intersync-rename-attrs-');
  writeFileSync(join(root, 'f'), 'x\n');
  chmodSync(join(root, 'f'), 0o644);
  await rec.run([{ path: 'f' }]);
  const f = db.objectByPath('f')!;
  const d: RecordDraft = { ...f, kind: 'rename', newPath: 'g', target: null, preVersion: f.version, origin: '00000000000000aa' as NodeId, time: Date.now(), mode: (f.mode & ~0o777) | 0o600 };
  assert.equal(apply.check(d), null);
  apply.apply(d, null, (identity) => db.commit([{ draft: d, identity }]));
  assert.equal(lstatSync(join(root, 'g')).mode & 0o777, 0o644, 'the disk keeps the mode (a rename changes names only)');
  assert.equal(db.objectByPath('g')!.mode & 0o777, 0o644, 'and so does the journal');
});

test('a move and a chmod journaled together: a rename, then a setattr with the new mode', async (t) => {
  const { root, db, rec } = applyFixture(t, 'intersync-rename-attrs-');
  writeFileSync(join(root, 'f'), 'x\n');
  chmodSync(join(root, 'f'), 0o644);
  await rec.run([{ path: 'f' }]);
  const before = db.lastTid;
  renameSync(join(root, 'f'), join(root, 'g'));
  chmodSync(join(root, 'g'), 0o600);
  await rec.run([{ path: 'f' }, { path: 'g' }]);
  const kinds = db.readKml(before, 10).map((r) => r.kind);
  assert.deepEqual(kinds, ['rename', 'setattr'], 'the chmod is a record of its own');
  assert.equal(db.objectByPath('g')!.mode & 0o777, 0o600, 'the journal has the new mode');
});
