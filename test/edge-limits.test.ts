// Invariant: what a peer can make the server hold is bounded (issue 12, "trust at the edge"): one
// /content answer (fids deduplicated, bytes capped, the rest fetched by the client on its own),
// unauthenticated connections (a cap per address and in all; a header timeout), staged uploads (a
// quota and removal when unused past a TTL), log lines about refused secrets, and a name the file
// system cannot hold is a 4xx with its own code, not a 200 "conflict".
//
// Each test FAILS on the code before its fix (checked by reverting src/ to bcdd7f3): the duplicate fid
// came back 2,000 times; no answer said `more`; no slow connection was closed; the second upload was
// staged past any quota; every refused request wrote a line; the 300-byte name got 200 "conflict".
// No test asserts on a duration: waits have generous deadlines and then check counts.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { request } from 'undici';
import type { Clock } from '#core/clock.js';
import { formatTid } from '#core/ids.js';
import { encodeFrame, FrameDecoder, helloFrame, type Frame } from '#net/protocol/frames.js';
import { PeerClient } from '#net/peer-client.js';
import { enrolNode, settle, sleep, startNode, tmpDir } from './helpers.js';

type Node = Awaited<ReturnType<typeof startNode>>;
const CLIENT = 'c1c1c1c1c1c1c1c1';
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A clock whose monotonic time a test can move forward (for the staging TTL). */
let skew = 0;
const clock: Clock = { now: () => Date.now() + skew, monotonic: () => performance.now() + skew };

const dirs: Array<{ cleanup: () => void }> = [];
let a: { node: Node; base: string; secret: string; uuid: string; logDir: string };

async function start(limits: Record<string, number>): Promise<typeof a> {
  const box = tmpDir('intersync-edge-');
  const logs = tmpDir('intersync-edge-logs-');
  dirs.push(box, logs);
  const node = await startNode(box.path, logs.path, {
    clock, listen: { host: '127.0.0.1', port: 0, tokenScope: 'fileset', leaseMs: 30_000, retainRecords: 1_000_000, limits },
  });
  const base = `http://127.0.0.1:${node.server!.address().port}`;
  return { node, base, secret: await enrolNode(base, box.path, CLIENT), uuid: node.db.meta.uuid, logDir: logs.path };
}

before(async () => {
  a = await start({ unauthPerAddress: 8, unauthTotal: 16, contentAnswerBytes: 64 << 10, stagedQuotaBytes: 3 << 20, stagedTtlMs: 60_000, refusedLogLines: 5, refusedLogWindowMs: 3_600_000 });
});

after(async () => {
  await a?.node.stop();
  for (const d of dirs) d.cleanup();
});

async function post(path: string, o: { json?: unknown; body?: Buffer; auth?: string }): Promise<{ status: number; buf: Buffer; code: string | undefined }> {
  const headers: Record<string, string> = { authorization: o.auth ?? `Bearer ${a.secret}`, 'content-type': o.json === undefined ? 'application/octet-stream' : 'application/json' };
  const res = await request(`${a.base}/v1/filesets/${a.uuid}/${path}`, { method: 'POST', headers, body: o.json === undefined ? o.body! : JSON.stringify(o.json) });
  const buf = Buffer.from(await res.body.arrayBuffer());
  let code: string | undefined;
  try {
    code = (JSON.parse(buf.toString()) as { error?: { code?: string } }).error?.code;
  } catch {
    code = undefined;
  }
  return { status: res.statusCode, buf, code };
}

function framesOf(buf: Buffer): Frame[] {
  const dec = new FrameDecoder();
  const out = dec.push(buf);
  dec.end();
  return out;
}

async function until(what: string, cond: () => boolean, ms = 30_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) assert.fail(`${what}: not within ${ms} ms`);
    await sleep(50);
  }
}

test('a /content request naming one fid 2,000 times gets its content once', async () => {
  writeFileSync(join(a.node.paths.dir, 'one'), Buffer.alloc(50_000, 1));
  await settle(a.node);
  const fid = a.node.db.objectByPath('one')!.fid;
  const r = await post('content', { json: { fids: Array(2000).fill(fid) } });
  assert.equal(r.status, 200);
  const content = framesOf(r.buf).filter((f) => f.type === 'content');
  assert.equal(content.length, 1, 'one content frame');
  assert.equal(content[0]!.payload?.length, 50_000);
});

test('a /content answer stops at its byte cap with `more`, and the client fetches the rest by itself', async () => {
  const files = Array.from({ length: 10 }, (_, i) => [`c${i}`, Buffer.alloc(20_000, i + 1)] as const);
  for (const [name, data] of files) writeFileSync(join(a.node.paths.dir, name), data);
  await settle(a.node);
  const fids = files.map(([name]) => a.node.db.objectByPath(name)!.fid);
  const r = await post('content', { json: { fids } });
  const frames = framesOf(r.buf);
  const sent = frames.filter((f) => f.type === 'content').length;
  assert.ok(sent >= 1 && sent < 10, `a capped answer (${sent} of 10 files)`);
  assert.equal(frames.at(-1)!.header.more, true, 'the end frame says more');
  const peer = new PeerClient(a.base, a.secret, { uuid: a.uuid });
  try {
    const got = await peer.content([...fids, ...fids]);
    assert.equal(got.size, 10);
    files.forEach(([, data], i) => assert.ok(got.get(fids[i]!)!.data!.equals(data), `content of c${i}`));
  } finally {
    await peer.close();
  }
});

function slowSocket(port: number): Socket & { closedByServer?: boolean } {
  const s: Socket & { closedByServer?: boolean } = connect({ host: '127.0.0.1', port });
  s.on('error', () => undefined);
  s.on('close', () => {
    s.closedByServer = true;
  });
  s.write(`GET /v1/filesets/${a.uuid}/status HTTP/1.1\r\nHost: x\r\n`); // the headers never end
  return s;
}

test('unauthenticated connections past the per-address cap are closed oldest first; an authenticated request is served', async () => {
  const port = a.node.server!.address().port;
  const socks: Array<ReturnType<typeof slowSocket>> = [];
  for (let i = 0; i < 40; i++) {
    socks.push(slowSocket(port));
    await new Promise<void>((res) => socks[i]!.once('connect', () => res()));
  }
  await until('32 slow connections closed', () => socks.filter((s) => s.closedByServer === true).length >= 32);
  assert.ok(socks.slice(0, 32).every((s) => s.closedByServer === true), 'the oldest went first');
  assert.ok(a.node.server!.connections.evicted >= 32, 'the server counts them');
  const res = await request(`${a.base}/v1/filesets/${a.uuid}/status`, { headers: { authorization: `Bearer ${a.secret}` } });
  assert.equal(res.statusCode, 200);
  await res.body.dump();
  for (const s of socks) s.destroy();
});

test('a connection whose headers do not complete is closed after the header timeout', async () => {
  const b = await start({ headersTimeoutMs: 500, checkIntervalMs: 100 });
  try {
    const s = slowSocket(b.node.server!.address().port);
    const drip = setInterval(() => s.write('X'), 100); // bytes keep coming, the headers never end
    try {
      await until('the slow connection closed', () => s.closedByServer === true, 20_000);
    } finally {
      clearInterval(drip);
      s.destroy();
    }
  } finally {
    await b.node.stop();
  }
});

function uploadBody(content: Buffer): Buffer {
  const bs = 128 * 1024;
  const blocks: Buffer[] = [];
  for (let i = 0; i < content.length; i += bs) blocks.push(content.subarray(i, i + bs));
  const map = { size: content.length, hash: sha(content), blockSize: bs, blocks: blocks.map((b) => sha(b).slice(0, 32)) };
  return Buffer.concat([helloFrame({ uuid: a.uuid, node: CLIENT }), encodeFrame('content', { map }), ...blocks.map((b, index) => encodeFrame('block', { index }, b)), encodeFrame('end')]);
}

test('staged uploads stay under the quota (429 QUOTA), and one unused past the TTL is removed', async () => {
  const one = Buffer.alloc(2 << 20, 0x61);
  const two = Buffer.alloc(2 << 20, 0x62);
  assert.equal((await post(`upload?fid=${CLIENT}-1`, { body: uploadBody(one) })).status, 200);
  const refused = await post(`upload?fid=${CLIENT}-2`, { body: uploadBody(two) });
  assert.equal(refused.status, 429, refused.buf.toString());
  assert.equal(refused.code, 'QUOTA');
  const head = async (h: string): Promise<number> =>
    (await request(`${a.base}/v1/filesets/${a.uuid}/content/${h}`, { method: 'HEAD', headers: { authorization: `Bearer ${a.secret}` } })).statusCode;
  assert.equal(await head(sha(one)), 200, 'the first upload is staged');
  skew += 61_000; // the first upload is now unused for longer than the TTL
  assert.equal((await post(`upload?fid=${CLIENT}-2`, { body: uploadBody(two) })).status, 200);
  assert.equal(await head(sha(one)), 404, 'the unused upload was removed');
  assert.deepEqual(readdirSync(a.node.paths.tmp).filter((n) => n.startsWith('staged-')), [`staged-${sha(two)}`]);
});

test('requests with a wrong secret are logged at a bounded rate', async () => {
  const logFile = readdirSync(a.logDir).map((n) => join(a.logDir, n)).find((p) => p.endsWith('.log'))!;
  const count = (): number => readFileSync(logFile, 'utf8').split('\n').filter((l) => l.includes('refused request: bad secret')).length;
  const before = count();
  for (let i = 0; i < 60; i++) assert.equal((await post('ack', { json: { node: CLIENT, tid: '0x1' }, auth: 'Bearer wrong' })).status, 401);
  // The log is written asynchronously: wait until it stops growing.
  let last = -1;
  for (let n = count(); n !== last; n = count()) {
    last = n;
    await sleep(300);
  }
  assert.ok(count() - before <= 5, `${count() - before} lines for 60 refused requests`);
});

test('a name longer than the file system holds is refused with 422 NAME_REFUSED, not a conflict', async () => {
  const seq = 7;
  const rec = (path: string): Buffer => Buffer.concat([
    helloFrame({ uuid: a.uuid, node: CLIENT }),
    encodeFrame('record', {
      r: {
        seq: String(seq), kind: 'create', fid: `${CLIENT}-7`, path, newPath: null, target: null, preVersion: formatTid(0n), mode: 0o644,
        uid: 0, gid: 0, mtimeMs: Date.now(), size: 0, hash: sha(Buffer.alloc(0)), origin: CLIENT, time: Date.now(),
      },
    }),
    encodeFrame('end'),
  ]);
  const tid = a.node.db.lastTid;
  for (const path of ['n'.repeat(300), `d/${'é'.repeat(130)}`]) {
    const r = await post(`reint?node=${CLIENT}`, { body: rec(path) });
    assert.equal(r.status, 422, r.buf.toString().slice(0, 300));
    assert.equal(r.code, 'NAME_REFUSED');
  }
  assert.equal(a.node.db.lastTid, tid, 'nothing journaled');
});
