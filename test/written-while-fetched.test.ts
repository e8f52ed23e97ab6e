// Invariant: a write made on a client through one name of a hard-linked file while the server's change of the
// file's content is fetched for the other name is never written over: the conflict step meets it, and both the
// server's content and the client's reach every node.
//
// From chaos s72 seed 9301, c2: c2 fetched the server's current content of delta/h.conflict-… (one of five names
// of an inode) at its connection; meanwhile a program wrote the inode through beta/sub/…/g.txt and capture
// journaled it, which gave every name of the inode the disk's stat. The apply path's check passed, the fetched
// content went into the inode, and the write was on no node. The moment is made here: the client's content
// fetch writes b and waits for capture to journal it before it returns.
//
// Fails without writtenSince (daemon/client-catch-up.ts) (the record is refused when a name of its inode was written meanwhile,
// and comes again to meet the conflict step): the client's write was gone from both nodes.
//
// Also fails without ConflictResolver#takeRedone (what the redo steps changed is journaled before the follower
// goes on): the nodes agreed, with nothing pending, while the client's write kept beside was on the client's
// disk and in no journal yet, on no other node (CI at 16750e5; 10 of 10 runs started side by side here).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { systemClock } from '#core/clock.js';
import { ClientNode } from '#daemon/client-node.js';
import { readLogs, secretFile, settle, STATE_DIR, startNode, tmpDir, waitConverged } from './helpers.js';
import { assertSettled, treeFiles } from './farm.js';

test('a client writes b while the server\'s new content of a (b\'s other name) is fetched: both writes reach every node', { timeout: 120_000 }, async (t) => {
  const box = tmpDir('intersync-fetched-');
  const logs = tmpDir('intersync-fetched-logs-');
  const srv = join(box.path, 'server');
  const cli = join(box.path, 'client');
  for (const d of [srv, cli]) mkdirSync(d);
  const node = await startNode(srv, logs.path, { listen: { host: '127.0.0.1', port: 0, tokenScope: 'fileset', leaseMs: 30_000, retainRecords: 1_000_000 } });
  const clients: ClientNode[] = [];
  t.after(async () => {
    for (const c of clients) await c.stop();
    await node.stop();
    box.cleanup();
    logs.cleanup();
  });
  // Large enough to be fetched from the server (not sent inline with its record).
  const first = randomBytes(200_000).toString('hex');
  writeFileSync(join(srv, 'a'), first);
  linkSync(join(srv, 'a'), join(srv, 'b'));
  await settle(node);
  const c = await ClientNode.start({
    dir: cli, server: `http://127.0.0.1:${node.server!.address().port}`, trust: { secret: readFileSync(secretFile(srv), 'utf8').trim() },
    stateDir: STATE_DIR, replicate: false, debug: 0, logDir: logs.path, clock: systemClock, settleMs: 15,
  });
  clients.push(c);
  await waitConverged([srv, cli]);

  const stage = c.apply.stageOrPlaceholder.bind(c.apply);
  let armed = true;
  const local = 'written on the client through b while the server\'s a was fetched\n';
  c.apply.stageOrPlaceholder = async (d, inline, source) => {
    const got = await stage(d, inline, source);
    if (armed && d.path === 'a' && d.kind === 'write') {
      armed = false;
      writeFileSync(join(cli, 'b'), local);
      await c.capture.syncPaths(['b']);
    }
    return got;
  };
  const server = `${randomBytes(200_000).toString('hex')}\nwritten on the server through a\n`;
  writeFileSync(join(srv, 'a'), server);
  await settle(node);
  await waitConverged([srv, cli]);
  assert.equal(armed, false, 'the client fetched the server\'s content of a');
  for (const dir of [srv, cli]) {
    const contents = [...treeFiles(dir)].map(([, v]) => v);
    assert.ok(contents.includes(local), `the client's write of b is on ${dir}: ${[...treeFiles(dir)].map(([p, v]) => `${p}: ${v.slice(-40)}`).join(' | ')}`);
    assert.ok(contents.includes(server), `the server's write of a is on ${dir}`);
  }
  assert.deepEqual([...treeFiles(cli)].sort(), [...treeFiles(srv)].sort(), 'the client holds what the server holds');
  await assertSettled([srv, cli]);
  assert.doesNotMatch(readLogs(logs.path), /resyncing/, 'no resync');
});

