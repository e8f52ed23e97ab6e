/**
 * The bandwidth limit of a node (`--bwlimit RATE`, bytes per second as rsync's): one token bucket shared by
 * every content transfer of the process, in both directions (a first copy, forwarded records, fetched
 * blocks and content, reintegration batches and uploads). A sender takes tokens before it writes a piece; a
 * receiver takes them for what it read before it reads on, so TCP's window slows the other end down.
 * Control calls (hello, tokens, acks, a snapshot's listing) are not counted: they are small and must not wait
 * behind a large file.
 * Invariant: over any interval of length T, the bytes let through are at most `burst + rate * T`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Writable } from 'node:stream';
import { IntersyncError } from '#core/errors.js';
import { writeOrWait } from './drain.js';

/** The smallest limit taken (1 KiB/s): below it a piece would take longer than a peer's idle timeout allows. */
export const MIN_RATE = 1024;

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/**
 * The bytes per second a RATE names: a number with an optional k, m or g (KiB, MiB, GiB per second; `b`,
 * `ib`, `/s` may follow, in any case), so `2m` is 2 MiB/s and a bare `500000` is bytes. `0` means no limit
 * (null). Anything else is BAD_ARGUMENT naming `what`.
 */
export function parseRate(text: string, what = '--bwlimit'): number | null {
  const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmg]?)(?:i?b)?(?:\/s)?\s*$/i.exec(text);
  const hint = 'give bytes per second with an optional k, m or g suffix (powers of 1024), e.g. 500k or 2m; 0 for no limit';
  if (m === null) throw IntersyncError.BAD_ARGUMENT(`${what} ${JSON.stringify(text)} is not a rate`, hint);
  const n = Number(m[1]) * UNITS[m[2]!.toLowerCase()]!;
  if (n === 0) return null;
  if (!Number.isFinite(n) || n < MIN_RATE) throw IntersyncError.BAD_ARGUMENT(`${what} ${text} is below the smallest limit, 1k (1 KiB/s)`, hint);
  if (n > Number.MAX_SAFE_INTEGER) throw IntersyncError.BAD_ARGUMENT(`${what} ${text} is too large`, hint);
  return Math.floor(n);
}

/** A rate as people read it: `2.0 MiB/s`. */
export function formatRate(bytesPerSec: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let v = bytesPerSec;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : Number(v.toFixed(1))} ${units[i]}/s`;
}

/**
 * A token bucket: `rate` bytes per second, holding at most `burst` bytes of credit. `take(n)` may run the
 * bucket into debt and waits until it is paid back, so several transfers taking at once share the rate
 * (each waits behind the debt of those before it) and a piece larger than the burst still goes.
 */
export class RateLimit {
  readonly rate: number;
  /** The bytes one `take` should ask for at most: about 1/8 s of the rate, 512 B to 64 KiB. */
  readonly piece: number;
  readonly burst: number;
  readonly #now: () => number;
  readonly #sleep: (ms: number) => Promise<unknown>;
  #tokens: number;
  #last: number;

  constructor(rate: number, o: { now?: () => number; sleep?: (ms: number) => Promise<unknown> } = {}) {
    if (!Number.isFinite(rate) || rate < 1) throw new RangeError(`rate ${rate}`);
    this.rate = rate;
    this.piece = Math.max(512, Math.min(64 << 10, Math.floor(rate / 8)));
    this.burst = 2 * this.piece;
    this.#now = o.now ?? (() => performance.now());
    this.#sleep = o.sleep ?? ((ms) => sleep(ms));
    this.#tokens = this.burst;
    this.#last = this.#now();
  }

  /** Wait until `n` bytes may pass. */
  async take(n: number): Promise<void> {
    const now = this.#now();
    this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#last) * this.rate) / 1000);
    this.#last = now;
    this.#tokens -= n;
    if (this.#tokens >= 0) return;
    await this.#sleep((-this.#tokens * 1000) / this.rate);
  }
}

/** `buf` cut into pieces of at most `size` bytes (views, nothing copied). */
function* piecesOf(buf: Buffer, size: number): Generator<Buffer> {
  if (buf.length <= size) {
    yield buf;
    return;
  }
  for (let o = 0; o < buf.length; o += size) yield buf.subarray(o, Math.min(buf.length, o + size));
}

/**
 * The chunks of `src`, let through at `limit`'s rate, cut into its pieces (unchanged without a limit);
 * `onBytes` hears of each piece as it is let through. Used on both sides: for a body sent (the request
 * takes the pieces as they come) and for a body received (the next chunk is read once this one paid).
 */
export async function* throttled(
  src: AsyncIterable<Buffer | Uint8Array> | Iterable<Buffer | Uint8Array>, limit: RateLimit | null, onBytes?: (n: number) => void,
): AsyncGenerator<Buffer> {
  for await (const chunk of src) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (limit === null) {
      yield buf;
      onBytes?.(buf.length);
      continue;
    }
    for (const p of piecesOf(buf, limit.piece)) {
      await limit.take(p.length);
      yield p;
      onBytes?.(p.length);
    }
  }
}

/** Write `buf` to `w` at `limit`'s rate, a piece at a time, waiting for the peer when its window is full. */
export async function writeLimited(w: Writable, buf: Buffer, limit: RateLimit | null): Promise<void> {
  if (limit === null) {
    await writeOrWait(w, buf);
    return;
  }
  for (const p of piecesOf(buf, limit.piece)) {
    if (w.destroyed) return;
    await limit.take(p.length);
    await writeOrWait(w, p);
  }
}

/**
 * The longest a request body may take at the limit (s): a server ends a request that is not in after 600 s
 * (Node's requestTimeout, net/edge-guard.ts), whatever its pace, and the client cannot resume one.
 */
export const BODY_BUDGET_S = 500;

/**
 * The limit a request body of `bytes` goes at: the node's, unless at that rate it would not be in within
 * BODY_BUDGET_S; then a bucket of its own, just fast enough (an upload of a file larger than 500 s of the
 * limit goes faster than the limit rather than fail and be sent again for ever).
 */
export function bodyLimit(limit: RateLimit | null, bytes: number): RateLimit | null {
  if (limit === null || bytes <= limit.rate * BODY_BUDGET_S) return limit;
  return new RateLimit(Math.ceil(bytes / BODY_BUDGET_S));
}
