// Invariant: a resync never undoes a local removal the server has not seen contradicted: a file or symlink
// removed here, unchanged on the server since, stays removed (its pending unlink reintegrates) instead of
// being placed again from the snapshot. Seed 2001 of the widened chaos run: a client resynced because of
// another refused record, and a symlink it had removed came back on every node.
import assert from 'node:assert/strict';
import { mkdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { systemClock } from '#core/clock.js';
import { NO_VERSION, asTid, formatTid, type Fid, type NodeId } from '#core/ids.js';
import type { ApplyPath } from '#apply/apply-path.js';
import { protectLocal } from '#daemon/resync-protect.js';
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
