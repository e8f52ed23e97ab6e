// Invariant: the record follower (net/record-follower.ts) says hello once, resumes each connection after the
// sink's last_rcvd, delivers the frames parsed and in order, tells the sink which record it failed on, waits
// the backoff's steps between tries (its jitter from the random source given, reset by a frame delivered other
// than the stream's hello), keeps the link state (connected, since when not), and ends when the sink says stop or
// when stopped. The third test fails without the hello excepted (waits of 300 ms each, for ever).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Fid, NodeId, Tid } from '#core/ids.js';
import type { KmlRecord } from '#core/record.js';
import type { Frame } from '#net/protocol/frames.js';
import { recordToWire } from '#net/protocol/wire-record.js';
import { RecordFailure, RecordFollower, type FollowLink, type FollowNext, type RecordSink, type StreamHello } from '#net/record-follower.js';

const rec = (tid: bigint): KmlRecord => ({
  kind: 'mkdir', fid: `aaaaaaaaaaaaaaaa-${tid}` as Fid, path: `d${tid}`, newPath: null, target: null, preVersion: 0n as Tid, size: null, hash: null,
  mode: 0o755, uid: 0, gid: 0, mtimeMs: 0, origin: 'aaaaaaaaaaaaaaaa' as NodeId, time: 0, tid: tid as Tid, postVersion: tid as Tid, digest: '0'.repeat(64), originSeq: null,
});
const frame = (type: Frame['type'], header: Record<string, unknown>): Frame => ({ type, header, payload: null });

/** A sink that notes every call; `fail` names the TIDs whose record it refuses; `lost` answers each onLost in turn. */
class NoteSink implements RecordSink<string> {
  readonly calls: string[] = [];
  last = 0n as Tid;
  constructor(readonly fail: Set<bigint>, readonly lost: FollowNext[]) {}
  lastRcvd(): Tid {
    return this.last;
  }
  paused(): boolean {
    return false;
  }
  async beforeConnect(): Promise<FollowNext> {
    return 'go';
  }
  onHello(h: string): void {
    this.calls.push(`hello ${h}`);
  }
  async onConnected(since: Tid): Promise<void> {
    this.calls.push(`connected ${since}`);
  }
  onStreamHello(h: StreamHello): void {
    this.calls.push(`stream-hello ${h.tid} since ${h.since}`);
  }
  async onRecord(r: KmlRecord, _p: Buffer | null, last: Tid | undefined): Promise<void> {
    if (this.fail.has(r.tid)) throw new Error('does not apply');
    this.last = r.tid;
    this.calls.push(`record ${r.tid} last ${last}`);
  }
  onRecall(scope: string): void {
    this.calls.push(`recall ${scope}`);
  }
  onPing(tid: Tid, digest: string | undefined): void {
    this.calls.push(`ping ${tid} ${digest}`);
  }
  async onLost(e: unknown, backoffMs: number): Promise<FollowNext> {
    this.calls.push(e instanceof RecordFailure ? `lost record ${e.record.tid} (${(e.cause as Error).message}) step ${backoffMs}` : `lost ${(e as Error).message} step ${backoffMs}`);
    return this.lost.shift() ?? 'stop';
  }
}

test('hello once, resume after last_rcvd, frames in order, backoff between tries, stop from the sink', async () => {
  const sink = new NoteSink(new Set([3n]), ['back-off', 'back-off', 'stop']);
  const link: FollowLink = { connected: false, disconnectedSince: null, abort: new AbortController() };
  const waits: number[] = [];
  const opened: bigint[] = [];
  let hellos = 0;
  let conn = 0;
  const follower = new RecordFollower<string>({
    source: {
      hello: async () => `h${++hellos}`,
      follow: async function* (since) {
        opened.push(since);
        conn++;
        if (conn === 1) {
          yield frame('hello', { tid: '0x0000000000000002' });
          yield frame('record', { r: recordToWire(rec(1n)), last: '0x0000000000000002' });
          yield frame('ping', { tid: '0x0000000000000002', digest: 'abc' });
          yield frame('recall', { scope: '/' });
          throw new Error('cut');
        }
        if (conn === 2) {
          yield frame('record', { r: recordToWire(rec(2n)) });
          yield frame('record', { r: recordToWire(rec(3n)) });
        }
        throw new Error('refused');
      },
    },
    sink, link, hello: null, clock: { now: () => 42, monotonic: () => 0 }, firstBackoffMs: 200, random: () => 0.5,
    wait: async (ms) => {
      waits.push(ms);
    },
  });
  await follower.run();
  assert.equal(hellos, 1, 'one hello');
  assert.deepEqual(opened, [0n, 1n, 2n], 'each connection resumes after last_rcvd');
  assert.deepEqual(sink.calls, [
    'hello h1', 'connected 0', 'stream-hello 2 since 0', 'record 1 last 2', 'ping 2 abc', 'recall /', 'lost cut step 200',
    'connected 1', 'record 2 last undefined', 'lost record 3 (does not apply) step 200',
    'lost refused step 400',
  ]);
  // A frame resets the backoff: 200 + 0.5 × 200 after each of the first two connections; the third had no frame
  // (its step is 400, as onLost was told), and the sink stopped it.
  assert.deepEqual(waits, [300, 300]);
  assert.equal(link.connected, false);
  assert.equal(link.disconnectedSince, 42);
});

test('stop cuts the open stream and ends run', async () => {
  const sink = new NoteSink(new Set(), []);
  const link: FollowLink = { connected: false, disconnectedSince: null, abort: new AbortController() };
  const follower = new RecordFollower<string>({
    source: {
      hello: async () => 'h',
      follow: async function* (_since, signal) {
        yield frame('ping', { tid: '0x0000000000000001' });
        await new Promise((_r, reject) => signal.addEventListener('abort', () => reject(new Error('aborted'))));
      },
    },
    sink, link, hello: 'known', clock: { now: () => 7, monotonic: () => 0 }, firstBackoffMs: 200, wait: async () => undefined,
  });
  const running = follower.run();
  while (!link.connected) await new Promise((r) => setImmediate(r));
  await follower.stop();
  await running;
  assert.deepEqual(sink.calls, ['connected 0', 'ping 1 undefined'], 'no hello said again, nothing after the stop');
  assert.equal(link.disconnectedSince, 7);
});

test('a connection whose first record fails again at once backs off step by step, up to the full disk\'s cap', async () => {
  const sink = new NoteSink(new Set([1n]), ['back-off-disk-full', 'back-off-disk-full', 'back-off-disk-full', 'back-off-disk-full', 'back-off-disk-full', 'stop']);
  const link: FollowLink = { connected: false, disconnectedSince: null, abort: new AbortController() };
  const waits: number[] = [];
  const follower = new RecordFollower<string>({
    source: {
      hello: async () => 'h',
      follow: async function* () {
        yield frame('hello', { tid: '0x0000000000000001' });
        yield frame('record', { r: recordToWire(rec(1n)), last: '0x0000000000000001' });
      },
    },
    sink, link, hello: 'known', clock: { now: () => 1, monotonic: () => 0 }, firstBackoffMs: 200, random: () => 0.5,
    wait: async (ms) => {
      waits.push(ms);
    },
  });
  await follower.run();
  // step 200, 400, 800, 1600, then the cap of a full disk (2000); each wait is the step plus half of it.
});

/** NoteSink taking runs too: a run is noted whole; a TID in `fail` fails the run at that record. */
class RunSink extends NoteSink {
  async onRecords(run: ReadonlyArray<{ r: KmlRecord; payload: Buffer | null; last: Tid | undefined }>): Promise<void> {
    for (const x of run) {
      if (this.fail.has(x.r.tid)) throw new RecordFailure(x.r, new Error('does not apply'));
      this.last = x.r.tid;
    }
    this.calls.push(`run ${run.map((x) => x.r.tid).join(',')}`);
  }
}

test('records that arrived together go to the sink as one run; a lone record goes at once, not held for more', async () => {
  const sink = new RunSink(new Set([7n]), ['stop']);
  const link: FollowLink = { connected: false, disconnectedSince: null, abort: new AbortController() };
  let lone: () => void = () => undefined;
  const loneSeen = new Promise<void>((r) => (lone = r));
  const follower = new RecordFollower<string>({
    source: {
      hello: async () => 'h',
      follow: async function* () {
        yield [frame('hello', { tid: '0x0000000000000009' }), frame('record', { r: recordToWire(rec(1n)) }), frame('record', { r: recordToWire(rec(2n)) }),
          frame('record', { r: recordToWire(rec(3n)) }), frame('ping', { tid: '0x0000000000000003' }), frame('record', { r: recordToWire(rec(4n)) })];
        // A lone record, then nothing more until the sink has it: a follower that held records for a run would wait here for ever.
        yield [frame('record', { r: recordToWire(rec(5n)) })];
        await loneSeen;
        yield [frame('record', { r: recordToWire(rec(6n)) }), frame('record', { r: recordToWire(rec(7n)) }), frame('record', { r: recordToWire(rec(8n)) })];
        throw new Error('not reached');
      },
    },
    sink, link, hello: 'known', clock: { now: () => 1, monotonic: () => 0 }, firstBackoffMs: 200, wait: async () => undefined,
  });
  const onRecord = sink.onRecord.bind(sink);
  sink.onRecord = async (r, p, last) => {
    await onRecord(r, p, last);
    if (r.tid === 5n) lone();
  };
  await follower.run();
  assert.deepEqual(sink.calls, [
    'connected 0', 'stream-hello 9 since 0', 'run 1,2,3', 'ping 3 undefined', 'record 4 last undefined', 'record 5 last undefined',
    'lost record 7 (does not apply) step 200',
  ], 'a run of three, a record alone between other frames, the lone record at once, and the failure names its record');
  assert.equal(sink.last, 6n, 'the records of a run before the one that failed stay applied');
});
