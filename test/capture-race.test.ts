// Invariant: an entry made in a directory right after the directory was renamed is journaled, whatever the
// order in which capture sees the two events. Seed 5002 of the widened chaos run: `mv epsilon/deep delta;
// echo x > delta/a.txt` — the file's event was resolved (to the old name, where nothing is) in a batch
// before the rename's, and dropped; delta/a.txt stayed on disk, not journaled, for good.
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { systemClock } from '#core/clock.js';
import type { NodeId } from '#core/ids.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { mkfs } from '#journal/mkfs.js';
import { EchoGuard } from '#presto/echo-guard.js';
import { lstatOrNull } from '#presto/disk.js';
import { Reconciler } from '#presto/reconciler.js';
import { tmpDir } from './helpers.js';

test('a file made in a directory just renamed is journaled when its event was handled before the rename\'s', async (t) => {
  // Fails without the fix: the second batch journals the rename only; delta/a.txt has no row.
  const dir = tmpDir('intersync-race-');
  const made = mkfs(dir.path, { fileset: 'default', force: false, clock: systemClock });
  const db = FilesetDb.open(made.paths.db);
  t.after(() => {
    db.close();
    dir.cleanup();
  });
  const rec = new Reconciler({
    db, root: dir.path, rootIno: lstatOrNull(dir.path)!.ino, nodeId: db.meta.nodeId as NodeId, clock: systemClock,
    log: pino({ level: 'silent' }), guard: new EchoGuard(), watcher: null, journal: (changes) => db.commit(changes).length,
  });
  mkdirSync(join(dir.path, 'epsilon/deep'), { recursive: true });
  await rec.run([{ path: 'epsilon' }]);
  assert.equal(db.objectByPath('epsilon/deep')?.type, 'dir', 'epsilon/deep journaled');
  renameSync(join(dir.path, 'epsilon/deep'), join(dir.path, 'delta'));
  writeFileSync(join(dir.path, 'delta/a.txt'), 'made right after the move\n');
  await rec.run([{ path: 'epsilon/deep/a.txt' }]); // the file's event, at the name of before: nothing there
  await rec.run([{ path: 'delta' }, { path: 'epsilon/deep' }]); // then the rename's
  assert.equal(db.objectByPath('delta')?.type, 'dir', 'the rename is journaled');
  assert.equal(db.objectByPath('delta/a.txt')?.type, 'file', 'the file made in it is journaled too');
});
