// Invariant: a long-lived response adds no listener per record. The forwarded stream (GET /kml?follow=1)
// waits for the peer's window once per burst of records; each wait used to leave a `close` listener on
// the ServerResponse (`once('drain', …).once('close', …)`), so a slow reader of a busy stream made Node
// print MaxListenersExceededWarning on stderr (issue 19, item 8).
//
// FAILS without the fix (net/drain.ts; checked by putting the old wait back in server.ts): the warning
// "11 close listeners added to [ServerResponse]" is emitted once the server has waited more than ten times.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Agent, request } from 'undici';
import { FrameDecoder } from '#net/protocol/frames.js';
import { enrolNode, settle, sleep, startNode, tmpDir } from './helpers.js';

const CLIENT = 'd2d2d2d2d2d2d2d2';
const dirs: Array<{ cleanup: () => void }> = [];
after(() => {
  for (const d of dirs) d.cleanup();
});

test('a slow reader of a busy forwarded stream makes the server add no listener per record', async (t) => {
  const warnings: string[] = [];
  const onWarning = (w: Error): void => {
    warnings.push(`${w.name}: ${w.message}`);
  };
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));

  const box = tmpDir('intersync-listeners-');
  const logs = tmpDir('intersync-listeners-logs-');
  dirs.push(box, logs);
  const node = await startNode(box.path, logs.path, {
    listen: { host: '127.0.0.1', port: 0, tokenScope: 'fileset', leaseMs: 30_000, retainRecords: 1_000_000 },
  });
  t.after(() => node.stop());
  const files = 300;
  for (let i = 0; i < files; i++) writeFileSync(join(box.path, `f${i}`), Buffer.alloc(64 << 10, i % 251));
  await settle(node);
  const base = `http://127.0.0.1:${node.server!.address().port}`;
  const credential = await enrolNode(base, box.path, CLIENT);

  // Its own connection pool, closed at the end: an idle keep-alive connection would hold the server's close.
  const agent = new Agent();
  t.after(() => agent.destroy());
  const ac = new AbortController();
  const res = await request(`${base}/v1/filesets/${node.db.meta.uuid}/kml?since=0x0000000000000000&follow=1&node=${CLIENT}`, {
    headers: { authorization: `Bearer ${credential}` }, signal: ac.signal, highWaterMark: 16 << 10, dispatcher: agent,
  });
  assert.equal(res.statusCode, 200);
  const dec = new FrameDecoder();
  let records = 0;
  try {
    for await (const chunk of res.body) {
      records += dec.push(chunk as Buffer).filter((f) => f.type === 'record').length;
      if (records >= files) break;
      await sleep(1); // a slow peer: the server's socket fills and it waits for `drain`, many times
    }
  } finally {
    ac.abort();
  }
  assert.ok(records >= files, `all ${files} records came (${records})`);
  await sleep(100); // a warning is emitted on a later tick
  assert.deepEqual(warnings.filter((w) => w.includes('MaxListeners')), [], 'no listener pile-up on the response');
});
