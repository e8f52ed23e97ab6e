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

export function encodeFrame(type: FrameType, header: Record<string, unknown> = {}, payload: Buffer | null = null): Buffer {
  const h = Buffer.from(JSON.stringify({ ...header, t: type }), 'utf8');
  const p = payload ?? Buffer.alloc(0);
  if (h.length > MAX_HEADER) throw IntersyncError.TOO_LARGE('frame header', MAX_HEADER);
  if (p.length > MAX_PAYLOAD) throw IntersyncError.TOO_LARGE('frame payload', MAX_PAYLOAD);
  const pre = Buffer.alloc(PREFIX);
  pre.writeUInt32BE(h.length, 0);
  pre.writeUInt32BE(p.length, 4);
  pre.writeUInt32BE(crc32(p, crc32(h)), 8);
  return Buffer.concat([pre, h, p]);
}

export function helloFrame(fields: Record<string, unknown>): Buffer {
  return encodeFrame('hello', { proto: PROTOCOL_VERSION, ...fields });
}

/** Incremental decoder: feed chunks, take whole frames. Throws PROTOCOL on a bad frame. */
export class FrameDecoder {
  #buf: Buffer = Buffer.alloc(0);
  #seenHello = false;

  push(chunk: Buffer): Frame[] {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const out: Frame[] = [];
    for (;;) {
      if (this.#buf.length < PREFIX) break;
      const hl = this.#buf.readUInt32BE(0);
      const pl = this.#buf.readUInt32BE(4);
      if (hl > MAX_HEADER || pl > MAX_PAYLOAD) throw IntersyncError.PROTOCOL(`frame of ${hl}+${pl} bytes is over the limit`);
      if (this.#buf.length < PREFIX + hl + pl) break;
      const h = this.#buf.subarray(PREFIX, PREFIX + hl);
      const p = this.#buf.subarray(PREFIX + hl, PREFIX + hl + pl);
      if (crc32(p, crc32(h)) !== this.#buf.readUInt32BE(8)) throw IntersyncError.PROTOCOL('frame checksum mismatch');
      let header: Record<string, unknown>;
      try {
        header = JSON.parse(h.toString('utf8')) as Record<string, unknown>;
      } catch {
        throw IntersyncError.PROTOCOL('frame header is not JSON');
      }
      if (typeof header !== 'object' || header === null || !TYPES.has(String(header.t))) {
        throw IntersyncError.PROTOCOL(`unknown frame type ${JSON.stringify((header as { t?: unknown } | null)?.t)}`);
      }
      const type = header.t as FrameType;
      if (!this.#seenHello) {
        if (type !== 'hello') throw IntersyncError.PROTOCOL('stream does not start with hello');
        if (header.proto !== PROTOCOL_VERSION) throw IntersyncError.PROTOCOL(`peer speaks protocol ${String(header.proto)}, this node ${PROTOCOL_VERSION}`);
        this.#seenHello = true;
      }
      out.push({ type, header, payload: pl === 0 ? null : p }); // a view: chunks are not reused, so not copied
      this.#buf = this.#buf.subarray(PREFIX + hl + pl);
    }
    return out;
  }

  /** At the end of the stream: a partial frame left over means the stream was cut. */
  end(): void {
    if (this.#buf.length > 0) throw IntersyncError.PROTOCOL('stream ended inside a frame');
  }
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
