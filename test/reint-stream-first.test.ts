// Invariant: between two batches of a client that writes all the time, the server's records named by the last
// answer are applied first (the forwarded stream gets the exchange lock), for a bounded time: the next batch waits
// until this node's last_rcvd reaches the answer's last TID, or until STREAM_FIRST_MS passed (issue 19, item 6).
// Fails without ReintState#streamFirst: the second batch went as soon as its record was journaled, and a node
// writing without pause let the stream apply one run per batch round trip (bench --only writers: minutes of lag).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { BlockMapCache } from '#fsio/blocks.js';
import { systemClock, type Clock } from '#core/clock.js';
import { makeFid, NO_VERSION, asTid, formatTid, type Fid } from '#core/ids.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { mkfs } from '#journal/mkfs.js';
import { readFrames } from '#net/protocol/frames.js';
import type { PeerClient, ReintResult } from '#net/peer-client.js';
import { parseWireLml, recordToWire } from '#net/protocol/wire-record.js';
import { Reintegrator } from '#reint/reintegrator.js';
import { sleep, tmpDir } from './helpers.js';

const SERVER = 'ffffffffffffffff';

test('after a batch accepted whole, the next waits for the server\'s records its answer named, then goes; or goes after the bound', { timeout: 30_000 }, async (t) => {
  const dir = tmpDir('intersync-reint-');
  const made = mkfs(dir.path, { fileset: 'default', force: false, clock: systemClock });
  const db = FilesetDb.open(made.paths.db);
  const node = made.nodeId;
  // Monotonic time stands still unless the test moves it: only last_rcvd (or the test) can end the wait.
  let mono = 0;
  const clock: Clock = { now: () => Date.now(), monotonic: () => mono };
  let tid = 0x1000n; // the server's journal is far ahead of this node: other nodes' records
  const sent: string[] = [];
  const server = {
    async reint(_node: string, body: Buffer): Promise<ReintResult> {
      const results: ReintResult['results'] = [];
      for await (const fr of readFrames((async function* () {
        yield body;
      })())) {
        if (fr.type !== 'record') continue;
        const r = parseWireLml(fr.header.r);
        sent.push(r.path);
        tid += 1n;
        results.push({ seq: r.seq.toString(), status: 'accepted', r: recordToWire({ ...r, tid: asTid(tid), postVersion: asTid(tid), digest: '0'.repeat(64), originSeq: r.seq }) });
      }
      return { results, lastTid: formatTid(tid) };
    },
  };
  const reint = new Reintegrator({
    db, client: server as unknown as PeerClient, root: dir.path, node, serverNode: () => SERVER, log: pino({ level: 'silent' }),
    clock, debug: 0, scopeMode: () => 'none', leaseMs: () => 30_000, blockMaps: new BlockMapCache(),
    onStuck: () => assert.fail('no resync'),
  });
  const running = reint.run();
  t.after(async () => {
    await reint.stop();
    await running;
    db.close();
    dir.cleanup();
  });
  let n = 0;
  const create = (name: string): void => {
    writeFileSync(join(dir.path, name), `${name}\n`);
    const fid: Fid = makeFid(node, BigInt(++n));
    db.commitLocal([{ draft: {
      kind: 'create', fid, path: name, newPath: null, target: null, preVersion: NO_VERSION, mode: 0o644, uid: 0, gid: 0,
      mtimeMs: 1000, size: name.length + 1, hash: null, origin: node, time: Date.now(),
    }, identity: null }]);
  };
  const until = async (what: string, ok: () => boolean): Promise<void> => {
    for (let i = 0; i < 400 && !ok(); i++) await sleep(25);
    assert.ok(ok(), what);
  };

  create('a');
  await until('the first batch goes at once', () => sent.length === 1 && db.lmlCount() === 0);
  create('b');
  await sleep(400); // the reintegrator looks again at each commit and every 50 ms
  assert.deepEqual(sent, ['a'], 'b waits: the server\'s records up to its last answer are not applied here yet');
  db.setLastRcvd(SERVER, asTid(tid), Date.now()); // the forwarded stream applied them
  await until('b goes once they are applied', () => sent.length === 2);

  create('c');
  await sleep(400);
  assert.deepEqual(sent, ['a', 'b'], 'c waits for the records of b\'s answer');
  mono += 500; // the stream is slow: the wait is bounded
  await until('c goes after the bound', () => sent.length === 3);
  assert.deepEqual(sent, ['a', 'b', 'c']);
});
