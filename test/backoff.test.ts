// Invariant: the backoff every retry loop shares waits its step plus up to as much again (the jitter, from the
// random source it is given), doubles the step up to its cap (2 s while the disk is full), and starts again at
// the first step once a try went through.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BACKOFF_CAP_MS, Backoff, DISK_FULL_CAP_MS } from '#core/backoff.js';

test('waits step + jitter × step, doubling up to the cap; reset starts again', () => {
  const draws = [0, 0.5, 0.999, 0.25];
  let i = 0;
  const b = new Backoff(200, BACKOFF_CAP_MS, () => draws[i++ % draws.length]!);
  assert.equal(b.next(), 200); // 200 + 0 × 200
  assert.equal(b.next(), 600); // 400 + 0.5 × 400
  assert.equal(Math.round(b.next()), 1599); // 800 + 0.999 × 800
  assert.equal(b.next(), 2000); // 1600 + 0.25 × 1600
  for (let k = 0; k < 10; k++) b.next();
  assert.equal(b.step, BACKOFF_CAP_MS, 'capped');
  b.reset();
  assert.equal(b.step, 200, 'back to the first step');
});

test('a full disk is looked at again every 2 s at most', () => {
  const b = new Backoff(500, BACKOFF_CAP_MS, () => 0);
  for (let k = 0; k < 6; k++) b.next(true);
  assert.equal(b.step, DISK_FULL_CAP_MS);
  assert.equal(b.next(true), DISK_FULL_CAP_MS);
});
