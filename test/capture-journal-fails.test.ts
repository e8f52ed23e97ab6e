// Invariant: a batch of capture that fails half-way (the journal refuses a write: a full disk) loses no name.
// What it found by itself is tried again with its hints: the entries of a directory made a moment ago are
// found only by walking it once it is journaled and watched (they came before the watch, so no event names
// them), and the next try finds the directory journaled and walks it no more.
//
// FAILS without the fix (Reconciler#run hands a failed batch's queued names back, WatchCapture hints them
// again): the directory is journaled, its 40 files stay on disk and in no journal for good (seen on a full
// tmpfs in test/long/disk-full.test.ts: 558 files a client never sent).
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { systemClock } from '#core/clock.js';
import type { NodeId } from '#core/ids.js';
import type { Change } from '#journal/fileset-db.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { mkfs } from '#journal/mkfs.js';
import { EchoGuard } from '#fsio/echo-guard.js';
import { WatchCapture } from '#presto/watch-capture.js';
import { sleep, tmpDir } from './helpers.js';

test('the entries of a new directory are journaled after a batch that journaled the directory and then failed', async (t) => {
  const dir = tmpDir('intersync-journal-fails-');
  const made = mkfs(dir.path, { fileset: 'default', force: false, clock: systemClock });
  const db = FilesetDb.open(made.paths.db);
  // The journal as a full disk has it: after the directory's record, every write refused until space returns.
  let refuse = false;
  let refused = 0;
  const journal = (changes: Change[]): number => {
    if (refuse) {
      refused++;
      throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    }
    const n = db.commit(changes).length;
    if (changes.some((c) => c.draft.kind === 'mkdir' && c.draft.path === 'new')) refuse = true;
    return n;
  };
  const capture = new WatchCapture({
    db, root: dir.path, nodeId: db.meta.nodeId as NodeId, clock: systemClock, log: pino({ level: 'silent' }), debug: 0,
    guard: new EchoGuard(), journal,
  });
  t.after(async () => {
    await capture.stop();
    db.close();
    dir.cleanup();
  });
  await capture.start();

  // Made before capture watches the directory: no event names these files, the walk of `new` finds them.
  mkdirSync(join(dir.path, 'new'));
  for (let i = 0; i < 40; i++) writeFileSync(join(dir.path, 'new', `f${i}`), `file ${i}\n`);
  while (refused === 0) await sleep(20); // the batch journaled `new`, then its first file was refused
  assert.equal(db.objectByPath('new')?.type, 'dir', 'the directory was journaled before the refusal');
  refuse = false; // space again: the batch's retry goes through
  await capture.idle();

  const missing = Array.from({ length: 40 }, (_, i) => `new/f${i}`).filter((p) => db.objectByPath(p) === undefined);
  assert.deepEqual(missing, [], 'every file of the new directory is journaled');
});
