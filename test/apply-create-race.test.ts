// Invariant: a peer's new file never replaces a local file made at the same name in the moment between the apply
// path's check and its placing of the new file: the local file stays (capture journals it, and the conflict step
// meets the two when the record comes again), and the record is refused as at the check.
//
// Chaos s70 seed 9245: c2 made delta/deep/f.json (`replace`: a temp file renamed over the name) within
// milliseconds of the server's create of the same name; the staged file was renamed over c2's, which was then on
// no node. Fails without ApplyPath's placeNew (a link, which never replaces a name): the rename took the name.
// The moment is made here by a program's file written while the apply path sets the staged file's mode.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs, { readFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';
import { NO_VERSION, type NodeId } from '#core/ids.js';
import { IntersyncError } from '#core/errors.js';
import { applyFixture } from './apply-fixture.js';

test('a local file made at the name while a peer\'s create of it is being placed stays; the create is refused', (t) => {
  const { root, db, apply } = applyFixture(t, 'intersync-create-race-');
  const content = Buffer.from('the peer\'s new file\n');
  const d = {
    kind: 'create' as const, fid: db.newFid(), path: 'f.json', newPath: null, target: null, preVersion: NO_VERSION,
    size: content.length, hash: createHash('sha256').update(content).digest('hex'), mode: 0o640, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0,
    mtimeMs: Date.now(), origin: '00000000000000aa' as NodeId, time: Date.now(),
  };
  const staged = apply.stageBytes({ ...d, mode: 0o644 }, content); // other attributes than the record's: set before it is placed
  assert.equal(apply.check(d), null, 'the name is free at the check');
  const chmod = fs.chmodSync;
  let wrote = false;
  fs.chmodSync = ((p: fs.PathLike, mode: fs.Mode) => {
    chmod(p, mode);
    if (!wrote && p === staged.file) {
      wrote = true;
      fs.writeFileSync(join(root, 'f.json'), 'a program\'s own f.json\n'); // the local program, in that moment
    }
  }) as typeof fs.chmodSync;
  syncBuiltinESMExports();
  t.after(() => {
    fs.chmodSync = chmod;
    syncBuiltinESMExports();
  });
  let committed = false;
  assert.throws(() => apply.apply(d, staged, () => {
    committed = true;
  }), (e: unknown) => e instanceof IntersyncError && e.code === 'CONFLICT', 'the create is refused');
  assert.equal(wrote, true, 'the local file was made between the check and the placing');
  assert.equal(readFileSync(join(root, 'f.json'), 'utf8'), 'a program\'s own f.json\n', 'the local file is whole');
  assert.equal(committed, false, 'nothing journaled for the refused create');
  assert.equal(db.objectByPath('f.json'), undefined, 'the name is not journaled as the peer\'s');
});
