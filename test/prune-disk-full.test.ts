// Invariant: a server whose disk is full stays up when its journal's pruning is refused (a deletion writes
// its pages to the WAL first, which a full disk refuses with SQLITE_FULL): it says it is full, tries again
// each second, and prunes once there is room.
//
// FAILS without the fix (FilesetNode#prune catches the refusal): the throw in the status timer is an
// uncaught exception, which ends a daemon (here, the test process's run of this file).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { settle, sleep, startNode, tmpDir } from './helpers.js';

test('a server whose journal cannot be pruned for want of space says its disk is full and prunes once there is room', async (t) => {
  const dir = tmpDir('intersync-prune-full-');
  const logs = tmpDir('intersync-prune-full-logs-');
  const uncaught: string[] = [];
  const onUncaught = (e: Error): void => {
    uncaught.push(e.message);
  };
  process.on('uncaughtException', onUncaught);
  const node = await startNode(dir.path, logs.path, {
    listen: { host: '127.0.0.1', port: 0, tokenScope: 'fileset', leaseMs: 30_000, retainRecords: 2 },
  });
  t.after(async () => {
    process.off('uncaughtException', onUncaught);
    await node.stop();
    dir.cleanup();
    logs.cleanup();
  });
  const prune = node.db.pruneKml.bind(node.db);
  let refusals = 0;
  node.db.pruneKml = (): number => {
    refusals++;
    throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
  };
  for (let i = 0; i < 6; i++) writeFileSync(join(dir.path, `f${i}`), `${i}\n`);
  await settle(node);
  while (refusals < 2 && uncaught.length === 0) await sleep(100); // refused at a tick, and tried again at the next
  assert.deepEqual(uncaught, [], 'no uncaught exception: the daemon goes on');
  assert.equal(node.disk.status()?.code, 'DISK_FULL', 'the node says its disk is full');

  node.db.pruneKml = prune; // room again
  while (node.db.firstKeptTid <= 1n) await sleep(100);
  assert.equal(node.disk.status(), null, 'not full any more');
  assert.deepEqual(uncaught, []);
});
