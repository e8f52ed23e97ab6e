// Invariant: `intersync reconnect DIR --dry-run` says what the reconnection would decide (server records
// applied first, local records sent as they are, each conflict with the policy's decision) and changes
// nothing: the client stays disconnected, its pending records stay. The real reconnection then meets the
// conflicts the dry run named.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { STATE_DIR, cli, journalState } from './helpers.js';
import { Farm, assertSettled, disconnect, eventually, journaled } from './farm.js';

test('reconnect --dry-run names the conflicts the reconnection then meets, and changes nothing', { timeout: 180_000 }, async (t) => {
  const farm = await Farm.start(t, { prepare: (s) => writeFileSync(join(s, 'shared.txt'), 'v1\n') });
  const [cl] = farm.clients as [string];
  await assertSettled(farm.all);
  await disconnect(farm, cl);
  // Here: a write of shared.txt (the server writes it too), a new page the server also makes, a file only here.
  writeFileSync(join(cl, 'shared.txt'), 'written here\n');
  writeFileSync(join(cl, 'page.html'), 'made here\n');
  writeFileSync(join(cl, 'mine.txt'), 'only here\n');
  await eventually('the local changes are journaled', () => journalState(cl).lml, (n) => n >= 3);
  const before = journalState(farm.server).lastTid;
  writeFileSync(join(farm.server, 'shared.txt'), 'written on the server\n');
  writeFileSync(join(farm.server, 'page.html'), 'made on the server\n');
  writeFileSync(join(farm.server, 'theirs.txt'), 'only there\n');
  await journaled(farm.server, before);
  await eventually('the server journals its three changes', () => journalState(farm.server).lastTid, (n) => n >= before + 3n);
  const lml = journalState(cl).lml;

  const r = cli(['reconnect', cl, '--dry-run', '--json', '--state-dir', STATE_DIR]);
  assert.equal(r.code, 0, r.stderr);
  const plan = JSON.parse(r.stdout) as { dryRun: boolean; serverRecords: number; goAsTheyAre: { records: number; objects: number }; conflicts: Array<{ path: string; kind: string; decision: string }> };
  assert.equal(plan.dryRun, true);
  assert.equal(plan.serverRecords, 3, r.stdout);
  assert.deepEqual(plan.conflicts.map((c) => `${c.path} ${c.kind} ${c.decision}`).sort(), ['page.html name/name keep-both', 'shared.txt write/write keep-both']);
  assert.equal(plan.goAsTheyAre.objects, 1, 'mine.txt goes as it is');
  const human = cli(['reconnect', cl, '--dry-run', '--state-dir', STATE_DIR]);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /meet {2}2 conflicts:/);
  assert.match(human.stdout, /shared\.txt {2}write\/write -> keep-both/);
  // Nothing changed: still disconnected, the same pending records, the local versions in place.
  assert.equal(existsSync(join(cl, '.intermezzo', 'default', 'offline')), true);
  assert.equal(journalState(cl).lml, lml);
  assert.equal(readFileSync(join(cl, 'shared.txt'), 'utf8'), 'written here\n');

  // The real reconnection meets those two.
  const real = cli(['reconnect', cl, '--json']);
  assert.equal(real.code, 0, real.stderr);
  const got = JSON.parse(real.stdout) as { outcome: string; conflicts: number };
  assert.equal(got.outcome, 'done', real.stdout);
  assert.equal(got.conflicts, plan.conflicts.length);
  await assertSettled(farm.all);
});
