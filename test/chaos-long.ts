// The long randomized convergence run (npm run test:chaos): by default 300 operations of every kind on one
// server and three clients, with many link cuts, offline periods and SIGKILLs of clients and of the server;
// the same invariants as test/chaos.test.ts (see test/chaos/harness.ts). Knobs (environment):
//   CHAOS_OPS=1000       operations per run (cuts, offline periods and kills scale with it)
//   CHAOS_CLIENTS=5      clients (default 3)
//   CHAOS_RUNS=N         N runs in a row, seeds CHAOS_SEED, CHAOS_SEED+1, ... (each its own subtest)
//   CHAOS_SEED=<seed>    the (base) seed; Date.now() when unset. Printed first and in every assertion message.
//   CHAOS_ALLOW_RESYNC=1 resyncs are counted but are no problem
//   CHAOS_KINDS=create,overwrite,rename  only these operation kinds (see OP_KINDS in test/chaos/harness.ts)
// Each run prints a one-line summary (operations by kind, cuts, kills, conflict copies, resyncs, time to converge).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OP_KINDS, chaosSeed, runChaos, summaryLine, type ChaosConfig } from './chaos/harness.js';

function intEnv(name: string, fallback: number, min: number): number {
  const v = process.env[name];
  if (v === undefined || v.trim() === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name}=${v}: want an integer >= ${min}`);
  return n;
}

const ops = intEnv('CHAOS_OPS', 300, 10);
const clients = intEnv('CHAOS_CLIENTS', 3, 1);
const runs = intEnv('CHAOS_RUNS', 1, 1);
const base = chaosSeed(Date.now());
const kinds = (process.env.CHAOS_KINDS ?? '').split(',').map((k) => k.trim()).filter((k) => k !== '');
for (const k of kinds) if (!OP_KINDS.includes(k)) throw new Error(`CHAOS_KINDS: unknown kind ${k}; known: ${OP_KINDS.join(',')}`);

/** The seed of run i: base + i when the base is a number, else base-i. */
function seedOf(i: number): string {
  if (i === 0) return base;
  return /^\d+$/.test(base) ? String(BigInt(base) + BigInt(i)) : `${base}-${i}`;
}

/** The schedule scales with the operations: at 300, 12 cuts, 5 offline periods, 6 client kills, 3 server kills. */
function configOf(seed: string): ChaosConfig {
  return {
    seed, ops, clients, cuts: Math.round(ops / 25), offline: Math.round(ops / 60), clientKills: Math.round(ops / 50),
    serverKills: Math.round(ops / 100), maxPeriodOps: 40, pauseRate: 0.06, bigFileRate: 0.03,
    convergeMs: 120_000 + 60 * ops, leaseMs: 5000, allowResync: process.env.CHAOS_ALLOW_RESYNC === '1',
    ...(kinds.length > 0 ? { kinds } : {}),
  };
}

const perRunMs = 600_000 + 1500 * ops;

test(`chaos (long): ${runs} run(s) of ${ops} random operations on ${clients} clients with cuts, offline clients and kills of clients and the server`, { timeout: runs * perRunMs }, async (t) => {
  const lines: string[] = [];
  for (let i = 0; i < runs; i++) {
    const seed = seedOf(i);
    await t.test(`seed ${seed}`, { timeout: perRunMs }, async (st) => {
      const r = await runChaos(st, configOf(seed));
      const line = summaryLine(r);
      lines.push(line);
      console.log(`[chaos] ${line}`);
      st.diagnostic(line);
      assert.equal(r.problems.length, 0, `chaos seed ${seed} (replay: CHAOS_SEED=${seed} CHAOS_OPS=${ops} CHAOS_CLIENTS=${clients} npm run test:chaos): ${r.summary}`);
    });
  }
  if (runs > 1) console.log(`[chaos] all runs:\n${lines.join('\n')}`);
});
