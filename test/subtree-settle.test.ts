// Invariant: a file below a subtree with its own quiet time (subtree-settle-ms) is journaled only once it has
// had no event for that long, so a writer that writes it in pieces ships it once, whole; a file elsewhere
// follows the fileset-wide settle-ms and is journaled at once; a move into the subtree stays one record.
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { records, settle, sleep, startNode, tmpDir } from './helpers.js';
import { eventually } from './farm.js';

const SLOW_MS = 4000;

test('a file written in pieces below a slow subtree is journaled once, when quiet; another subtree journals each piece at once', { timeout: 60_000 }, async (t) => {
  const dir = tmpDir();
  const logs = tmpDir('intersync-logs-');
  mkdirSync(join(dir.path, 'www/slow'), { recursive: true });
  mkdirSync(join(dir.path, 'orders'));
  const node = await startNode(dir.path, logs.path, { subtreeSettleMs: { 'www/slow/': SLOW_MS, www: 0 } });
  t.after(async () => {
    await node.stop();
    dir.cleanup();
    logs.cleanup();
  });
  await settle(node);
  const start = node.db.lastTid;
  const of = (p: string) => records(node, start).filter((r) => r.path === p);
  const slow = join(dir.path, 'www/slow/index.html');
  const fast = join(dir.path, 'orders/o1.json');
  const t0 = performance.now();
  let lastPieceAt = t0;
  for (let i = 1; i <= 5; i++) {
    appendFileSync(slow, `<p>piece ${i}</p>\n`);
    lastPieceAt = performance.now();
    appendFileSync(fast, `{"piece":${i}}\n`);
    const size = i * `{"piece":${i}}\n`.length;
    await eventually(`orders/o1.json journaled with piece ${i}`, () => of('orders/o1.json').at(-1)?.size, (s) => s === size, 10_000);
    // Each piece is an event on the slow file less than its quiet time after the last: nothing of it yet (checked
    // while that holds: a machine stalled for the whole quiet time would rightly journal it).
    if (performance.now() - lastPieceAt < SLOW_MS) assert.deepEqual(of('www/slow/index.html'), [], `www/slow/index.html not journaled while written (piece ${i})`);
    await sleep(300);
  }
  const wroteMs = performance.now() - t0;
  const whole = await eventually('www/slow/index.html journaled once quiet', () => of('www/slow/index.html'), (r) => r.length > 0, 20_000);
  const quietMs = performance.now() - lastPieceAt;
  console.log(`# pieces written over ${Math.round(wroteMs)} ms; the slow file journaled ${Math.round(quietMs)} ms after the last (subtree settle ${SLOW_MS} ms)`);
  await settle(node);
  assert.deepEqual(of('www/slow/index.html').map((r) => `${r.kind} ${r.size}`), [`create ${whole[0]!.size}`], 'one record, the whole file');
  assert.equal(whole[0]!.size, 5 * '<p>piece 1</p>\n'.length);
  assert.ok(of('orders/o1.json').length >= 5, 'the other subtree journaled each piece');

  // The safe pattern in the slow subtree: a temp file renamed over the name, one more record for the new version.
  const before = node.db.lastTid;
  writeFileSync(join(dir.path, 'www/slow/index.html.new'), 'v2\n');
  renameSync(join(dir.path, 'www/slow/index.html.new'), slow);
  await eventually('the renamed-over file journaled', () => records(node, before).filter((r) => r.path === 'www/slow/index.html' || r.newPath === 'www/slow/index.html').length, (n) => n > 0, 20_000);
  await settle(node);
  assert.equal(node.db.objectByPath('www/slow/index.html')?.size, 3);
  assert.equal(node.db.objectByPath('www/slow/index.html.new'), undefined);
});

test('a file moved into a slow subtree is one rename record, journaled at once', { timeout: 60_000 }, async (t) => {
  const dir = tmpDir();
  const logs = tmpDir('intersync-logs-');
  mkdirSync(join(dir.path, 'slow'));
  writeFileSync(join(dir.path, 'draft.html'), 'draft');
  const node = await startNode(dir.path, logs.path, { subtreeSettleMs: { slow: 60_000 } });
  t.after(async () => {
    await node.stop();
    dir.cleanup();
    logs.cleanup();
  });
  await settle(node);
  const before = node.db.lastTid;
  renameSync(join(dir.path, 'draft.html'), join(dir.path, 'slow/page.html'));
  await settle(node);
  assert.deepEqual(records(node, before).map((r) => `${r.kind} ${r.path} -> ${r.newPath}`), ['rename draft.html -> slow/page.html']);
});
