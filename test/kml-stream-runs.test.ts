// Invariant: the producer end of the record stream (net/kml-stream.ts) writes the records it reads as runs (one
// write for many frames), and a lone new record leaves at once, in a write of its own, with no timer between
// its commit and its write.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { NO_VERSION } from '#core/ids.js';
import { Signal } from '#core/mutex.js';
import { FrameDecoder, type Frame } from '#net/protocol/frames.js';
import { streamKml } from '#net/kml-stream.js';
import { applyFixture } from './apply-fixture.js';

test('the records read go out as one write; a lone record committed later leaves at once in its own write', async (t) => {
  const { root, db, rec } = applyFixture(t, 'intersync-stream-');
  for (const n of ['a', 'b', 'c']) writeFileSync(join(root, `${n}.html`), `${n}\n`);
  await rec.run([{ path: 'a.html' }, { path: 'b.html' }, { path: 'c.html' }]);
  const writes: Frame[][] = [];
  const dec = new FrameDecoder();
  let wrote: () => void = () => undefined;
  const wake = new Signal();
  db.onCommit(() => wake.fire());
  let open = true;
  const nextWrite = (): Promise<void> => new Promise((r) => (wrote = r));
  let first = nextWrite();
  const done = streamKml({
    db, inline: () => null, wake, recalls: () => undefined, open: () => open,
    write: async (buf) => {
      writes.push(dec.push(buf));
      wrote();
    },
  }, NO_VERSION, true);
  // hello, then the three records, then a ping (caught up).
  while (!writes.some((w) => w.some((f) => f.type === 'ping'))) {
    await first;
    first = nextWrite();
  }
  assert.deepEqual(writes.map((w) => w.map((f) => f.type).join(',')), ['hello', 'record,record,record', 'ping'], 'the three records in one write');
  const n = writes.length;
  writeFileSync(join(root, 'lone.html'), 'alone\n');
  await rec.run([{ path: 'lone.html' }]);
  while (writes.length === n) {
    await first;
    first = nextWrite();
  }
  assert.deepEqual(writes[n]!.map((f) => `${f.type} ${(f.header.r as { path?: string } | undefined)?.path ?? ''}`), ['record lone.html'], 'the lone record at once, alone');
  open = false;
  wake.fire();
  await done;
});
