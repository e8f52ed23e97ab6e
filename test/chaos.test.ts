// Invariant (randomized): with links cut and restored, a client offline for a while and a client SIGKILLed
// and restarted, random creates, overwrites, renames, deletes, chmods and mkdirs on all four nodes of a small
// shared namespace converge: every journal and disk digest is equal, every content no later operation
// replaced survives on the server (at its name or as a conflict copy), and conflict copies stay few.
// The short run of test/chaos/harness.ts; `npm run test:chaos` is the long one. Replay with CHAOS_SEED=<seed>.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chaosSeed, runChaos } from './chaos/harness.js';

test('chaos (short): 60 random operations on 4 nodes with cuts, an offline client and a client kill converge, nothing lost', { timeout: 300_000 }, async (t) => {
  const seed = chaosSeed('20260517');
  const r = await runChaos(t, {
    seed, ops: 60, cuts: 3, offline: 1, clientKills: 1, serverKills: 0, maxPeriodOps: 20,
    pauseRate: 0.08, bigFileRate: 0.03, convergeMs: 90_000, leaseMs: 5000,
  });
  t.diagnostic(`seed ${seed}: ops ${JSON.stringify(r.opsByKind)} (${r.skipped} skipped), cuts ${r.cuts}, offline ${r.offlinePeriods}, kills ${r.clientKills}+${r.serverKills}, conflict copies ${r.conflictCopies}, converged in ${r.convergeMs} ms, total ${r.totalMs} ms`);
  assert.equal(r.problems.length, 0, `chaos seed ${seed} (replay: CHAOS_SEED=${seed} npm test): ${r.summary}`);
  assert.ok(r.cuts >= 1 && r.offlinePeriods >= 1 && r.clientKills >= 1, `chaos seed ${seed}: the schedule cut a link, took a client offline and killed one`);
});
