// Invariant: a client's change below a directory the server's own program moves at that very moment (its event
// not read yet when the server settles capture for the record) is placed at the directory's new name once capture
// catches up: the server does not refuse it against a journal that still holds the directory, the client makes
// nothing again, and no resync follows.
//
// Chaos s71 seed 9265: the server refused c1's gamma/deep/e ("parent gamma/deep does not exist here") while its
// journal held gamma/deep; c1 made the directory again under a new fid ("a directory kept here is gone on the
// server: made there again") and resynced at the server's move of the old one. Fails without FilesetServer
// placing and checking the record again (PLACE_ATTEMPTS). The moment is made here: the server's watch holds the
// move's events until the reintegration's settle has looked (capture idle), then lets them through.
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, watch, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { WatchFn } from '#presto/dir-watcher.js';
import { inProcessPair, readLogs, settle, sleep, waitConverged } from './helpers.js';
import { readOrNull } from './farm.js';

test('a client\'s file below a directory the server moves in the same moment lands at the new name; nothing made again, no resync', { timeout: 120_000 }, async (t) => {
  let holding = false;
  const held: Array<() => void> = [];
  const watchFn: WatchFn = (path, listener) => watch(path, { persistent: true, encoding: 'utf8' }, (event, name) => {
    if (holding && (name === 'beta' || name === 'gamma')) {
      held.push(() => listener(event, name));
      return;
    }
    listener(event, name);
  });
  const { node, srv, cli, logDir } = await inProcessPair(t, 'intersync-settle-race-', { watchFn }, async (s, n) => {
    mkdirSync(join(s, 'beta'));
    writeFileSync(join(s, 'beta', 'a'), 'a\n');
    await settle(n);
  });
  await waitConverged([srv, cli]);
  // The server's next settle (the reintegration's) finds capture idle, then the move's events come.
  const idle = node.capture.idle.bind(node.capture);
  let released = false;
  node.capture.idle = () => {
    const p = idle();
    if (!released && held.length > 0) {
      released = true;
      setTimeout(() => {
        holding = false;
        for (const f of held.splice(0)) f();
      }, 5);
    }
    return p;
  };
  holding = true;
  renameSync(join(srv, 'beta'), join(srv, 'gamma'));
  writeFileSync(join(cli, 'beta', 'new'), 'made on the client in beta\n');
  for (let i = 0; i < 300 && readOrNull(join(srv, 'gamma', 'new')) === null && readOrNull(join(srv, 'beta', 'new')) === null; i++) await sleep(100);
  assert.equal(released, true, 'the reintegration settled capture while the move\'s events were held (the moment this test makes)');
  await waitConverged([srv, cli]);
  for (const d of [srv, cli]) {
    assert.equal(readOrNull(join(d, 'gamma', 'new')), 'made on the client in beta\n', `${d}: gamma/new`);
    assert.equal(readOrNull(join(d, 'beta', 'a')), null, `${d}: no beta made again`);
  }
  const log = readLogs(logDir);
  assert.doesNotMatch(log, /made there again|resyncing/, 'nothing made again, no resync');
});
