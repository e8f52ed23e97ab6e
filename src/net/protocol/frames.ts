import { IntersyncError } from '#core/errors.js';
import { PROTOCOL_VERSION } from '#core/format.js';
import { crc32 } from './crc32.js';

/**
 * The record stream: a sequence of frames, each
 *   u32 header length | u32 payload length | u32 CRC-32 of header and payload | header (JSON) | payload
 * (big endian). The first frame of every stream is `hello`, naming the protocol version. File data
 * travels as payloads, so a large file is a sequence of frames, never one buffer.
 */
export type FrameType = 'hello' | 'record' | 'content' | 'entry' | 'block' | 'recall' | 'ping' | 'end' | 'error';

export interface Frame {
  readonly type: FrameType;
  readonly header: Record<string, unknown>;
  readonly payload: Buffer | null;
}

export const MAX_HEADER = 1 << 20;
export const MAX_PAYLOAD = 16 << 20;
const PREFIX = 12;
const TYPES = new Set<string>(['hello', 'record', 'content', 'entry', 'block', 'recall', 'ping', 'end', 'error']);

/** One frame in one buffer: the header written in place after the prefix, the payload copied once (no joins). */
export function encodeFrame(type: FrameType, header: Record<string, unknown> = {}, payload: Buffer | null = null): Buffer {
  const json = JSON.stringify({ ...header, t: type });
  const hl = Buffer.byteLength(json, 'utf8');
  const pl = payload?.length ?? 0;
  if (hl > MAX_HEADER) throw IntersyncError.TOO_LARGE('frame header', MAX_HEADER);
  if (pl > MAX_PAYLOAD) throw IntersyncError.TOO_LARGE('frame payload', MAX_PAYLOAD);
  const out = Buffer.allocUnsafe(PREFIX + hl + pl);
  out.write(json, PREFIX, 'utf8');
  if (payload !== null) payload.copy(out, PREFIX + hl);
  out.writeUInt32BE(hl, 0);
  out.writeUInt32BE(pl, 4);
  out.writeUInt32BE(crc32(out.subarray(PREFIX)), 8);
  return out;
}

export function helloFrame(fields: Record<string, unknown>): Buffer {
  return encodeFrame('hello', { proto: PROTOCOL_VERSION, ...fields });
}

/**
 * Incremental decoder: feed chunks, take whole frames. Throws PROTOCOL on a bad frame. Chunks are kept
 * as they came and a frame's bytes are joined once, when all of them are here, so the cost is linear in
 * the bytes received however small the pieces (joining the whole buffer on every chunk made one 16 MiB
 * frame in 4 KiB pieces cost ~18 CPU-seconds).
 */
export class FrameDecoder {
  #chunks: Buffer[] = [];
  /** Index of the first chunk still held (taken ones are dropped in bulk, so a take is never a shift of the whole list). */
  #head = 0;
  /** Bytes held in #chunks from #head on. */
  #len = 0;
  /** Length of the frame being received (prefix included), once its prefix is here; 0 before. */
  #need = 0;
  #crc = 0;
  #hl = 0;
  #seenHello = false;

  push(chunk: Buffer): Frame[] {
    if (chunk.length > 0) {
      this.#chunks.push(chunk);
      this.#len += chunk.length;
    }
    const out: Frame[] = [];
    for (;;) {
      if (this.#need === 0) {
        if (this.#len < PREFIX) break;
        const pre = this.#peekPrefix();
        const hl = pre.readUInt32BE(0);
        const pl = pre.readUInt32BE(4);
        if (hl > MAX_HEADER || pl > MAX_PAYLOAD) throw IntersyncError.PROTOCOL(`frame of ${hl}+${pl} bytes is over the limit`);
        this.#need = PREFIX + hl + pl;
        this.#hl = hl;
        this.#crc = pre.readUInt32BE(8);
      }
      if (this.#len < this.#need) break;
      const buf = this.#take(this.#need);
      this.#need = 0;
      out.push(this.#frame(buf.subarray(PREFIX, PREFIX + this.#hl), buf.subarray(PREFIX + this.#hl)));
    }
    return out;
  }

  #frame(h: Buffer, p: Buffer): Frame {
    if (crc32(p, crc32(h)) !== this.#crc) throw IntersyncError.PROTOCOL('frame checksum mismatch');
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(h.toString('utf8')) as Record<string, unknown>;
    } catch {
      throw IntersyncError.PROTOCOL('frame header is not JSON');
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header) || !TYPES.has(String(header.t))) {
      throw IntersyncError.PROTOCOL(`unknown frame type ${JSON.stringify((header as { t?: unknown } | null)?.t)}`);
    }
    const type = header.t as FrameType;
    if (!this.#seenHello) {
      if (type !== 'hello') throw IntersyncError.PROTOCOL('stream does not start with hello');
      if (header.proto !== PROTOCOL_VERSION) throw IntersyncError.PROTOCOL(`peer speaks protocol ${String(header.proto)}, this node ${PROTOCOL_VERSION}`);
      this.#seenHello = true;
    }
    return { type, header, payload: p.length === 0 ? null : p }; // a view: chunks are not reused, so not copied
  }

  /** The first PREFIX bytes held (there are at least that many), without taking them. */
  #peekPrefix(): Buffer {
    const first = this.#chunks[this.#head]!;
    if (first.length >= PREFIX) return first;
    const pre = Buffer.allocUnsafe(PREFIX);
    let at = 0;
    for (let i = this.#head; i < this.#chunks.length; i++) {
      const c = this.#chunks[i]!;
      at += c.copy(pre, at, 0, Math.min(c.length, PREFIX - at));
      if (at === PREFIX) break;
    }
    return pre;
  }

  /** Take the first n bytes held (there are at least that many): a view when one chunk holds them, else one join. */
  #take(n: number): Buffer {
    const first = this.#chunks[this.#head]!;
    this.#len -= n;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.#head++;
      else this.#chunks[this.#head] = first.subarray(n);
    } else {
      const parts: Buffer[] = [];
      let got = 0;
      while (got < n) {
        const c = this.#chunks[this.#head]!;
        const want = n - got;
        if (c.length <= want) {
          parts.push(c);
          this.#head++;
          got += c.length;
        } else {
          parts.push(c.subarray(0, want));
          this.#chunks[this.#head] = c.subarray(want);
          got += want;
        }
      }
      out = Buffer.concat(parts, n);
    }
    if (this.#head === this.#chunks.length) {
      this.#chunks = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
    return out;
  }

  /** At the end of the stream: a partial frame left over means the stream was cut. */
  end(): void {
    if (this.#len > 0) throw IntersyncError.PROTOCOL('stream ended inside a frame');
  }
}

/**
 * Frames of a byte stream, in order, as runs: the frames each chunk completes (never an empty run). A reader
 * that hands a run on whole (the follower: a run of records to its sink) never waits for more to come: a lone
 * frame is a run of one, and leaves at once.
 */
export async function* readFrameRuns(stream: AsyncIterable<Buffer | Uint8Array | string>): AsyncGenerator<Frame[]> {
  const dec = new FrameDecoder();
  for await (const chunk of stream) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
    const run = dec.push(b);
    if (run.length > 0) yield run;
  }
  dec.end();
}

/** Frames of a byte stream, in order. */
export async function* readFrames(stream: AsyncIterable<Buffer | Uint8Array | string>): AsyncGenerator<Frame> {
  const dec = new FrameDecoder();
  for await (const chunk of stream) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
    for (const f of dec.push(b)) yield f;
  }
  dec.end();
}
