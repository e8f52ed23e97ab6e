// Invariant: a batch of local changes on its way to the server and the server's records applied on the
// client never overlap, so the conflict step never rewrites or drops a record that the server then accepts
// anyway. (Issue 11; chaos seed 9101 ended in "object … does not exist here" and a resync.)
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { diskDigest, journalState, proxiedPair, sleep, waitConverged } from './helpers.js';

test('a directory made on a client while its mkdir is on the way, made and removed on the server meanwhile: it ends on every node, no resync', { timeout: 120_000 }, async (t) => {
  // Fails without the exclusion (Reintegrator `exclusive`): the server's mkdir met the client's pending one and
  // merged the two (dropping the client's record, already sent), and the server's rmdir then removed it here:
  // the directory made on the client is on no node at the end ("d is a directory in <server>").
  // The client's reintegration batches reach the server 1.5 s late; the forwarded stream is not held.
  const { srv, cli, proxy, log } = await proxiedPair(t, { match: /^POST \/v1\/filesets\/[^/ ]+\/reint/, delayMs: 1500 });

  const sent = proxy.delayed;
  mkdirSync(join(cli, 'd'));
  for (let i = 0; i < 500 && proxy.delayed === sent; i++) await sleep(10);
  assert.ok(proxy.delayed > sent, 'the client sent its mkdir');
  // While it is on the way: the server makes d, journals it, and removes it again.
  let before = journalState(srv).lastTid;
  mkdirSync(join(srv, 'd'));
  for (let i = 0; i < 500 && journalState(srv).lastTid === before; i++) await sleep(5);
  before = journalState(srv).lastTid;
  rmdirSync(join(srv, 'd'));
  for (let i = 0; i < 500 && journalState(srv).lastTid === before; i++) await sleep(5);
  assert.ok(journalState(srv).lastTid > before, 'the server journaled its mkdir and its rmdir');

  proxy.delayMs = 0;
  await waitConverged([srv, cli], 30_000);
  await sleep(1_000);
  await waitConverged([srv, cli], 30_000);
  for (const dir of [srv, cli]) {
    assert.ok(existsSync(join(dir, 'd')) && statSync(join(dir, 'd')).isDirectory(), `d is a directory in ${dir}`);
    assert.equal(await diskDigest(dir), journalState(dir).digest, `the disk of ${dir} is what its journal says`);
  }
  assert.doesNotMatch(log(), /resyncing/, 'no resync');
});
