// Invariant: a batch of local changes on its way to the server and the server's records applied on the
// client never overlap, so the conflict step never rewrites or drops a record that the server then accepts
// anyway. (Issue 11; chaos seed 9101 ended in "object … does not exist here" and a resync.)
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import { DelayProxy, diskDigest, freePort, journalState, secretFile, sleep, spawnClient, spawnServer, stopChild, tmpDir, waitConverged } from './helpers.js';

test('a directory made on a client while its mkdir is on the way, made and removed on the server meanwhile: it ends on every node, no resync', { timeout: 120_000 }, async (t) => {
  // Fails without the exclusion (Reintegrator `exclusive`): the server's mkdir met the client's pending one and
  // merged the two (dropping the client's record, already sent), and the server's rmdir then removed it here:
  // the directory made on the client is on no node at the end ("d is a directory in <server>").
  const srv = tmpDir('intersync-srv-');
  const cli = tmpDir('intersync-cli-');
  const logs = tmpDir('intersync-logs-');
  const procs: ChildProcess[] = [];
  const proxies: DelayProxy[] = [];
  t.after(async () => {
    for (const p of procs) await stopChild(p, 'SIGKILL');
    for (const p of proxies) await p.close();
    for (const d of [srv, cli, logs]) d.cleanup();
  });
  const port = await freePort();
  procs.push(await spawnServer(srv.path, logs.path, port));
  // The client's reintegration batches reach the server 1.5 s late; the forwarded stream is not held.
  const proxy = await DelayProxy.start(port, /^POST \/v1\/filesets\/[^/ ]+\/reint/, 1500);
  proxies.push(proxy);
  procs.push(await spawnClient(cli.path, logs.path, proxy.port, secretFile(srv.path)));
  await waitConverged([srv.path, cli.path]);

  const sent = proxy.delayed;
  mkdirSync(join(cli.path, 'd'));
  for (let i = 0; i < 500 && proxy.delayed === sent; i++) await sleep(10);
  assert.ok(proxy.delayed > sent, 'the client sent its mkdir');
  // While it is on the way: the server makes d, journals it, and removes it again.
  let before = journalState(srv.path).lastTid;
  mkdirSync(join(srv.path, 'd'));
  for (let i = 0; i < 500 && journalState(srv.path).lastTid === before; i++) await sleep(5);
  before = journalState(srv.path).lastTid;
  rmdirSync(join(srv.path, 'd'));
  for (let i = 0; i < 500 && journalState(srv.path).lastTid === before; i++) await sleep(5);
  assert.ok(journalState(srv.path).lastTid > before, 'the server journaled its mkdir and its rmdir');

  proxy.delayMs = 0;
  await waitConverged([srv.path, cli.path], 30_000);
  await sleep(1_000);
  await waitConverged([srv.path, cli.path], 30_000);
  for (const dir of [srv.path, cli.path]) {
    assert.ok(existsSync(join(dir, 'd')) && statSync(join(dir, 'd')).isDirectory(), `d is a directory in ${dir}`);
    assert.equal(await diskDigest(dir), journalState(dir).digest, `the disk of ${dir} is what its journal says`);
  }
  const log = readFileSync(join(logs.path, 'intersync-default.log'), 'utf8');
  assert.doesNotMatch(log, /resyncing/, 'no resync');
});
