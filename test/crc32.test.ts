// Invariant: the frame checksum is CRC-32 (IEEE 802.3) whatever the length and alignment of the bytes,
// and chaining (crc of b after crc of a) equals the crc of a and b together.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { crc32 as used, crc32Js } from '#net/protocol/crc32.js';

/** The definition, bit by bit. */
function reference(buf: Uint8Array, prev = 0): number {
  let c = ~prev >>> 0;
  for (const byte of buf) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (0xedb88320 ^ (c >>> 1)) >>> 0 : c >>> 1;
  }
  return ~c >>> 0;
}

// Both the one frames use (zlib's on this Node) and the JavaScript fallback.
for (const [name, crc32] of [['crc32', used], ['crc32Js', crc32Js]] as const) {
  test(`${name}: CRC-32 check values`, () => {
    assert.equal(crc32(Buffer.alloc(0)), 0);
    assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
    assert.equal(crc32(Buffer.from('The quick brown fox jumps over the lazy dog')), 0x414fa339);
  });

  test(`${name}: CRC-32 equals the bitwise definition at every length, offset and chaining`, () => {
    const data = randomBytes(4096);
    for (let len = 0; len <= 67; len++) {
      for (const off of [0, 1, 3, 7]) {
        const b = data.subarray(off, off + len);
        assert.equal(crc32(b), reference(b), `length ${len} at offset ${off}`);
      }
    }
    for (let i = 0; i < 50; i++) {
      const a = data.subarray(0, (i * 37) % 300);
      const b = data.subarray(300, 300 + ((i * 53) % 1000));
      assert.equal(crc32(b, crc32(a)), crc32(Buffer.concat([a, b])), 'chained');
      assert.equal(crc32(b, crc32(a)), reference(Buffer.concat([a, b])));
    }
  });
}
