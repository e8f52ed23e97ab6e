import { Backoff } from '#core/backoff.js';
import type { Clock } from '#core/clock.js';
import { formatTid, parseTid, type Tid } from '#core/ids.js';
import type { KmlRecord } from '#core/record.js';
import type { Service } from '#core/service.js';
import type { Frame } from './protocol/frames.js';
import { parseNext, parseWaiting, type WireWaiting } from './protocol/lag-fields.js';
import { parseWireRecord } from './protocol/wire-record.js';

/*
 * The follower end of the record stream (kml-stream.ts is the producer end): connect, say hello once, resume
 * after the sink's last_rcvd, parse each frame and deliver it to a RecordSink, and on a cut reconnect with
 * capped exponential backoff and jitter (core/backoff.ts), the wait and the jitter's randomness injected. What a
 * record means to the node that follows (a client applies it under its exchange lock, counts the records that do
 * not apply and resyncs; a mirror slave will apply it as the master's) is the sink's.
 */

/** What a follower reads from: the master's hello, and its record stream after a TID (PeerClient#hello, #follow). */
export interface RecordSource<H> {
  hello(): Promise<H>;
  /** Frames, or runs of frames as they arrived together (PeerClient#follow): a run of records goes to the sink whole. */
  follow(since: Tid, signal: AbortSignal): AsyncIterable<Frame | readonly Frame[]>;
}

/** A record of a run as the follower hands it to a sink: the record, its inline content, the master's last TID as it left. */
export interface RunRecord {
  readonly r: KmlRecord;
  readonly payload: Buffer | null;
  readonly last: Tid | undefined;
}

/**
 * The state of the follower's link, kept where the node's status reads it (a client's ClientState). The follower
 * alone writes `connected`; `disconnectedSince` is set when a connected link fails (or when it failed before
 * any was open) and cleared at each frame; `abort` cuts the open stream at once (a stop, a disconnection on
 * request, a resync asked for) and is renewed before the next connection.
 */
export interface FollowLink {
  connected: boolean;
  disconnectedSince: number | null;
  abort: AbortController;
}

/** The stream's own hello: the master's last TID, where this stream starts, and what the master counts as missing. */
export interface StreamHello {
  readonly tid: Tid;
  readonly since: Tid;
  readonly next: { tid: Tid; time: number } | null;
  readonly waiting: WireWaiting;
}

/**
 * What a sink tells the follower after its own step: `go` on (connect now), `back-off` (wait the backoff's next
 * step), `back-off-disk-full` (the same, the step capped for a full disk), or `stop` following for good.
 */
export type FollowNext = 'go' | 'back-off' | 'back-off-disk-full' | 'stop';

/**
 * What a follower delivers to: a client (daemon/client-sink.ts), a mirror slave. Invariants: the follower calls
 * one method at a time, in the stream's order, and waits for each; `onRecord` resolves once the record is
 * applied (and last_rcvd moved with it) or rejects, which ends this connection (`onLost` is told which record).
 */
export interface RecordSink<H> {
  /** Where the stream resumes: the highest TID applied from the master. */
  lastRcvd(): Tid;
  /** Disconnected on request: the follower opens nothing and looks again every second (or when woken). */
  paused(): boolean;
  /** Before each connection: the sink's own work that comes first (a client's resync asked for); `backoffMs` for its log. */
  beforeConnect(backoffMs: number): Promise<FollowNext>;
  /** The master's answer to the hello, once per follower (none when the node said hello before it started). */
  onHello(hello: H): void;
  /** The first frame of a connection arrived (a client logs it and fetches content it is behind on). */
  onConnected(since: Tid): Promise<void>;
  /** The stream's hello frame. */
  onStreamHello(h: StreamHello): void;
  /** A record, its inline content, and the master's last TID as it left (absent from an older master). */
  onRecord(r: KmlRecord, payload: Buffer | null, last: Tid | undefined): Promise<void>;
  /**
   * A run of records that arrived together, in order (optional: without it each goes to onRecord). Resolves once
   * all are applied; a record that fails rejects with a RecordFailure naming it (those before it stay applied).
   */
  onRecords?(run: readonly RunRecord[]): Promise<void>;
  /** The master wants a write token back. */
  onRecall(scope: string): void;
  /** The master's keep-alive: its last TID and its state digest there. */
  onPing(tid: Tid, digest: string | undefined): void;
  /**
   * The connection failed (the stream, the hello, or the sink's own `onRecord`: then `failure` is a
   * RecordFailure naming the record); `backoffMs` is the step the next wait is based on, for its log.
   * `go` connects again at once (a client after a resync), the others as FollowNext says.
   */
  onLost(failure: unknown, backoffMs: number): Promise<FollowNext>;
}

/** A record the sink failed to apply (as opposed to the stream failing): its cause is the sink's error. */
export class RecordFailure extends Error {
  readonly record: KmlRecord;

  constructor(record: KmlRecord, cause: unknown) {
    super(`apply ${formatTid(record.tid)}: ${(cause as Error).message}`, { cause });
    this.record = record;
  }
}

export interface RecordFollowerOptions<H> {
  readonly source: RecordSource<H>;
  readonly sink: RecordSink<H>;
  readonly link: FollowLink;
  /** The hello the node already has (its start met the master): none is said again. */
  readonly hello: H | null;
  readonly clock: Clock;
  /** Wait `ms`, or less when woken (a client's wakeFollow signal: a disconnection or reconnection on request). */
  readonly wait: (ms: number) => Promise<void>;
  /** The backoff's first step, and the source of its jitter ([0, 1); Math.random when absent). */
  readonly firstBackoffMs: number;
  readonly random?: () => number;
}

/** Follows a master's record stream until stopped (a Service): see the comment at the top of this file. */
export class RecordFollower<H> implements Service {
  readonly #o: RecordFollowerOptions<H>;
  readonly #backoff: Backoff;
  #greeted: boolean;
  #stopped = false;
  #running: Promise<void> | null = null;

  constructor(o: RecordFollowerOptions<H>) {
    this.#o = o;
    this.#backoff = new Backoff(o.firstBackoffMs, undefined, o.random);
    this.#greeted = o.hello !== null;
  }

  run(): Promise<void> {
    this.#running ??= this.#loop();
    return this.#running;
  }

  /** Ends the loop at its next turn: the open stream is cut now; a wait under way runs out first. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#o.link.abort.abort();
    await this.#running?.catch(() => undefined);
  }

  async #loop(): Promise<void> {
    const { source, sink, link, clock, wait } = this.#o;
    const backoff = this.#backoff;
    while (!this.#stopped) {
      if (sink.paused()) {
        link.connected = false;
        await wait(1000);
        continue;
      }
      if (link.abort.signal.aborted) link.abort = new AbortController();
      const first = await sink.beforeConnect(backoff.step);
      if (first === 'stop') break;
      if (first !== 'go') {
        await wait(backoff.next(first === 'back-off-disk-full'));
        continue;
      }
      try {
        if (!this.#greeted) {
          const h = await source.hello();
          this.#greeted = true;
          sink.onHello(h);
        }
        const since = sink.lastRcvd();
        for await (const got of source.follow(since, link.abort.signal)) {
          if (!link.connected) await sink.onConnected(since);
          link.connected = true;
          link.disconnectedSince = null;
          const frames = Array.isArray(got) ? got as readonly Frame[] : [got as Frame];
          await this.#deliverRun(frames, since);
          // A frame delivered resets the backoff, but not the stream's hello alone: a connection whose first
          // record fails again at once (no room here to apply it) backs off as any failure does. Before, the
          // hello reset it, and a client on a full disk came back every 200-400 ms for as long as it lasted.
          if (frames.some((f) => f.type !== 'hello')) backoff.reset();
        }
        link.connected = false;
      } catch (e) {
        if (link.connected || link.disconnectedSince === null) link.disconnectedSince = clock.now();
        link.connected = false;
        if (this.#stopped) break;
        if (sink.paused()) continue;
        const next = await sink.onLost(e, backoff.step);
        if (next === 'stop') break;
        if (next === 'go') continue;
        await wait(backoff.next(next === 'back-off-disk-full'));
      }
    }
  }

  /**
   * Frames that arrived together, to the sink: consecutive records as one run (onRecords) when the sink takes
   * runs, everything else frame by frame, in the stream's order.
   */
  async #deliverRun(frames: readonly Frame[], since: Tid): Promise<void> {
    const sink = this.#o.sink;
    for (let i = 0; i < frames.length;) {
      let end = i;
      while (end < frames.length && frames[end]!.type === 'record') end++;
      if (sink.onRecords === undefined || end - i < 2) {
        await this.#deliver(frames[i]!, since);
        i++;
        continue;
      }
      const run: RunRecord[] = frames.slice(i, end).map((f) => ({
        r: parseWireRecord(f.header.r), payload: f.payload, last: typeof f.header.last === 'string' ? parseTid(f.header.last) : undefined,
      }));
      try {
        await sink.onRecords(run);
      } catch (e) {
        throw e instanceof RecordFailure ? e : new RecordFailure(run[0]!.r, e);
      }
      i = end;
    }
  }

  /** One frame, parsed, to the sink. */
  async #deliver(f: Frame, since: Tid): Promise<void> {
    const sink = this.#o.sink;
    if (f.type === 'record') {
      const r = parseWireRecord(f.header.r);
      try {
        await sink.onRecord(r, f.payload, typeof f.header.last === 'string' ? parseTid(f.header.last) : undefined);
      } catch (e) {
        throw new RecordFailure(r, e);
      }
    } else if (f.type === 'recall') {
      sink.onRecall(String(f.header.scope));
    } else if (f.type === 'ping' || f.type === 'hello') {
      const t = typeof f.header.tid === 'string' ? (parseTid(f.header.tid) ?? null) : null;
      if (t !== null && f.type === 'ping') sink.onPing(t, typeof f.header.digest === 'string' ? f.header.digest : undefined);
      if (t !== null && f.type === 'hello') sink.onStreamHello({ tid: t, since, next: parseNext(f.header.next), waiting: parseWaiting(f.header.waiting) });
    }
  }
}
