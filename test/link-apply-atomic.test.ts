// Invariant: a peer's write applied to a hard-linked file never shows a reader on this node a state that is
// neither the old content nor the new one, at any name of the inode, as for a file with one name (a temp file
// renamed into place). Chaos seeds 9202 (on the server) and 9203 (on client c2), "DESTROYED": the apply path
// wrote the new content into the shared inode in place (copyFileSync: truncate, then copy). A local write made
// in that moment read the file empty: c2's overwrite of beta/f.json's inode read nothing where the server's
// write op193 had just been put (and was on disk a moment later), so its program never saw that content, yet its
// write went out as made on it (0xe4, against 0x85) and replaced it on every node; on the server an in-place
// write read empty while c2's write 0xe5 was being put into a four-name inode.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { closeSync, linkSync, openSync, readFileSync, readSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { Worker } from 'node:worker_threads';
import { ApplyPath } from '#apply/apply-path.js';
import { NO_VERSION, type NodeId } from '#core/ids.js';
import { FilesetDb, type ObjectRow } from '#journal/fileset-db.js';
import { Reconciler } from '#presto/reconciler.js';
import { applyFixture } from './apply-fixture.js';

const fixture = (t: TestContext): ReturnType<typeof applyFixture> => applyFixture(t, 'intersync-link-apply-');

const peer = '00000000000000aa' as NodeId;

/** A peer's write of `path` with `content`, checked, applied and journaled here as the server does with a reintegrated one. */
function peerWrite(db: FilesetDb, apply: ApplyPath, path: string, content: Buffer): void {
  const o = db.objectByPath(path)!;
  const hash = createHash('sha256').update(content).digest('hex');
  const base = { ...o, newPath: null, target: null, preVersion: o.version, origin: peer, time: Date.now(), hash, size: content.length };
  const staged = apply.stageBytes({ ...base, kind: 'write' }, content);
  const d = { ...base, kind: 'write' as const, mtimeMs: Date.now() };
  const err = apply.check(d);
  assert.equal(err, null, `the record applies: ${err?.message ?? ''}`);
  apply.apply(d, staged, (identity) => db.commit([{ draft: d, identity }]));
}

/** f, g and h: one inode holding `content`, journaled. */
async function threeNames(root: string, rec: Reconciler, db: FilesetDb, content: Buffer): Promise<void> {
  writeFileSync(join(root, 'f'), content);
  await rec.run([{ path: 'f' }]);
  linkSync(join(root, 'f'), join(root, 'g'));
  linkSync(join(root, 'f'), join(root, 'h'));
  await rec.run([{ path: 'g' }, { path: 'h' }]);
  await rec.run([{ path: 'f' }, { path: 'g' }, { path: 'h' }]); // the links moved the change time: seen again
  assert.equal(db.objectByPath('g')!.ino, db.objectByPath('f')!.ino, 'one inode in the journal');
}

test('a reader that opened a hard-linked file before a peer\'s write is applied reads the old content whole; every name then shows the new one, journaled as on disk', async (t) => {
  // Fails without the fix (ApplyPath#apply replaces every name of the inode with the new file): the write went into
  // the inode in place, so the open reader read the new content (or nothing, in the moment between the truncate
  // and the copy).
  const { root, db, rec, apply } = fixture(t);
  const old = Buffer.from('version 1, as the reader opened it\n');
  await threeNames(root, rec, db, old);
  const fd = openSync(join(root, 'g'), 'r');
  try {
    const next = Buffer.from('version 2, the peer\'s\n');
    peerWrite(db, apply, 'f', next);
    const buf = Buffer.alloc(old.length + 64);
    const n = readSync(fd, buf, 0, buf.length, 0);
    assert.equal(buf.subarray(0, n).toString(), old.toString(), 'the reader reads the version it opened, whole');
    const f = statSync(join(root, 'f'));
    for (const name of ['f', 'g', 'h']) {
      assert.equal(readFileSync(join(root, name), 'utf8'), next.toString(), `${name} shows the peer's write`);
      assert.equal(statSync(join(root, name)).ino, f.ino, `${name} is still a name of the one inode`);
      const row = db.objectByPath(name)!;
      assert.equal(row.ino, String(f.ino), `${name}: the journal has the inode on disk`);
      assert.equal(row.hash, createHash('sha256').update(next).digest('hex'), `${name}: the journal has the new content`);
    }
    assert.equal(f.nlink, 3, 'the inode has the three names');
  } finally {
    closeSync(fd);
  }
  const lastTid = db.lastTid;
  await rec.run([{ path: 'f' }, { path: 'g' }, { path: 'h' }]);
  assert.equal(db.lastTid, lastTid, 'capture finds nothing changed: the journal is the disk');
});

test('a reader polling a hard-linked name while a peer\'s writes are applied to another name sees only whole versions, never an empty or half-written file', { timeout: 60_000 }, async (t) => {
  // Fails without the fix, as a rule (a race): the reader caught the inode empty or partly copied.
  const { root, db, rec, apply } = fixture(t);
  const versions = Array.from({ length: 24 }, (_, i) => Buffer.from(`version ${i} `.repeat(40_000 + 997 * i)));
  await threeNames(root, rec, db, versions[0]!);
  const hashes = versions.map((v) => createHash('sha256').update(v).digest('hex'));
  const stop = new Int32Array(new SharedArrayBuffer(4));
  const reader = new Worker(`
    const { parentPort, workerData } = require('node:worker_threads');
    const { readFileSync } = require('node:fs');
    const { createHash } = require('node:crypto');
    const known = new Set(workerData.hashes);
    const stop = new Int32Array(workerData.stop);
    let reads = 0;
    const torn = [];
    readFileSync(workerData.path);
    parentPort.postMessage('reading');
    while (Atomics.load(stop, 0) === 0) {
      const b = readFileSync(workerData.path);
      reads++;
      if (!known.has(createHash('sha256').update(b).digest('hex')) && torn.length < 5) torn.push(b.length);
    }
    parentPort.postMessage({ reads, torn });
  `, { eval: true, workerData: { path: join(root, 'g'), hashes, stop: stop.buffer } });
  t.after(() => reader.terminate());
  const reading = new Promise((resolve, reject) => {
    reader.once('message', resolve);
    reader.once('error', reject);
  });
  await reading;
  const seen = new Promise<{ reads: number; torn: number[] }>((resolve, reject) => {
    reader.once('message', resolve);
    reader.once('error', reject);
  });
  for (const v of versions.slice(1)) {
    peerWrite(db, apply, 'f', v);
    await new Promise((r) => setTimeout(r, 10));
  }
  Atomics.store(stop, 0, 1);
  const { reads, torn } = await seen;
  t.diagnostic(`${reads} reads`);
  assert.deepEqual(torn, [], `sizes of the reads that were no version written (of ${reads} reads)`);
});

test('a name of a hard-linked file removed here, its removal not sent yet, follows the inode a peer\'s write gives the other names', async (t) => {
  // The new content takes every name as a new inode: FilesetDb#removedLinkIno must say so (ConflictResolver and
  // Reintegrator find the names that live on by it, apply/link-align.ts removedLink), else it named a freed inode.
  const { root, db, rec, apply } = fixture(t);
  await threeNames(root, rec, db, Buffer.from('version 1\n'));
  const h = db.objectByPath('h')!;
  unlinkSync(join(root, 'h'));
  db.commitLocal([{ draft: { ...h, kind: 'unlink', newPath: null, target: null, preVersion: h.version, size: null, hash: null, origin: db.meta.nodeId, time: Date.now() }, identity: null }]);
  assert.equal(db.removedLinkIno(h.fid), h.ino, 'h removed here is noted with its inode');
  await rec.run([{ path: 'f' }, { path: 'g' }]); // the removal moved the inode's change time: seen again
  peerWrite(db, apply, 'f', Buffer.from('version 2, the peer\'s\n'));
  const now = String(statSync(join(root, 'g')).ino);
  assert.notEqual(now, h.ino, 'f and g took the new file');
  assert.equal(db.removedLinkIno(h.fid), now, 'the removed name follows the inode the other names hold now');
});

/** `o` removed from the disk and journaled removed, as capture would. */
function removedHere(root: string, db: FilesetDb, o: ObjectRow): void {
  unlinkSync(join(root, o.path));
  db.commitLocal([{ draft: { ...o, kind: 'unlink', newPath: null, target: null, preVersion: o.version, size: null, hash: null, origin: db.meta.nodeId, time: Date.now() }, identity: null }]);
}

test('a name removed here whose inode is gone is no name of a new file that gets the same inode number', async (t) => {
  // Chaos s69 seed 9259: c3 removed both names of an inode, made a new file that got the freed number, and a
  // server's link to a removed name joined the new file (removedLink found it by the number); the server's content
  // of the link then went into it, and c3's new file was on no node. Fails without FilesetDb#setIdentity
  // forgetting the noted names at a number a new object takes. The kernel's reuse of the number is given here as
  // the new file's identity, as the reconciler would journal it.
  const { root, db, rec } = fixture(t);
  writeFileSync(join(root, 'f'), 'version 1\n');
  await rec.run([{ path: 'f' }]);
  linkSync(join(root, 'f'), join(root, 'h'));
  await rec.run([{ path: 'h' }]);
  const h = db.objectByPath('h')!;
  const unlink = (o: typeof h): void => removedHere(root, db, o);
  unlink(h);
  assert.equal(db.removedLinkIno(h.fid), h.ino, 'h removed here is noted with its inode');
  unlink(db.objectByPath('f')!);
  writeFileSync(join(root, 'd'), 'a new file\n');
  const st = statSync(join(root, 'd'));
  const made = { fid: db.newFid(), path: 'd', kind: 'create' as const, newPath: null, target: null, preVersion: NO_VERSION, size: st.size, hash: null, mode: 0o644, uid: 0, gid: 0, mtimeMs: st.mtimeMs, origin: db.meta.nodeId, time: Date.now() };
  db.commitLocal([{ draft: made, identity: { ino: h.ino!, mtimeNs: BigInt(Math.round(st.mtimeMs * 1e6)), ctimeNs: BigInt(Math.round(st.ctimeMs * 1e6)), racy: false } }]);
  assert.equal(db.objectByPath('d')?.ino, h.ino, 'the new file has the number h\'s inode had');
  assert.equal(db.removedLinkIno(h.fid), null, 'h is no longer noted: its inode is gone');
  assert.deepEqual(db.removedLinksOf(h.ino!), [], 'and no removed name is of the new file');
});

test('a name removed here whose inode is gone is no name of a file that takes a new inode with the same number', async (t) => {
  // Chaos s78 seed 9302, c4: c4 removed a name of a hard-linked file (its other names gone too), and the server's
  // write of another file came a moment later: the apply path's temp file took the freed number and was renamed
  // over that file. The server's link to the removed name then joined it (removedLink found it by the number),
  // "hard links grouped otherwise", a resync. Fails without FilesetDb#setIdentity forgetting the noted names at a
  // number a written file takes anew. The kernel's reuse of the number is given here as the write's identity.
  const { root, db, rec } = fixture(t);
  writeFileSync(join(root, 'f'), 'version 1\n');
  writeFileSync(join(root, 'b'), 'another file\n');
  await rec.run([{ path: 'f' }, { path: 'b' }]);
  linkSync(join(root, 'f'), join(root, 'h'));
  await rec.run([{ path: 'h' }]);
  const h = db.objectByPath('h')!;
  const unlink = (o: typeof h): void => removedHere(root, db, o);
  unlink(h);
  unlink(db.objectByPath('f')!);
  assert.equal(db.removedLinkIno(h.fid), h.ino, 'h removed here is noted with its inode');
  const b = db.objectByPath('b')!;
  assert.notEqual(b.ino, h.ino, 'b is another inode');
  writeFileSync(join(root, 'b'), 'written again\n');
  const st = statSync(join(root, 'b'));
  const write = { ...b, kind: 'write' as const, newPath: null, target: null, preVersion: b.version, size: st.size, hash: null, origin: db.meta.nodeId, time: Date.now() };
  db.commitLocal([{ draft: write, identity: { ino: h.ino!, mtimeNs: BigInt(Math.round(st.mtimeMs * 1e6)), ctimeNs: BigInt(Math.round(st.ctimeMs * 1e6)), racy: false } }]);
  assert.equal(db.objectByPath('b')?.ino, h.ino, 'b took the number h\'s inode had');
  assert.equal(db.removedLinkIno(h.fid), null, 'h is no longer noted: its inode is gone');
  assert.deepEqual(db.removedLinksOf(h.ino!), [], 'and no removed name is of b');
});
