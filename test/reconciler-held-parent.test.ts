// Invariant: a batch always ends. A name whose parent directory is not the journal's and is held by the apply
// path (being written) is journaled as before, not put back in the queue for a parent that will not be worked
// out in this batch. Fails without the check that the parent itself was put off (Batch#later): the batch put
// the name back again and again and never ended (the apply path, waiting for capture, would wait for ever).
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { EchoGuard } from '#fsio/echo-guard.js';
import { applyFixture } from './apply-fixture.js';

test('a name below a replaced directory the apply path holds is journaled, and the batch ends', async (t) => {
  const guard = new EchoGuard();
  const { root, db, rec } = applyFixture(t, 'intersync-held-parent-', guard);
  mkdirSync(join(root, 'd'));
  await rec.run([{ path: 'd' }]);
  const was = db.objectByPath('d')!;
  renameSync(join(root, 'd'), join(root, 'old'));
  mkdirSync(join(root, 'd')); // another directory at the name, not journaled yet
  writeFileSync(join(root, 'd', 'f'), 'new\n');
  guard.hold('d');
  const run = rec.run([{ path: 'd/f' }]);
  const ended = await Promise.race([run.then(() => true), sleep(5000).then(() => false)]);
  assert.equal(ended, true, 'the batch ends');
  assert.equal(db.objectByPath('d')?.fid, was.fid, 'the held directory is left as journaled');
  assert.ok(db.objectByPath('d/f') !== undefined, 'the name is journaled');
});
