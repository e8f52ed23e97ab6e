// Invariant: a reintegration batch sent while the one before it is answered (pipelined: its hello names that
// batch's last record, `after`) is applied only when that batch was applied whole just before it; otherwise every
// record of it is skipped (nothing applied out of order), and the client sends it again. A server says it takes
// such batches in its hello (`pipeline`).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { request } from 'undici';
import { PROTOCOL_VERSION } from '#core/format.js';
import { formatTid } from '#core/ids.js';
import { encodeFrame, helloFrame } from '#net/protocol/frames.js';
import { enrolNode, startNode, tmpDir } from './helpers.js';

const CLIENT = 'c2c2c2c2c2c2c2c2';
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

function create(seq: number, path: string, over: Record<string, unknown> = {}): { r: Record<string, unknown>; payload: Buffer } {
  const content = Buffer.from(`${path}\n`);
  return {
    r: { seq: String(seq), kind: 'create', fid: `${CLIENT}-${seq}`, path, newPath: null, target: null, preVersion: formatTid(0n), mode: 0o644,
      uid: process.getuid!(), gid: process.getgid!(), mtimeMs: Date.now(), size: content.length, hash: sha(content), origin: CLIENT, time: Date.now(), ...over },
    payload: content,
  };
}

test('a batch sent ahead applies only after the one before it applied whole; else all of it is skipped', { timeout: 60_000 }, async (t) => {
  const dir = tmpDir('intersync-pipe-');
  const logs = tmpDir('intersync-pipe-logs-');
  const node = await startNode(dir.path, logs.path, { listen: { host: '127.0.0.1', port: 0, tokenScope: 'fileset', leaseMs: 30_000, retainRecords: 1_000_000 } });
  t.after(async () => {
    await node.stop();
    dir.cleanup();
    logs.cleanup();
  });
  const base = `http://127.0.0.1:${node.server!.address().port}`;
  const credential = await enrolNode(base, dir.path, CLIENT);
  const auth = { authorization: `Bearer ${credential}` };
  const hello = await request(`${base}/v1/hello`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ node: CLIENT, proto: PROTOCOL_VERSION }) });
  assert.equal(((await hello.body.json()) as { pipeline?: boolean }).pipeline, true, 'the server says it takes batches sent ahead');
  const reint = async (after: number | null, ...recs: Array<{ r: Record<string, unknown>; payload: Buffer }>): Promise<string[]> => {
    const body = Buffer.concat([
      helloFrame({ uuid: node.db.meta.uuid, node: CLIENT, ...(after === null ? {} : { after: String(after) }) }),
      ...recs.map((x) => encodeFrame('record', { r: x.r }, x.payload)), encodeFrame('end'),
    ]);
    const res = await request(`${base}/v1/filesets/${node.db.meta.uuid}/reint?node=${CLIENT}`, { method: 'POST', headers: { ...auth, 'content-type': 'application/octet-stream' }, body });
    const out = (await res.body.json()) as { results: Array<{ seq: string; status: string }> };
    assert.equal(res.statusCode, 200, JSON.stringify(out));
    return out.results.map((x) => `${x.seq} ${x.status}`);
  };

  // A batch applied whole, then the one sent after it: applied.
  assert.deepEqual(await reint(null, create(1, 'a.txt'), create(2, 'b.txt')), ['1 accepted', '2 accepted']);
  assert.deepEqual(await reint(2, create(3, 'c.txt')), ['3 accepted']);
  // A batch refused in the middle (its second record's directory is not here), then the one sent after it: skipped whole.
  assert.deepEqual((await reint(null, create(4, 'd.txt'), create(5, 'nowhere/e.txt'), create(6, 'f.txt'))).map((x) => x.replace(/ (conflict|need-content)$/, ' refused')),
    ['4 accepted', '5 refused', '6 skipped']);
  assert.deepEqual(await reint(6, create(7, 'g.txt')), ['7 skipped'], 'nothing of it applied: the batch before it did not apply whole');
  assert.equal(existsSync(join(dir.path, 'g.txt')), false);
  // Sent ahead of a batch the server has not seen (it came first): skipped too.
  assert.deepEqual(await reint(99, create(8, 'h.txt')), ['8 skipped']);
  // Sent again in order, it applies.
  assert.deepEqual(await reint(null, create(7, 'g.txt'), create(8, 'h.txt')), ['7 accepted', '8 accepted']);
  assert.ok(existsSync(join(dir.path, 'g.txt')) && existsSync(join(dir.path, 'h.txt')));
});
