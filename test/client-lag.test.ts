// Invariant: a client counts its lag as the server counts it for this node (journal/in-flight.ts): the
// records after its last_rcvd, and seconds since the oldest of them was journaled; while it applies a
// record it is never "lag 0", and what waits down is the server's count less what it applied.
// The end-to-end check (both ends' status agree while a transfer is held) is status-lag.test.ts; this one
// walks the frames a client sees, one case per row. Fails if ClientLag ignores a record frame (lag 0
// while busy) or a hello's `next` (no lagSince until a record came).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { asTid } from '#core/ids.js';
import { ClientLag } from '#daemon/client-lag.js';

const T = asTid;
const none = { records: 0, files: 0, bytes: 0, atLeast: false };

test('a stream opened behind: the hello says what is missing, from which record, and what waits', () => {
  const l = new ClientLag();
  assert.deepEqual(l.view(T(0), 10_000, null), { serverTid: null, lagRecords: null, lagSince: null, lagSeconds: null, waitingDown: none });
  l.onHello(T(7), { tid: T(3), time: 4_000 }, { records: 5, files: 2, bytes: 300, atLeast: false });
  assert.deepEqual(l.view(T(2), 10_000, null), { serverTid: T(7), lagRecords: 5, lagSince: 4_000, lagSeconds: 6, waitingDown: { records: 5, files: 2, bytes: 300, atLeast: false } });
  // Record 3 arrives with content and is applied: one file less; 4 comes, its time is where the lag counts from.
  l.onRecord({ tid: T(3), time: 4_000 }, T(7), T(2));
  l.onApplied({ hash: 'h', size: 100 });
  l.onRecord({ tid: T(4), time: 8_000 }, T(7), T(3));
  assert.deepEqual(l.view(T(3), 10_000, null), { serverTid: T(7), lagRecords: 4, lagSince: 8_000, lagSeconds: 2, waitingDown: { records: 4, files: 1, bytes: 200, atLeast: false } });
  l.onPing(T(7));
  assert.deepEqual(l.view(T(7), 10_000, null), { serverTid: T(7), lagRecords: 0, lagSince: null, lagSeconds: 0, waitingDown: none });
});

test('caught up, a record arrives after the last ping: busy with it, the client counts itself behind', () => {
  const l = new ClientLag();
  l.onHello(T(9), null, none);
  l.onPing(T(9));
  assert.equal(l.view(T(9), 1_000, null).lagRecords, 0);
  l.onRecord({ tid: T(10), time: 500 }, T(12), T(9));
  assert.deepEqual(l.view(T(9), 3_000, null), { serverTid: T(12), lagRecords: 3, lagSince: 500, lagSeconds: 3, waitingDown: { records: 3, files: 0, bytes: 0, atLeast: false } });
  // A record whose `last` is missing or older than itself still counts itself.
  l.onRecord({ tid: T(13), time: 900 }, undefined, T(12));
  assert.equal(l.view(T(12), 3_000, null).lagRecords, 1);
});

test('a first copy lags by the whole KML until it is in; what waits is the copy\'s rest', () => {
  const l = new ClientLag();
  l.onCopy(T(40), { tid: T(1), time: 1_000 });
  const copy = { done: false, files: 10, totalFiles: 25, bytes: 1_000, totalBytes: 4_000 };
  assert.deepEqual(l.view(T(0), 61_000, copy), { serverTid: T(40), lagRecords: 40, lagSince: 1_000, lagSeconds: 60, waitingDown: { records: 40, files: 15, bytes: 3_000, atLeast: false } });
  // Known TID, unknown time (an older server's copy hello): seconds unknown, not 0.
  const old = new ClientLag();
  old.onCopy(T(40), null);
  assert.deepEqual([old.view(T(0), 5_000, copy).lagSeconds, old.view(T(40), 5_000, { ...copy, done: true }).lagSeconds], [null, 0]);
});

test('a resync lags from the first record after this node\'s last_rcvd, in seconds too', () => {
  // The first case is the contract the server's `next` (snapshot and copy stream, since this node's last_rcvd)
  // feeds; status-lag.test.ts checks it end to end. The second fails without the change to onCopy (it
  // replaced the oldest missing record known here with the copy's null: lagSince null, "? s", all resync long).
  const l = new ClientLag();
  l.onHello(T(20), null, none);
  l.onPing(T(20));
  // Away; back past the server's retention: the snapshot at 60 names record 31 (journaled at 2 s), the first after 20.
  l.onCopy(T(60), { tid: T(31), time: 2_000 });
  const copy = { done: false, files: 1, totalFiles: 3, bytes: 0, totalBytes: 0 };
  assert.deepEqual(l.view(T(20), 9_000, copy), { serverTid: T(60), lagRecords: 40, lagSince: 2_000, lagSeconds: 7, waitingDown: { records: 40, files: 2, bytes: 0, atLeast: false } });
  // A resync after a record that does not apply here, from a server that names nothing: that record is still the oldest missing.
  const m = new ClientLag();
  m.onHello(T(20), null, none);
  m.onRecord({ tid: T(21), time: 3_000 }, T(25), T(20));
  m.onCopy(T(25), null);
  assert.deepEqual([m.view(T(20), 8_000, copy).lagSince, m.view(T(20), 8_000, copy).lagSeconds], [3_000, 5]);
  // Once the copy is in (last_rcvd at its TID), nothing is missing and the old record no longer counts.
  assert.deepEqual([m.view(T(25), 8_000, { ...copy, done: true }).lagSince, m.view(T(25), 8_000, { ...copy, done: true }).lagSeconds], [null, 0]);
});
