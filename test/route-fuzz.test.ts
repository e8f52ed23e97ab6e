// Invariant: no request a peer can send makes the server fail. Every route (hello, snapshot, copy,
// content, blocks, the content HEAD, upload, reint, ack, token, kml, status, and an unknown one) gets
// random bytes, random JSON, and valid requests with fields replaced by odd values, with the right
// secret mostly; every answer is below 500, the daemon keeps serving, its journal digest equals the
// digest of its disk (`digest` = `digest --scan`), and nothing outside the backing directory changes.
//
// Short form in `npm test`: FUZZ_CASES (default 120) cases per route. The long form is the same file
// with FUZZ_CASES=50000; FUZZ_SEED replays a run (the seed is printed).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { request } from 'undici';
import { formatDigest } from '#core/digest.js';
import { PROTOCOL_VERSION } from '#core/format.js';
import { formatTid } from '#core/ids.js';
import { encodeFrame, helloFrame } from '#net/protocol/frames.js';
import { digestOfDisk } from '#presto/scan.js';
import { enrolNode, settle, startNode, tmpDir } from './helpers.js';

const CASES = Number(process.env.FUZZ_CASES ?? '120');
const SEED = Number(process.env.FUZZ_SEED ?? String(Date.now() % 2 ** 31));
const CLIENT = 'c1c1c1c1c1c1c1c1';

/** mulberry32: a small seeded generator, so a failing run can be replayed. */
let state = SEED >>> 0;
function rnd(): number {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
}
const int = (n: number): number => Math.floor(rnd() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

const ODD: readonly unknown[] = [
  null, true, 0, -1, 1.5, 1e300, 2 ** 53, '', 'x'.repeat(300), '..', '../x', '/etc/passwd', '.intermezzo/x', 'a\0b', '0xffffffffffffffff',
  '99999999999999999999', 'root', `${CLIENT}-1`, [], {}, [1, 'a'], { t: 'hello' }, '%', '\u202e', 'é'.repeat(200),
];

function randomJson(depth = 0): unknown {
  const k = int(depth > 2 ? 4 : 6);
  if (k === 0) return pick(ODD);
  if (k === 1) return int(1 << 20) * (rnd() < 0.5 ? 1 : -1);
  if (k === 2) return Buffer.from(Array.from({ length: int(20) }, () => int(256))).toString('latin1');
  if (k === 3) return rnd() < 0.5;
  if (k === 4) return Array.from({ length: int(4) }, () => randomJson(depth + 1));
  return Object.fromEntries(Array.from({ length: int(4) }, () => [pick(['node', 'tid', 'fids', 'scope', 'op', 'proto', 'x', 'fid', 'hash', 'indexes']), randomJson(depth + 1)]));
}

/** A valid object with a few fields replaced, removed or added. */
function mutate(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...o };
  const keys = Object.keys(o);
  for (let i = int(3); i >= 0; i--) {
    const k = rnd() < 0.85 ? pick(keys) : pick(['extra', 't', 'seq', 'kind']);
    if (rnd() < 0.15) delete out[k];
    else out[k] = rnd() < 0.6 ? pick(ODD) : randomJson(1);
  }
  return out;
}

const randomBytes = (): Buffer => Buffer.from(Array.from({ length: int(300) }, () => int(256)));

let box: { path: string; cleanup: () => void };
let logs: { path: string; cleanup: () => void };
let node: Awaited<ReturnType<typeof startNode>>;
let base: string;
let secret: string;
let uuid: string;
let fids: string[] = [];
let outsideBefore = '';

/** Everything under box except the backing directory: path, type, size, mtime, content hash. */
function outsideState(): string {
  const out: string[] = [];
  const walk = (rel: string): void => {
    const abs = join(box.path, rel);
    const st = lstatSync(abs);
    out.push(`${rel} ${st.mode} ${st.size} ${st.mtimeMs} ${st.isFile() ? sha(readFileSync(abs)) : ''}`);
    if (st.isDirectory()) for (const n of readdirSync(abs).sort()) if (join(rel, n) !== 'data') walk(join(rel, n));
  };
  walk('');
  return out.join('\n');
}

before(async () => {
  box = tmpDir('intersync-fuzz-');
  logs = tmpDir('intersync-fuzz-logs-');
  const dir = join(box.path, 'data');
  mkdirSync(join(dir, 'sub'), { recursive: true });
  mkdirSync(join(box.path, 'outside'));
  writeFileSync(join(box.path, 'outside', 'keep'), 'outside the tree\n');
  writeFileSync(join(dir, 'a.txt'), 'alpha\n');
  writeFileSync(join(dir, 'sub', 'b.bin'), Buffer.alloc(5000, 9));
  node = await startNode(dir, logs.path, { listen: { host: '127.0.0.1', port: 0, tokenScope: 'fileset', leaseMs: 30_000, retainRecords: 1_000_000 } });
  await settle(node);
  base = `http://127.0.0.1:${node.server!.address().port}`;
  secret = await enrolNode(base, dir, CLIENT); // CLIENT's own credential: the routes that act for a node need it
  uuid = node.db.meta.uuid;
  fids = [...node.db.allObjects()].map((o) => o.fid);
  outsideBefore = outsideState();
  console.log(`route fuzz: seed ${SEED}, ${CASES} cases per route (replay with FUZZ_SEED=${SEED})`);
});

after(async () => {
  await node?.stop();
  box?.cleanup();
  logs?.cleanup();
});

interface Req {
  readonly method: 'GET' | 'POST' | 'HEAD';
  readonly path: string;
  readonly body?: Buffer | string;
  readonly type?: string;
}

const fsPath = (rest: string): string => `/v1/filesets/${rnd() < 0.95 ? uuid : pick(['00000000-0000-4000-8000-000000000000', 'x', ''])}/${rest}`;
const q = (v: unknown): string => encodeURIComponent(typeof v === 'string' ? v : JSON.stringify(v));
const json = (method: 'POST', path: string, template: Record<string, unknown>): Req => {
  const r = rnd();
  const body = r < 0.15 ? randomBytes().toString('latin1') : JSON.stringify(r < 0.35 ? randomJson() : r < 0.45 ? template : mutate(template));
  return { method, path, body, type: rnd() < 0.95 ? 'application/json' : pick(['text/plain', 'application/octet-stream', 'application/json; charset=latin1']) };
};

function lml(): Record<string, unknown> {
  const content = Buffer.from(`fuzz ${int(1000)}\n`);
  const kind = pick(['create', 'write', 'mkdir', 'unlink', 'rename', 'symlink', 'link', 'setattr', 'truncate', 'rmdir']);
  return {
    seq: String(1 + int(1e6)), kind, fid: rnd() < 0.5 ? `${CLIENT}-${int(1e6).toString(16)}` : pick(fids), path: pick(['a.txt', 'sub', 'sub/b.bin', `n${int(50)}`, 'sub/x']),
    newPath: kind === 'rename' ? `r${int(50)}` : null, target: kind === 'symlink' ? pick(['a.txt', '../outside/keep', '/etc']) : kind === 'link' ? 'a.txt' : null,
    preVersion: formatTid(BigInt(int(8))), mode: 0o644, uid: 0, gid: 0, mtimeMs: Date.now(), size: content.length, hash: sha(content), origin: CLIENT, time: Date.now(),
  };
}

function frames(parts: Buffer[]): Buffer {
  const r = rnd();
  const buf = Buffer.concat([helloFrame({ uuid, node: CLIENT }), ...parts, encodeFrame('end')]);
  if (r < 0.1) return randomBytes();
  if (r < 0.3) {
    const b = Buffer.from(buf);
    for (let i = int(4); i >= 0; i--) b[int(b.length)] = int(256);
    return b.subarray(0, rnd() < 0.5 ? b.length : int(b.length + 1));
  }
  return buf;
}

const ROUTES: Record<string, () => Req> = {
  hello: () => json('POST', '/v1/hello', { node: CLIENT, proto: PROTOCOL_VERSION, replicate: rnd() < 0.5 }),
  // With CLIENT's credential as the bearer: "enrolled already" (4xx), or a mutated body; never a 5xx.
  enrol: () => (rnd() < 0.5 ? json('POST', '/v1/enrol', { node: CLIENT, proto: PROTOCOL_VERSION }) : json('POST', '/v1/enrol', mutate({ node: CLIENT, proto: PROTOCOL_VERSION, replicate: false }))),
  snapshot: () => ({ method: 'GET', path: fsPath(rnd() < 0.8 ? 'snapshot' : `snapshot?x=${q(randomJson())}`) }),
  copy: () => ({ method: 'GET', path: fsPath('copy') }),
  content: () => json('POST', fsPath('content'), { fids: Array.from({ length: int(5) }, () => pick(fids)) }),
  'blocks-map': () => ({ method: 'GET', path: fsPath(`blocks?fid=${q(rnd() < 0.5 ? pick(fids) : randomJson())}`) }),
  'blocks-read': () => json('POST', fsPath('blocks'), { fid: pick(fids), hash: sha(Buffer.alloc(5000, 9)), indexes: [int(3)] }),
  'content-head': () => ({ method: 'HEAD', path: fsPath(`content/${rnd() < 0.5 ? sha(Buffer.from(`alpha\n`)) : q(randomJson())}`) }),
  upload: () => {
    const c = Buffer.from(`upload ${int(100)}\n`);
    const map = { size: c.length, hash: sha(c), blockSize: 128 * 1024, blocks: [sha(c).slice(0, 32)] };
    const m = rnd() < 0.5 ? map : mutate(map);
    return { method: 'POST', path: fsPath(`upload?fid=${rnd() < 0.8 ? `${CLIENT}-${int(99)}` : q(randomJson())}`), body: frames([encodeFrame('content', { map: m }), encodeFrame('block', { index: int(2) }, c)]), type: 'application/octet-stream' };
  },
  reint: () => {
    const recs = Array.from({ length: 1 + int(3) }, () => encodeFrame('record', { r: rnd() < 0.5 ? lml() : mutate(lml()) }, rnd() < 0.5 ? Buffer.from(`fuzz ${int(1000)}\n`) : null));
    return { method: 'POST', path: fsPath(`reint?node=${rnd() < 0.9 ? CLIENT : q(randomJson())}`), body: frames(recs), type: 'application/octet-stream' };
  },
  ack: () => json('POST', fsPath('ack'), { node: CLIENT, tid: formatTid(BigInt(int(20))) }),
  token: () => json('POST', fsPath('token'), { node: pick([CLIENT, 'd2d2d2d2d2d2d2d2']), scope: pick(['/', '/sub']), op: pick(['acquire', 'release']), waitMs: 0 }),
  kml: () => ({ method: 'GET', path: fsPath(`kml?since=${rnd() < 0.7 ? formatTid(BigInt(int(10))) : q(randomJson())}&follow=${rnd() < 0.9 ? '0' : q(randomJson())}&node=${CLIENT}`) }),
  status: () => ({ method: 'GET', path: fsPath(rnd() < 0.8 ? 'status' : `status/${q(randomJson())}`) }),
  unknown: () => ({ method: pick(['GET', 'POST', 'HEAD'] as const), path: pick(['/', '/v1', '/v2/hello', fsPath('nothing'), `/v1/filesets/${q(randomJson())}`]) }),
};

async function send(r: Req): Promise<{ status: number; text: string }> {
  const roll = rnd();
  const headers: Record<string, string> = {};
  if (roll < 0.9) headers.authorization = `Bearer ${secret}`;
  else if (roll < 0.95) headers.authorization = pick(['Bearer ', `Bearer ${secret}x`, 'Basic abc', secret]);
  if (r.type !== undefined) headers['content-type'] = r.type;
  const res = await request(`${base}${r.path}`, {
    method: r.method, headers, ...(r.body === undefined ? {} : { body: r.body }), headersTimeout: 60_000, bodyTimeout: 60_000,
    signal: AbortSignal.timeout(60_000),
  });
  if (res.statusCode >= 500) return { status: res.statusCode, text: (await res.body.text()).slice(0, 500) };
  await res.body.dump();
  return { status: res.statusCode, text: '' };
}

for (const [name, make] of Object.entries(ROUTES)) {
  test(`route ${name}: ${CASES} fuzzed requests, no 5xx`, async () => {
    const statuses = new Map<number, number>();
    const inFlight = 6;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < CASES) {
        next++;
        const r = make();
        const { status: s, text } = await send(r);
        statuses.set(s, (statuses.get(s) ?? 0) + 1);
        assert.ok(s < 500, `${r.method} ${r.path} answered ${s}: ${text} (seed ${SEED})`);
      }
    };
    await Promise.all(Array.from({ length: inFlight }, worker));
    console.log(`route ${name}: ${[...statuses].sort((x, y) => x[0] - y[0]).map(([s, n]) => `${s}×${n}`).join(' ')}`);
  });
}

test('after the fuzzing: the daemon serves, digest equals digest --scan, nothing outside the tree changed', async () => {
  const res = await request(`${base}/v1/filesets/${uuid}/status`, { headers: { authorization: `Bearer ${secret}` } });
  assert.equal(res.statusCode, 200);
  await res.body.dump();
  await settle(node);
  assert.equal(formatDigest(node.db.digest), formatDigest((await digestOfDisk(node.paths.dir)).digest), 'journal digest = disk digest');
  assert.equal(outsideState(), outsideBefore, 'nothing outside the backing directory changed');
});
