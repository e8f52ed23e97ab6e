// Invariant: long work other than a copy shows its progress: a large file moving either way and a
// reintegration of many records get a bar on a terminal, else a line every few seconds while they move and
// one when they are done; work shorter than the delay shows nothing, and work that does not move (a client
// away, a stuck record) does not repeat its line. The line tests fail without the "moved" rule (a stuck
// reintegration printed its line at every interval) and without the last line.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Transfer } from '#core/transfers.js';
import { workReporter, type BarSet, type WorkNow } from '#cli/work-progress.js';

const MiB = 1 << 20;
const tr = (bytes: number, o: Partial<Transfer> = {}): Transfer => ({ direction: 'down', path: 'big.bin', size: 8 * MiB, total: 8 * MiB, bytes, since: 1000, peer: null, ...o });
const idle: WorkNow = { transfers: [], reint: { pending: 0, sent: 0 }, connected: true };

test('lines: a transfer is shown once it lasted the delay, then at each interval it moved, then done', () => {
  let now = 0;
  const lines: string[] = [];
  const r = workReporter({ bars: null, print: (l) => lines.push(l), everyMs: 5000, delayMs: 5000, now: () => now });
  const at = (t: number, w: WorkNow): void => {
    now = t;
    r.tick(w);
  };
  // A short one (2 s): nothing at all.
  at(0, { ...idle, transfers: [tr(0, { path: 'short.bin', since: 1 })] });
  at(2000, { ...idle, transfers: [tr(8 * MiB, { path: 'short.bin', since: 1 })] });
  at(3000, idle);
  assert.deepEqual(lines, []);
  // A long one: 1 MiB/s for 8 s; polled every second.
  for (let s = 0; s <= 8; s++) at(10_000 + s * 1000, { ...idle, transfers: [tr(s * MiB)] });
  at(19_000, idle);
  assert.deepEqual(lines, [
    'download big.bin: 5.0 MiB of 8.0 MiB (62%), 1.0 MiB/s',
    'download big.bin: done, 8.0 MiB in 9.0 s',
  ]);
  // Both ways at once are two pieces of work.
  lines.length = 0;
  at(30_000, { ...idle, transfers: [tr(0), tr(0, { direction: 'up', path: 'up.bin', since: 2 })] });
  at(36_000, { ...idle, transfers: [tr(3 * MiB), tr(6 * MiB, { direction: 'up', path: 'up.bin', since: 2 })] });
  assert.deepEqual(lines, ['download big.bin: 3.0 MiB of 8.0 MiB (37%), 512.0 KiB/s', 'upload up.bin: 6.0 MiB of 8.0 MiB (75%), 1.0 MiB/s']);
});

test('lines: a reintegration run counts records sent out of all pending, is quiet while it does not move, and ends with a line', () => {
  let now = 0;
  const lines: string[] = [];
  const r = workReporter({ bars: null, print: (l) => lines.push(l), everyMs: 1000, delayMs: 1000, now: () => now });
  const at = (t: number, pending: number, sent: number, connected = true): void => {
    now = t;
    r.tick({ transfers: [], reint: { pending, sent }, connected });
  };
  at(0, 0, 40); // 40 sent before: not this run's
  at(500, 3000, 40, false);
  for (let t = 1000; t <= 10_000; t += 1000) at(t, 3000, 40, false); // away: one line, not one a second
  at(11_000, 3000, 40); // back, not moved yet
  at(12_000, 2500, 540);
  at(12_500, 2000, 1040); // within the interval: no line
  at(13_000, 1200, 1840);
  at(14_000, 0, 3040);
  assert.deepEqual(lines, [
    'reintegration: 0/3000 records sent, 0/s (server away)',
    'reintegration: 500/3000 records sent, 100/s', // the rate of the last 5 s, not since the client went away
    'reintegration: 1800/3000 records sent, 360/s',
    'reintegration: 3000/3000 records sent, done in 13.5 s',
  ]);
  // Records made meanwhile join the run's total.
  lines.length = 0;
  at(20_000, 100, 3040);
  at(21_000, 150, 3090);
  at(22_000, 0, 3240);
  assert.deepEqual(lines, ['reintegration: 50/200 records sent, 50/s', 'reintegration: 200/200 records sent, done in 2.0 s']);
});

test('bars on a terminal: one per piece of work, removed when done, stopped when none is left; no lines', () => {
  const calls: string[] = [];
  const set: BarSet = {
    create: (total, value, p) => {
      calls.push(`create ${p.what} ${value}/${total}`);
      return { start: () => undefined, update: (v, q) => calls.push(`update ${q.what} ${v}`), stop: () => undefined, setTotal: () => undefined };
    },
    remove: () => calls.push('remove'),
    stop: () => calls.push('stop'),
  };
  let now = 0;
  const lines: string[] = [];
  const r = workReporter({ bars: () => set, print: (l) => lines.push(l), everyMs: 5000, delayMs: 1000, now: () => now });
  for (const [t, b] of [[0, 0], [1000, MiB], [2000, 2 * MiB]] as const) {
    now = t;
    r.tick({ ...idle, transfers: [tr(b)] });
  }
  now = 3000;
  r.tick(idle);
  assert.deepEqual(calls, [`create download big.bin ${MiB}/${8 * MiB}`, `update download big.bin ${2 * MiB}`, 'remove', 'stop']);
  assert.deepEqual(lines, []);
});
