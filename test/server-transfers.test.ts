// Invariant: a server's status tells what it is moving: each large file whose blocks a client fetches
// (down) or uploads (up), with the node at the other end and the bytes moved so far, listed while it
// moves and gone once it ended, finished or dropped; and the bytes on its connections since start.
//
// Fails without the change (checked with src/ at the commit before it): a server's status had no
// transfers and no bytes (`server.transfers` undefined).
//
// A node's requests are made by hand here, so the test decides when a transfer moves: a fetch whose
// answer nobody reads stays part-way (32 MiB does not fit in the sockets' buffers), and an upload whose
// body has sent one block waits for the next.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { Agent, request } from 'undici';
import { BLOCK_SIZE, blockMapOf } from '#fsio/blocks.js';
import { encodeFrame, helloFrame } from '#net/protocol/frames.js';
import { cli, enrolNode, settle, sleep, startNode, tmpDir } from './helpers.js';

const NODE = 'e3e3e3e3e3e3e3e3';

interface Transfer { direction: string; path: string; size: number; total: number; bytes: number; peer: string | null }
interface ServerView { transfers: Transfer[]; bytesIn: number | null; bytesOut: number | null }

function serverStatus(dir: string): ServerView {
  const r = cli(['status', dir, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { server: ServerView }).server;
}

async function until<T>(what: string, fn: () => T | undefined): Promise<T> {
  for (let i = 0; i < 300; i++) {
    const v = fn();
    if (v !== undefined) return v;
    await sleep(100);
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('the server lists a fetch and an upload in progress with their peer, then drops them; and counts its bytes', { timeout: 120_000 }, async (t) => {
  const box = tmpDir('intersync-transfers-');
  const logs = tmpDir('intersync-transfers-logs-');
  const agent = new Agent();
  const node = await startNode(box.path, logs.path, {
    listen: { host: '127.0.0.1', port: 0, tokenScope: 'fileset', leaseMs: 30_000, retainRecords: 1_000_000 },
  });
  // In this order: a connection left open (an answer nobody reads) would hold the server's close.
  t.after(async () => {
    await agent.destroy();
    await node.stop();
    box.cleanup();
    logs.cleanup();
  });
  const size = 32 << 20;
  writeFileSync(join(box.path, 'big.bin'), randomBytes(size));
  await settle(node);
  const base = `http://127.0.0.1:${node.server!.address().port}/v1/filesets/${node.db.meta.uuid}`;
  const auth = { authorization: `Bearer ${await enrolNode(`http://127.0.0.1:${node.server!.address().port}`, box.path, NODE)}` };

  // Down: a node fetches every block of big.bin and does not read the answer.
  const o = node.db.objectByPath('big.bin')!;
  const map = await blockMapOf(join(box.path, 'big.bin'));
  const fetch = await request(`${base}/blocks`, {
    method: 'POST', dispatcher: agent, headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ fid: o.fid, hash: map.hash, indexes: map.blocks.map((_b, i) => i) }),
  });
  assert.equal(fetch.statusCode, 200);
  const down = await until('the fetch is listed', () => serverStatus(box.path).transfers.find((x) => x.direction === 'down'));
  assert.deepEqual([down.path, down.size, down.total, down.peer], ['big.bin', size, size, NODE]);
  assert.ok(down.bytes > 0 && down.bytes < size, `part-way: ${down.bytes} of ${size}`);
  assert.match(cli(['status', box.path]).stdout, new RegExp(`^ {2}transfer down: big\\.bin \\S+ \\S+ of 32\\.0 MiB \\(\\d+%\\), to ${NODE}$`, 'm'));
  fetch.body.destroy(); // the node goes away: the server's answer is dropped, and its transfer with it
  await until('the dropped fetch is gone', () => (serverStatus(box.path).transfers.length === 0 ? true : undefined));

  // Up: a node uploads a new file of 3 blocks, sends one, and waits.
  const fid = `${NODE}-77`;
  const content = randomBytes(3 * BLOCK_SIZE);
  writeFileSync(join(logs.path, 'up.bin'), content);
  const upMap = await blockMapOf(join(logs.path, 'up.bin'));
  const body = new PassThrough();
  body.write(helloFrame({ node: NODE }));
  body.write(encodeFrame('content', { map: upMap }));
  body.write(encodeFrame('block', { index: 0 }, content.subarray(0, BLOCK_SIZE)));
  const upload = request(`${base}/upload?fid=${fid}`, {
    method: 'POST', dispatcher: agent, headers: { ...auth, 'content-type': 'application/octet-stream' }, body,
  });
  const up = await until('the upload is listed', () => serverStatus(box.path).transfers.find((x) => x.direction === 'up'));
  assert.deepEqual([up.path, up.size, up.total, up.bytes, up.peer], [`(new file ${fid})`, 3 * BLOCK_SIZE, 3 * BLOCK_SIZE, BLOCK_SIZE, NODE]);
  body.write(encodeFrame('block', { index: 1 }, content.subarray(BLOCK_SIZE, 2 * BLOCK_SIZE)));
  body.write(encodeFrame('block', { index: 2 }, content.subarray(2 * BLOCK_SIZE)));
  body.end(encodeFrame('end'));
  const res = await upload;
  assert.equal(res.statusCode, 200, await res.body.text());
  await until('the finished upload is gone', () => (serverStatus(box.path).transfers.length === 0 ? true : undefined));

  const after = serverStatus(box.path);
  assert.ok(after.bytesIn !== null && after.bytesIn > 3 * BLOCK_SIZE, `the upload came in: ${after.bytesIn}`);
  assert.ok(after.bytesOut !== null && after.bytesOut >= down.bytes, `the fetch went out: ${after.bytesOut}`);
});
