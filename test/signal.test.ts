// Invariant: a wake-up is never lost: every waiter wakes at a fire(), and a fire() with nobody waiting ends
// the next wait at once (the forwarded stream relies on it to send records as soon as they commit).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Signal } from '#core/mutex.js';

test('fire wakes every waiter at once', async () => {
  const s = new Signal();
  const t0 = performance.now();
  const waits = [s.wait(5000), s.wait(5000), s.wait(5000), s.wait(5000)];
  setTimeout(() => s.fire(), 10);
  await Promise.all(waits);
  assert.ok(performance.now() - t0 < 1000, 'all four woke at the fire, not at their time-out');
});

test('a fire with nobody waiting ends the next wait at once, once', async () => {
  const s = new Signal();
  s.fire();
  const t0 = performance.now();
  await s.wait(5000);
  assert.ok(performance.now() - t0 < 100);
  const t1 = performance.now();
  await s.wait(50);
  assert.ok(performance.now() - t1 >= 40, 'the remembered fire is used up');
});
