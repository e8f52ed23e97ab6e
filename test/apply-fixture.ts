// One in-process fileset for tests of capture and the apply path side by side (no daemon).
import type { TestContext } from 'node:test';
import pino from 'pino';
import { ApplyPath } from '#apply/apply-path.js';
import { systemClock } from '#core/clock.js';
import type { NodeId } from '#core/ids.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { mkfs } from '#journal/mkfs.js';
import { EchoGuard } from '#fsio/echo-guard.js';
import { lstatOrNull } from '#fsio/disk.js';
import { Reconciler } from '#presto/reconciler.js';
import { tmpDir } from './helpers.js';

/** A server's fileset: capture journaling straight into it, and the apply path peers' records go through. */
export function applyFixture(t: TestContext, prefix: string, guard = new EchoGuard()): { root: string; db: FilesetDb; rec: Reconciler; apply: ApplyPath } {
  const dir = tmpDir(prefix);
  const made = mkfs(dir.path, { fileset: 'default', force: false, clock: systemClock });
  const db = FilesetDb.open(made.paths.db);
  const log = pino({ level: 'silent' });
  const apply = new ApplyPath({ root: dir.path, tmpDir: made.paths.tmp, db, guard, log });
  t.after(async () => {
    await apply.releaseThread();
    db.close();
    dir.cleanup();
  });
  const rec = new Reconciler({
    db, root: dir.path, rootIno: lstatOrNull(dir.path)!.ino, nodeId: db.meta.nodeId as NodeId, clock: systemClock,
    log, guard, watcher: null, journal: (changes) => db.commit(changes).length,
  });
  return { root: dir.path, db, rec, apply };
}
