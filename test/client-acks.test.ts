// A client's ack (daemon/client-acks.ts) makes what it applied durable first, without holding the thread: the
// flush runs in the background (ApplyPath#flushAsync), the ack names the last TID received before the flush began
// and is sent once the flush is done, and records received during the flush go in the next ack, made durable by a
// flush of its own. Fails without it: the ack flushed with a synchronous syncfs (ApplyPath#flush), the thread held
// for its whole length while records waited.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { ClientAcks } from '#daemon/client-acks.js';
import type { ClientState } from '#daemon/client-state.js';
import type { Tid } from '#core/ids.js';

test('an ack waits for its flush, which does not hold the thread; what arrives during the flush goes in the next ack', async () => {
  let rcvd = 5n as Tid;
  const flushes: Array<() => void> = [];
  const acks: Tid[] = [];
  const s = {
    o: { clock: { monotonic: () => performance.now() } },
    db: { lastRcvdOf: () => rcvd, meta: { nodeId: 'c1' } },
    serverNode: () => 'srv',
    stopped: false,
    apply: {
      flushAsync: () => new Promise<void>((resolve) => flushes.push(resolve)),
      flush: () => assert.fail('the ack must not flush with the thread held'),
    },
    disk: { ok: () => undefined, note: () => null },
    log: { warn: () => undefined, debug: () => undefined },
    client: { ack: (_node: string, tid: Tid) => (acks.push(tid), Promise.resolve()) },
  } as unknown as ClientState;
  const a = new ClientAcks(s);
  a.schedule();
  await sleep(250);
  assert.equal(flushes.length, 1, 'one flush started');
  assert.deepEqual(acks, [], 'no ack before its flush is done');
  // The thread goes on while the flush runs: more records arrive, and their ack comes due.
  rcvd = 9n as Tid;
  a.schedule();
  await sleep(250);
  assert.equal(flushes.length, 1, 'no second flush while one runs');
  flushes[0]!();
  await sleep(20);
  assert.deepEqual(acks, [5n], 'the first ack names what was received before its flush began');
  await sleep(250);
  assert.equal(flushes.length, 2, 'the records received during the flush get a flush of their own');
  flushes[1]!();
  await sleep(20);
  assert.deepEqual(acks, [5n, 9n]);
  a.stop();
});
