// The long randomized convergence run (npm run test:chaos): 300 operations on one server and three clients,
// with many link cuts, offline periods and SIGKILLs of clients and of the server; the same invariants as
// test/chaos.test.ts (see test/chaos/harness.ts). The seed is Date.now() unless CHAOS_SEED is set; it is
// printed first and in every assertion message, so a failing run replays with CHAOS_SEED=<seed>.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chaosSeed, runChaos } from './chaos/harness.js';

test('chaos (long): 300 random operations with cuts, offline clients and kills of clients and the server', { timeout: 900_000 }, async (t) => {
  const seed = chaosSeed(Date.now());
  const r = await runChaos(t, {
    seed, ops: 300, cuts: 12, offline: 5, clientKills: 6, serverKills: 3, maxPeriodOps: 40,
    pauseRate: 0.06, bigFileRate: 0.03, convergeMs: 120_000, leaseMs: 5000,
  });
  t.diagnostic(`seed ${seed}: ops ${JSON.stringify(r.opsByKind)} (${r.skipped} skipped), cuts ${r.cuts}, offline ${r.offlinePeriods}, kills ${r.clientKills}+${r.serverKills}, conflict copies ${r.conflictCopies}, converged in ${r.convergeMs} ms, total ${r.totalMs} ms`);
  assert.equal(r.problems.length, 0, `chaos seed ${seed} (replay: CHAOS_SEED=${seed} npm run test:chaos): ${r.summary}`);
});
