// Invariant: the protocol's parsers are total over what a peer can send. Every byte stream, however it
// is cut into chunks, either decodes into frames or fails with an IntersyncError of code PROTOCOL
// (never another exception, never a hang); every JSON value given to the wire-record parser either
// parses or fails with a 4xx IntersyncError (BAD_REQUEST, BAD_PATH or NAME_REFUSED: a bad field in a
// well-formed frame is a bad request, not a protocol break). Encoding then decoding gives back the
// frame, and the record. And decoding costs bytes joined linear in the bytes received.
//
// The last test FAILS on the decoder before issue 12's fix (bcdd7f3): it joined its whole buffer on
// every chunk, so a 1 MiB frame in 1 KiB pieces joined ~512 MiB. fast-check prints the seed of a failure;
// FC_SEED and FC_RUNS replay or widen a run.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { IntersyncError, type ConflictReason } from '#core/errors.js';
import { PROTOCOL_VERSION } from '#core/format.js';
import type { Fid, NodeId, Tid } from '#core/ids.js';

const TID_MAX = (1n << 63n) - 1n; // as core/ids.ts: SQLite's signed 64-bit INTEGER
import { RECORD_KINDS, type KmlRecord, type LmlRecord, type RecordDraft } from '#core/record.js';
import { encodeFrame, FrameDecoder, helloFrame, type Frame, type FrameType } from '#net/protocol/frames.js';
import { lmlToWire, parseWireLml, parseWireRecord, recordToWire } from '#net/protocol/wire-record.js';
import { fromWire, parseConflictReason, statusOf, toWire } from '#net/protocol/wire-errors.js';

const runs = Number(process.env.FC_RUNS ?? '300');
const params = { numRuns: runs, ...(process.env.FC_SEED === undefined ? {} : { seed: Number(process.env.FC_SEED) }) };

/** Feed `bytes` to a fresh decoder cut at `cuts` (positions, any order); the frames, or the error thrown. */
function decode(bytes: Uint8Array, cuts: readonly number[]): Frame[] | unknown {
  const buf = Buffer.from(bytes);
  const at = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((x, y) => x - y);
  const dec = new FrameDecoder();
  const out: Frame[] = [];
  try {
    let prev = 0;
    for (const c of [...at, buf.length]) {
      out.push(...dec.push(buf.subarray(prev, c)));
      prev = c;
    }
    dec.end();
    return out;
  } catch (e) {
    return e;
  }
}

function assertProtocolOrFrames(r: unknown): void {
  if (Array.isArray(r)) return;
  assert.ok(r instanceof IntersyncError, `not an IntersyncError: ${String(r)}`);
  assert.equal(r.code, 'PROTOCOL', r.message);
}

const TYPES: FrameType[] = ['record', 'content', 'entry', 'block', 'recall', 'ping', 'end', 'error'];
const headerArb = fc.dictionary(fc.string({ maxLength: 8 }).filter((k) => k !== 't' && k !== '__proto__'), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 });
const frameArb = fc.record({ type: fc.constantFrom(...TYPES), header: headerArb, payload: fc.option(fc.uint8Array({ minLength: 1, maxLength: 300 }), { nil: null }) });
const cutsArb = fc.array(fc.nat(), { maxLength: 12 });

test('decoder: arbitrary bytes, cut anywhere, decode or fail with PROTOCOL', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), cutsArb, (bytes, cuts) => assertProtocolOrFrames(decode(bytes, cuts))), params);
});

test('decoder: valid streams with bytes changed, cut short or spliced decode or fail with PROTOCOL', () => {
  const mutated = fc.tuple(fc.array(frameArb, { maxLength: 4 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), fc.option(fc.nat(), { nil: undefined }));
  fc.assert(fc.property(mutated, cutsArb, ([frames, flips, cut], cuts) => {
    const buf = Buffer.concat([helloFrame({}), ...frames.map((f) => encodeFrame(f.type, f.header, f.payload === null ? null : Buffer.from(f.payload)))]);
    for (const [at, v] of flips) buf[at % buf.length] = v;
    const bytes = cut === undefined ? buf : buf.subarray(0, cut % (buf.length + 1));
    assertProtocolOrFrames(decode(bytes, cuts));
  }), params);
});

test('decoder: encoding then decoding gives the frames back, however the stream is cut', () => {
  fc.assert(fc.property(fc.array(frameArb, { maxLength: 6 }), cutsArb, (frames, cuts) => {
    const buf = Buffer.concat([helloFrame({ x: 1 }), ...frames.map((f) => encodeFrame(f.type, f.header, f.payload === null ? null : Buffer.from(f.payload)))]);
    const got = decode(buf, cuts);
    assert.ok(Array.isArray(got), `decoding failed: ${String(got)}`);
    assert.equal(got.length, frames.length + 1);
    assert.deepEqual(got[0]!.header, { proto: PROTOCOL_VERSION, x: 1, t: 'hello' });
    frames.forEach((f, i) => {
      const g = got[i + 1] as Frame;
      assert.equal(g.type, f.type);
      assert.deepEqual(g.header, JSON.parse(JSON.stringify({ ...f.header, t: f.type })));
      assert.deepEqual(g.payload === null ? null : [...g.payload], f.payload === null ? null : [...f.payload]);
    });
  }), params);
});

// ---------------------------------------------------------------------------------------------
// Wire records

const hex = (n: number): fc.Arbitrary<string> => fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: n, maxLength: n });
const segment = fc.string({ unit: fc.constantFrom(...'abcxyz019._-é'), minLength: 1, maxLength: 12 }).filter((s) => s !== '.' && s !== '..' && s !== '.intermezzo');
const pathArb = fc.array(segment, { minLength: 1, maxLength: 4 }).map((p) => p.join('/'));
const tidArb = fc.bigInt({ min: 0n, max: TID_MAX }).map((t) => t as Tid);
const timeArb = fc.double({ min: -8.64e15, max: 8.64e15, noNaN: true }).map((t) => (Object.is(t, -0) ? 0 : t));
const draftArb: fc.Arbitrary<RecordDraft> = fc.record({
  kind: fc.constantFrom(...RECORD_KINDS), fid: fc.oneof(fc.constant('root'), fc.tuple(hex(16), hex(5)).map(([n, s]) => `${n}-${s}`)).map((f) => f as Fid),
  path: pathArb, newPath: fc.option(pathArb, { nil: null }), symTarget: fc.string({ minLength: 1, maxLength: 40 }).filter((s) => !s.includes('\0')), linkTarget: pathArb,
  preVersion: tidArb, mode: fc.integer({ min: 0, max: 0o7777 }), uid: fc.integer({ min: 0, max: 0xffffffff }), gid: fc.integer({ min: 0, max: 0xffffffff }),
  mtimeMs: timeArb, size: fc.option(fc.maxSafeNat(), { nil: null }), hash: fc.option(hex(64), { nil: null }), origin: hex(16).map((o) => o as NodeId), time: timeArb,
  parent: fc.option(fc.oneof(fc.constant('root'), fc.tuple(hex(16), hex(5)).map(([n, s]) => `${n}-${s}`)).map((f) => f as Fid), { nil: undefined }),
  targetFid: fc.option(fc.tuple(hex(16), hex(5)).map(([n, s]) => `${n}-${s}` as Fid), { nil: undefined }),
}).map(({ symTarget, linkTarget, parent, targetFid, ...d }) => {
  const content = d.kind === 'create' || d.kind === 'write' || d.kind === 'truncate';
  return {
    ...d,
    newPath: d.kind === 'rename' ? (d.newPath ?? 'renamed') : d.newPath,
    target: d.kind === 'symlink' ? symTarget : d.kind === 'link' ? linkTarget : null,
    size: content ? (d.size ?? 0) : d.size,
    hash: content ? (d.hash ?? '0'.repeat(64)) : d.hash,
    ...(parent === undefined ? {} : { parent }),
    ...(targetFid === undefined ? {} : { targetFid }),
  };
});
const seqArb = fc.bigInt({ min: 0n, max: 10n ** 19n - 1n });
const kmlArb: fc.Arbitrary<KmlRecord> = fc.tuple(draftArb, tidArb, tidArb, hex(64), fc.option(seqArb, { nil: null }))
  .map(([d, tid, postVersion, digest, originSeq]) => ({ ...d, tid, postVersion, digest, originSeq }));
const lmlArb: fc.Arbitrary<LmlRecord> = fc.tuple(draftArb, seqArb).map(([d, seq]) => ({ ...d, seq }));

const overTheWire = (v: unknown): unknown => JSON.parse(JSON.stringify(v));

test('wire records: a KML and an LML record encoded then parsed come back equal', () => {
  fc.assert(fc.property(kmlArb, (r) => assert.deepEqual(parseWireRecord(overTheWire(recordToWire(r))), r)), params);
  fc.assert(fc.property(lmlArb, (r) => assert.deepEqual(parseWireLml(overTheWire(lmlToWire(r))), r)), params);
});

function assert4xx(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof IntersyncError, `not an IntersyncError: ${String(e)}`);
    const s = statusOf(e);
    assert.ok(s >= 400 && s < 500, `${e.code} is HTTP ${s}`);
  }
}

test('wire records: any JSON value, or a valid record with fields replaced, parses or fails with a 4xx code', () => {
  fc.assert(fc.property(fc.jsonValue({ maxDepth: 3 }), (v) => {
    assert4xx(() => parseWireRecord(v));
    assert4xx(() => parseWireLml(v));
  }), params);
  const field = fc.constantFrom('kind', 'fid', 'path', 'newPath', 'target', 'preVersion', 'mode', 'uid', 'gid', 'mtimeMs', 'size', 'hash', 'origin', 'time', 'tid', 'postVersion', 'digest', 'originSeq', 'seq');
  const odd = fc.oneof(fc.jsonValue({ maxDepth: 1 }), fc.constantFrom('', '..', '/abs', 'a/../b', '.intermezzo/x', 'x'.repeat(300), 'a\0b', 1e300, -1, 2 ** 53, '0x10000000000000000', '99999999999999999999'));
  fc.assert(fc.property(kmlArb, lmlArb, fc.array(fc.tuple(field, odd), { minLength: 1, maxLength: 3 }), (k, l, changes) => {
    const kw = recordToWire(k) as Record<string, unknown>;
    const lw = lmlToWire(l) as Record<string, unknown>;
    for (const [f, v] of changes) {
      kw[f] = v;
      lw[f] = v;
    }
    assert4xx(() => parseWireRecord(overTheWire(kw)));
    assert4xx(() => parseWireLml(overTheWire(lw)));
  }), params);
});

test('decoder: one 1 MiB frame fed in 1 KiB pieces joins bytes linear in its size', () => {
  const stream = Buffer.concat([helloFrame({}), encodeFrame('content', {}, Buffer.alloc(1 << 20, 3))]);
  const concat = Buffer.concat;
  let joined = 0;
  Buffer.concat = ((list: readonly Uint8Array[], total?: number) => {
    const b = concat(list, total);
    joined += b.length;
    return b;
  }) as typeof Buffer.concat;
  try {
    const dec = new FrameDecoder();
    let frames = 0;
    for (let i = 0; i < stream.length; i += 1024) frames += dec.push(stream.subarray(i, i + 1024)).length;
    dec.end();
    assert.equal(frames, 2);
  } finally {
    Buffer.concat = concat;
  }
  assert.ok(joined <= 2 * stream.length, `${joined} bytes joined for a stream of ${stream.length}`);
});

test('conflict reasons: each kind goes over the wire and back equal; anything else a peer sends is dropped, never trusted', () => {
  // The reintegrator acts on a refusal's reason (Reintegrator: missing-parent, link-target, name-taken,
  // elsewhere, outdated) instead of reading the message, which a reworded message would have broken silently.
  const reasons: ConflictReason[] = [
    { kind: 'outdated', path: 'a/b', made: '0x0000000000000002', current: '0x0000000000000005' },
    { kind: 'name-taken', path: 'a', by: 'abcdef0123456789-1' },
    { kind: 'new-name-taken', path: 'a' },
    { kind: 'link-target', path: 'l' },
    { kind: 'elsewhere', path: 'a', here: 'b/a' },
    { kind: 'missing-parent', path: 'a/b/c', parent: 'a/b' },
    { kind: 'not-empty', path: 'd', holds: 'abcdef0123456789-1,abcdef0123456789-2' },
  ];
  for (const reason of reasons) {
    const e = IntersyncError.CONFLICT(reason.path, 'why', reason);
    const wire = JSON.parse(JSON.stringify(toWire(e))) as unknown;
    assert.deepEqual(fromWire(409, wire).reason, reason);
    assert.deepEqual(e.wrap('applying').reason, reason, 'wrap keeps the reason');
  }
  assert.equal(toWire(IntersyncError.CONFLICT('a', 'no reason')).error.reason, undefined);
  fc.assert(fc.property(fc.anything(), (v) => {
    const r = parseConflictReason(v);
    if (r !== null) assert.equal(typeof r.path, 'string');
  }));
  for (const bad of [null, 'outdated', { kind: 'outdated', path: 'a', made: 2, current: '0x5' }, { kind: 'nope', path: 'a' }, { kind: 'elsewhere', path: 'a' },
    { kind: '__proto__', path: 'a' }, { kind: 'missing-parent', parent: 'a' }, { kind: 'not-empty', path: 'd', holds: ['x'] }]) {
    assert.equal(parseConflictReason(bad), null, JSON.stringify(bad));
  }
  // Extra fields a peer adds are not carried along.
  assert.deepEqual(parseConflictReason({ kind: 'link-target', path: 'l', extra: 'x' }), { kind: 'link-target', path: 'l' });
});
