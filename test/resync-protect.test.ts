// Invariant: a resync never undoes a local removal the server has not seen contradicted: a file or symlink
// removed here, unchanged on the server since, stays removed (its pending unlink reintegrates) instead of
// being placed again from the snapshot. Seed 2001 of the widened chaos run: a client resynced because of
// another refused record, and a symlink it had removed came back on every node.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { systemClock } from '#core/clock.js';
import { NO_VERSION, asTid, formatTid, type Fid, type NodeId } from '#core/ids.js';
import type { ApplyPath } from '#apply/apply-path.js';
import { pendingPutBack, protectLocal, putBackAside } from '#daemon/resync-protect.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { mkfs } from '#journal/mkfs.js';
import type { SnapshotEntry } from '#net/peer-client.js';
import { tmpDir } from './helpers.js';

const SERVER = 'feedfacefeedface' as NodeId;

test('protectLocal keeps the pending removal of a file unchanged on the server, and gives up one the server changed since', (t) => {
  // Fails without the fix: both removals are dropped, so the snapshot places f again (skip lacks f's fid).
  const dir = tmpDir('intersync-protect-');
  const made = mkfs(dir.path, { fileset: 'default', force: false, clock: systemClock });
  const db = FilesetDb.open(made.paths.db);
  t.after(() => {
    db.close();
    dir.cleanup();
  });
  const put = (fid: Fid, path: string, tid: bigint): void => {
    writeFileSync(join(dir.path, path), `${path}\n`);
    db.commitRemote([{ record: {
      tid: asTid(tid), kind: 'create', fid, path, newPath: null, target: null, preVersion: NO_VERSION, postVersion: asTid(tid),
      mode: 0o644, uid: 0, gid: 0, mtimeMs: 1000, size: path.length + 1, hash: 'ab'.repeat(32), origin: SERVER, time: 1,
      digest: '00'.repeat(32), originSeq: null,
    }, identity: null }], SERVER, 1);
  };
  const f = 'feedfacefeedface-1' as Fid;
  const g = 'feedfacefeedface-2' as Fid;
  put(f, 'f', 1n);
  put(g, 'g', 2n);
  const entry = (fid: Fid, version: bigint): SnapshotEntry => {
    const o = db.objectByFid(fid)!;
    return { ...o, version: formatTid(asTid(version)), linkOf: null };
  };
  const snapshot = [entry(f, 1n), entry(g, 7n)]; // g changed on the server since (version 7)
  for (const [fid, path, v] of [[f, 'f', 1n], [g, 'g', 2n]] as const) {
    unlinkSync(join(dir.path, path));
    db.commitLocal([{ draft: {
      kind: 'unlink', fid, path, newPath: null, target: null, preVersion: asTid(v), mode: 0o644, uid: 0, gid: 0,
      mtimeMs: 1000, size: null, hash: null, origin: db.meta.nodeId as NodeId, time: 1,
    }, identity: null }]);
  }
  mkdirSync(join(dir.path, '.intermezzo/default/tmp'), { recursive: true });
  const apply = { stagedPath: () => join(dir.path, '.intermezzo/default/tmp/x') } as unknown as ApplyPath;
  const { skip } = protectLocal({ db, apply, root: dir.path, log: pino({ level: 'silent' }) }, snapshot, asTid(8n));
  assert.ok(skip.has(f), 'f stays removed: not placed again');
  assert.deepEqual(db.localRecordsOf(f).map((r) => r.kind), ['unlink'], 'f\'s removal still pending');
  assert.equal(skip.has(g), false, 'g, changed on the server, comes back (update beats delete)');
  assert.deepEqual(db.localRecordsOf(g), [], 'g\'s removal dropped');
});

test('a local version a resync saved is noted in the journal, outside tmp/, until it is back in the tree', (t) => {
  // Fails without the fix: the copy was kept in tmp/ (cleared at start) and only in the resync's memory, so a
  // resync that failed half-way (seed 4002: "parent alpha/sub does not exist here") or was killed lost it:
  // its records were dropped already, and the next resync had nothing left to keep.
  const dir = tmpDir('intersync-protect-');
  const made = mkfs(dir.path, { fileset: 'default', force: false, clock: systemClock });
  const db = FilesetDb.open(made.paths.db);
  t.after(() => {
    db.close();
    dir.cleanup();
  });
  const f = 'feedfacefeedface-1' as Fid;
  writeFileSync(join(dir.path, 'f'), 'server\n');
  db.commitRemote([{ record: {
    tid: asTid(1n), kind: 'create', fid: f, path: 'f', newPath: null, target: null, preVersion: NO_VERSION, postVersion: asTid(1n),
    mode: 0o644, uid: 0, gid: 0, mtimeMs: 1000, size: 7, hash: 'ab'.repeat(32), origin: SERVER, time: 1, digest: '00'.repeat(32), originSeq: null,
  }, identity: null }], SERVER, 1);
  writeFileSync(join(dir.path, 'f'), 'written here\n');
  db.commitLocal([{ draft: {
    kind: 'write', fid: f, path: 'f', newPath: null, target: null, preVersion: asTid(1n), mode: 0o644, uid: 0, gid: 0,
    mtimeMs: 1000, size: 13, hash: 'cd'.repeat(32), origin: db.meta.nodeId as NodeId, time: 1,
  }, identity: null }]);
  mkdirSync(join(dir.path, '.intermezzo/default/tmp'), { recursive: true });
  const apply = { stagedPath: (h: string) => join(dir.path, `.intermezzo/default/tmp/staged-${h}`) } as unknown as ApplyPath;
  const deps = { db, apply, root: dir.path, log: pino({ level: 'silent' }) };
  const entry = { ...db.objectByFid(f)!, version: formatTid(asTid(5n)), linkOf: null }; // changed on the server since
  const { putBack } = protectLocal(deps, [entry], asTid(6n));
  assert.equal(putBack.length, 1, 'the local version is saved');
  const [saved] = putBack[0]!;
  assert.ok(!saved.includes('/tmp/staged') && !saved.startsWith(join(dir.path, '.intermezzo/default/tmp')), `kept outside tmp/: ${saved}`);
  assert.deepEqual(pendingPutBack(deps), putBack, 'noted in the journal: a failed or killed resync finds it');
  const kept = putBackAside(deps, pendingPutBack(deps), asTid(6n));
  assert.equal(kept.length, 1);
  assert.equal(readFileSync(join(dir.path, kept[0]!), 'utf8'), 'written here\n', 'back in the tree beside f');
  assert.deepEqual(pendingPutBack(deps), [], 'nothing left to put back');
});
