// Invariant: a peer's change applied to a hard-linked inode never vouches for a local write to that inode that
// capture has not journaled yet. Chaos seeds 9202 and 9220 (lost writes): a client wrote a file in place through
// one name; 14 ms later the server's `ln` of another name of the same inode came in. Applying the link moved the
// inode's change time, and the identity stored for every name of the inode was the stat after the link, "not
// racy": capture compared the written name, found its stat as journaled, and skipped it. The write was on disk,
// journaled nowhere, and the next write from the server replaced it on every node.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { linkSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { ApplyPath } from '#apply/apply-path.js';
import { NO_VERSION, type Fid, type NodeId } from '#core/ids.js';
import type { RecordDraft } from '#core/record.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { applyFixture } from './apply-fixture.js';

const fixture = (t: TestContext): ReturnType<typeof applyFixture> => applyFixture(t, 'intersync-apply-race-');

/** A peer's record `d`, applied and journaled here as the server does with a reintegrated one. */
function applyPeer(db: FilesetDb, apply: ApplyPath, d: RecordDraft): void {
  const err = apply.check(d);
  assert.equal(err, null, `the record applies: ${err?.message ?? ''}`);
  apply.apply(d, null, (identity) => db.commit([{ draft: d, identity }]));
}

test('a write through one name of a hard-linked file, not journaled yet when a peer links another name, is journaled after', async (t) => {
  // Fails without the fix (ApplyPath#apply: a link's target changed since journaled makes the stored identity racy):
  // the last run journals nothing, and f keeps the old hash in the journal while the disk holds the new content.
  const { root, db, rec, apply } = fixture(t);
  writeFileSync(join(root, 'f'), 'version 1\n');
  await rec.run([{ path: 'f' }]);
  linkSync(join(root, 'f'), join(root, 'g'));
  await rec.run([{ path: 'g' }]);
  const g = db.objectByPath('g')!;
  assert.equal(g.ino, db.objectByPath('f')!.ino, 'f and g journaled as one inode');
  // Capture is a moment behind: the write through g is on disk, not journaled.
  writeFileSync(join(root, 'g'), 'VERSION 2\n'); // same size: only the stamps tell
  const peer = '00000000000000aa' as NodeId;
  applyPeer(db, apply, {
    kind: 'link', fid: `${peer}-1` as Fid, path: 'h', newPath: null, target: 'f', targetFid: db.objectByPath('f')!.fid,
    preVersion: NO_VERSION, size: g.size, hash: g.hash, origin: peer, time: Date.now(),
    mode: g.mode, uid: g.uid, gid: g.gid, mtimeMs: g.mtimeMs,
  });
  assert.equal(db.objectByPath('h')?.ino, g.ino, 'the peer\'s link is journaled, on the same inode');
  await rec.run([{ path: 'g' }]); // the write's own event
  const after = db.objectByPath('g')!;
  assert.notEqual(after.hash, g.hash, 'the write through g is journaled');
  assert.equal(db.objectByPath('f')!.hash, after.hash, 'and every name of the inode shows it');
});

test('a server change of an inode whose other name is a file of its own here, written since journaled, waits until capture has journaled that write', async (t) => {
  // Fails without the fix (ApplyPath#apartWrittenSince): the change applies and its commit gives x, grouped
  // apart here, the change's version; x's write, journaled after, went out as made on the server's content
  // and replaced it on every node (chaos seed 9202: op214 lost).
  const { root, db, rec, apply } = fixture(t);
  writeFileSync(join(root, 'f'), 'version 1\n');
  writeFileSync(join(root, 'x'), 'x, apart\n');
  await rec.run([{ path: 'f' }, { path: 'x' }]);
  const f = db.objectByPath('f')!;
  const x = db.objectByPath('x')!;
  assert.notEqual(f.ino, x.ino, 'f and x are files of their own here');
  writeFileSync(join(root, 'x'), 'x, written here a moment ago\n'); // capture is a moment behind
  const peer = '00000000000000aa' as NodeId;
  const buf = Buffer.from('the server\'s content\n');
  const hash = createHash('sha256').update(buf).digest('hex');
  const staged = apply.stageBytes({ ...f, kind: 'write', newPath: null, target: null, preVersion: f.version, origin: peer, time: Date.now(), hash, size: buf.length }, buf);
  const d = {
    kind: 'write' as const, fid: f.fid, path: 'f', newPath: null, target: null, preVersion: f.version, size: staged.size, hash: staged.hash,
    origin: peer, time: Date.now(), mode: f.mode, uid: f.uid, gid: f.gid, mtimeMs: f.mtimeMs, links: [f.fid, x.fid].sort(),
  };
  assert.equal(apply.check(d), null, 'the version check passes');
  assert.throws(() => apply.apply(d, staged, (identity) => db.commit([{ draft: d, identity }])), /written here since it was journaled/);
  assert.equal(db.objectByPath('x')!.version, x.version, 'x keeps its own version');
  assert.equal(readFileSync(join(root, 'f'), 'utf8'), 'version 1\n', 'nothing applied');
  await rec.run([{ path: 'x' }]);
  assert.notEqual(db.objectByPath('x')!.hash, x.hash, 'the write to x is journaled, against x\'s own version');
});

test('a peer\'s setattr carrying other content than this node holds changes the attributes only: the journal keeps the content on disk', async (t) => {
  // Fails without the fix (ObjectTable#applyToObjects keeps a setattr's content; the server journals its own):
  // chaos seed 9205. A client's chmod of a file it held other content for (a write through another name of a
  // hard link there) carried that content's hash; the server's row took it, while its disk kept the old bytes:
  // its digest never equalled its scan, and the run never converged.
  const { root, db, rec, apply } = fixture(t);
  writeFileSync(join(root, 'f'), 'on the server\n');
  await rec.run([{ path: 'f' }]);
  const f = db.objectByPath('f')!;
  const peer = '00000000000000aa' as NodeId;
  applyPeer(db, apply, {
    kind: 'setattr', fid: f.fid, path: 'f', newPath: null, target: null, preVersion: f.version, size: 20,
    hash: createHash('sha256').update('held by the client\n').digest('hex'), origin: peer, time: Date.now(),
    mode: 0o600, uid: f.uid, gid: f.gid, mtimeMs: f.mtimeMs,
  });
  const after = db.objectByPath('f')!;
  assert.equal(after.mode, 0o600, 'the mode is the peer\'s');
  assert.equal(after.hash, createHash('sha256').update(readFileSync(join(root, 'f'))).digest('hex'), 'the journal names the content on disk');
  assert.equal(after.size, f.size);
});
