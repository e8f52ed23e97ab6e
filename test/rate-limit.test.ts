// Invariant: a RATE given to --bwlimit (or bwlimit= in the config) is read as bytes per second with k, m, g
// meaning KiB, MiB, GiB, and anything else is refused with BAD_ARGUMENT; the token bucket lets through at
// most its burst plus rate × time, however many transfers take from it at once, and a piece larger than the
// burst still passes (it waits for its debt).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { IntersyncError } from '#core/errors.js';
import { BODY_BUDGET_S, RateLimit, bodyLimit, formatRate, parseRate, throttled } from '#net/rate-limit.js';

test('parseRate: bytes per second, k/m/g are powers of 1024, 0 is no limit', () => {
  const table: Array<[string, number | null]> = [
    ['2m', 2 * 1024 * 1024], ['500k', 500 * 1024], ['1.5M', 1.5 * 1024 * 1024], ['1g', 1024 ** 3], ['2MiB', 2 * 1024 * 1024],
    ['2mb/s', 2 * 1024 * 1024], ['1048576', 1048576], ['1k', 1024], [' 3 k ', 3072], ['0', null], ['0m', null],
  ];
  for (const [text, want] of table) assert.equal(parseRate(text), want, text);
  for (const bad of ['', 'x', '-1', '2x', '1e6', '100', '0.5k', '2 mbit', 'm', '1..5m', '99999999999999999g']) {
    assert.throws(() => parseRate(bad), (e: unknown) => e instanceof IntersyncError && e.code === 'BAD_ARGUMENT' && e.message.includes('--bwlimit'), bad);
  }
  assert.equal(formatRate(2 * 1024 * 1024), '2 MiB/s');
  assert.equal(formatRate(1536), '1.5 KiB/s');
});

/** A clock that moves only when someone sleeps on it. */
function fakeTime(): { now: () => number; sleep: (ms: number) => Promise<void> } {
  let t = 0;
  return {
    now: () => t,
    sleep: async (ms) => {
      t += ms;
    },
  };
}

test('the bucket: N bytes take (N - burst) / rate, one taker or several at once', async () => {
  for (const takers of [1, 3]) {
    const time = fakeTime();
    const lim = new RateLimit(1 << 20, time);
    const total = 8 << 20;
    await Promise.all(Array.from({ length: takers }, async () => {
      for await (const _ of throttled([Buffer.alloc(total / takers)], lim)) { /* let through */ }
    }));
    const secs = time.now() / 1000;
    const expect = (total - lim.burst) / (1 << 20);
    console.log(`${takers} taker(s): 8 MiB at 1 MiB/s in ${secs.toFixed(3)} s (expected ${expect.toFixed(3)} s)`);
    // Each sleep pays the debt of the moment (the fake sleeps run one after another: the sum is what counts).
    assert.ok(secs >= expect * 0.999 && secs <= expect * 1.02, `${secs}`);
  }
});

test('property: over any run of takes, bytes let through <= burst + rate × elapsed', async () => {
  await fc.assert(fc.asyncProperty(
    fc.integer({ min: 1024, max: 1 << 24 }), fc.array(fc.integer({ min: 1, max: 1 << 20 }), { minLength: 1, maxLength: 60 }),
    async (rate, sizes) => {
      const time = fakeTime();
      const lim = new RateLimit(rate, time);
      let passed = 0;
      for (const n of sizes) {
        await lim.take(n);
        passed += n;
        assert.ok(passed <= lim.burst + (rate * time.now()) / 1000 + 1e-6, `${passed} bytes in ${time.now()} ms at ${rate}`);
      }
    },
  ), { seed: 20261206, numRuns: 200 });
});

test('throttled: pieces of at most the limit\'s piece size, bytes unchanged, counted as they pass', async () => {
  const time = fakeTime();
  const lim = new RateLimit(100_000, time);
  const src = [Buffer.alloc(50_000, 1), Buffer.alloc(7, 2), new Uint8Array(30_000).fill(3)];
  let counted = 0;
  const out: Buffer[] = [];
  for await (const p of throttled(src, lim, (n) => {
    counted += n;
  })) out.push(p);
  assert.ok(out.every((p) => p.length <= lim.piece), `${out.map((p) => p.length).join(',')}`);
  assert.deepEqual(Buffer.concat(out), Buffer.concat(src.map((b) => Buffer.from(b))));
  assert.equal(counted, 80_007);
  const plain: Buffer[] = [];
  for await (const p of throttled(src, null)) plain.push(p);
  assert.equal(plain.length, 3, 'without a limit, the chunks as they were');
});

test('bodyLimit: a body that would outlast the budget at the limit gets a bucket just fast enough; others the node\'s', () => {
  const lim = new RateLimit(1 << 20);
  assert.equal(bodyLimit(null, 1 << 30), null);
  assert.equal(bodyLimit(lim, 100 << 20), lim);
  assert.equal(bodyLimit(lim, BODY_BUDGET_S << 20), lim);
  const own = bodyLimit(lim, 1 << 30);
  assert.ok(own !== null && own !== lim && own.rate === Math.ceil((1 << 30) / BODY_BUDGET_S), `${own?.rate}`);
});
