// Invariant: a change capture never heard of (the kernel dropped its event) is journaled by the periodic walk of
// the tree (rescan-interval-s), and said in the log; a node without the walk leaves it unjournaled, which is
// what the deaf watcher below makes sure of. Fails without WatchCapture's rescanMs.
import assert from 'node:assert/strict';
import { readFileSync, watch, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { WatchFn } from '#presto/dir-watcher.js';
import { records, settle, shapes, sleep, startNode, tmpDir } from './helpers.js';

/** A watch that never reports names starting with "deaf": an event lost as one in a full inotify queue is. */
const deaf: WatchFn = (path, listener) =>
  watch(path, { persistent: true, encoding: 'utf8' }, (event, name) => {
    if (typeof name === 'string' && name.startsWith('deaf')) return;
    listener(event, name);
  });

for (const rescanMs of [0, 300]) {
  test(`a change whose event is lost is journaled ${rescanMs === 0 ? 'never without the periodic walk' : 'by the periodic walk'}`, async (t) => {
    const dir = tmpDir();
    const logs = tmpDir('intersync-logs-');
    const node = await startNode(dir.path, logs.path, { watchFn: deaf, rescanMs });
    t.after(async () => {
      await node.stop();
      dir.cleanup();
      logs.cleanup();
    });
    writeFileSync(join(dir.path, 'heard'), 'an event came\n');
    writeFileSync(join(dir.path, 'deaf.txt'), 'no event came\n');
    await settle(node);
    assert.ok(shapes(records(node)).includes('create heard'), 'the watch works for other names');
    await sleep(900); // three periods
    await settle(node);
    const made = shapes(records(node)).includes('create deaf.txt');
    if (rescanMs === 0) {
      assert.equal(made, false, 'without the walk, the lost event leaves the file unjournaled (the test\'s premise)');
      return;
    }
    assert.equal(made, true, `journaled by the walk: ${shapes(records(node)).join(', ')}`);
    const lines = readFileSync(node.logFile, 'utf8').split('\n').filter((l) => l.includes('periodic rescan of the tree'));
    assert.ok(lines.some((l) => /"records":1\b/.test(l)), `the walk says what it journaled: ${lines.join('\n')}`);
  });
}
