// Invariant: the state digest is order independent, and removing an entry undoes adding it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { EMPTY_DIGEST, digestAdd, digestSub, formatDigest, parseDigest, type DigestEntry } from '#core/digest.js';
import { sha256Hex } from '#core/sha256.js';
import { createHash, randomBytes } from 'node:crypto';

const entry = fc.record<DigestEntry>({
  path: fc.string({ minLength: 1, maxLength: 20 }),
  type: fc.constantFrom('file', 'dir', 'symlink'),
  mode: fc.integer({ min: 0, max: 0o7777 }),
  hash: fc.option(fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 64, maxLength: 64 }), { nil: null }),
  target: fc.option(fc.string({ maxLength: 10 }), { nil: null }),
});

test('digest does not depend on the order entries are added', () => {
  fc.assert(
    fc.property(fc.array(entry, { maxLength: 30 }), fc.integer(), (entries, seed) => {
      const shuffled = [...entries].sort(() => (seed = (seed * 1103515245 + 12345) | 0) & 1 ? 1 : -1);
      const a = entries.reduce(digestAdd, EMPTY_DIGEST);
      const b = shuffled.reduce(digestAdd, EMPTY_DIGEST);
      assert.equal(a, b);
    }),
    { seed: 42 },
  );
});

test('subtracting an entry undoes adding it', () => {
  fc.assert(
    fc.property(fc.array(entry, { maxLength: 20 }), entry, (base, e) => {
      const d = base.reduce(digestAdd, EMPTY_DIGEST);
      assert.equal(digestSub(digestAdd(d, e), e), d);
    }),
    { seed: 7 },
  );
});

test('any field of an entry changes the digest', () => {
  const e: DigestEntry = { path: 'a/b', type: 'file', mode: 0o644, hash: 'ab'.repeat(32), target: null };
  const d = digestAdd(EMPTY_DIGEST, e);
  for (const other of [
    { ...e, path: 'a/c' },
    { ...e, mode: 0o600 },
    { ...e, hash: 'cd'.repeat(32) },
    { ...e, type: 'dir' as const, hash: null },
  ]) {
    assert.notEqual(digestAdd(EMPTY_DIGEST, other), d);
  }
  // Symlink permission bits are meaningless and ignored.
  const s: DigestEntry = { path: 'l', type: 'symlink', mode: 0o777, hash: null, target: 'x' };
  assert.equal(digestAdd(EMPTY_DIGEST, s), digestAdd(EMPTY_DIGEST, { ...s, mode: 0 }));
});

test('digests print as 64 hex digits and parse back', () => {
  const d = digestAdd(EMPTY_DIGEST, { path: 'x', type: 'dir', mode: 0o755, hash: null, target: null });
  const text = formatDigest(d);
  assert.match(text, /^[0-9a-f]{64}$/);
  assert.equal(parseDigest(text), d);
  assert.equal(formatDigest(EMPTY_DIGEST), '0'.repeat(64));
});

test('sha256Hex equals SHA-256 by createHash, for UTF-8 text and for bytes at any offset', () => {
  const data = randomBytes(3000);
  for (const s of ['', 'abc', 'dir/fïlé ünïcode/日本語.txt', 'a\0b\0c', 'x'.repeat(70_000)]) {
    assert.equal(sha256Hex(s), createHash('sha256').update(s, 'utf8').digest('hex'), JSON.stringify(s.slice(0, 20)));
  }
  for (const [off, len] of [[0, 0], [1, 1], [3, 64], [7, 1000], [0, 3000]] as const) {
    const b = data.subarray(off, off + len);
    assert.equal(sha256Hex(b), createHash('sha256').update(b).digest('hex'), `${len} bytes at ${off}`);
  }
  assert.equal(sha256Hex(''), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
});
