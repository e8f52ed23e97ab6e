// Invariant: while a writer keeps changing the master (creates, writes, renames of files and directories, removals),
// the streaming slave applies every record with its digest check passing (content the master changed again before
// it was read is placed as it is and checked once its later record came), and converges when the writer stops:
// the same journal digest and the same tree. A smaller form of issue 15's writer test (not its 2,000 ops/s x 30 s).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { diskDigest, NODE_ARGS, ROOT, settle, sleep, stopChild } from './helpers.js';
import { journalOf, makeSlave, masterBox, syncedOf } from './mirror-fixture.js';

const hex = (t: bigint): string => `0x${t.toString(16).padStart(16, '0')}`;

/** A small deterministic random source (mulberry32). */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('a writer changes the master while the slave streams: every record checked, the slave converges', { timeout: 300_000 }, async (t) => {
  const b = await masterBox(t, 'intersync-mirror-writer-');
  for (let d = 0; d < 5; d++) mkdirSync(join(b.master, `d${d}`));
  await settle(b.node);
  makeSlave(b.slave, b.node.db.meta.uuid);
  const child = spawn(process.execPath, [...NODE_ARGS, 'mirror-stream', '--json', '-v', '--hand-check', '0', b.master, b.slave], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => stopChild(child, 'SIGKILL'));
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const rand = rng(Number(process.env.MIRROR_WRITER_SEED ?? 1515));
  const pick = (n: number): number => Math.floor(rand() * n);
  const end = Date.now() + 8_000;
  let ops = 0;
  while (Date.now() < end) {
    const d = `d${pick(5)}`;
    const f = join(b.master, d, `f${pick(40)}`);
    const r = rand();
    try {
      if (r < 0.5) writeFileSync(f, `${ops} ${'x'.repeat(pick(3000))}\n`);
      else if (r < 0.7 && existsSync(f)) rmSync(f);
      else if (r < 0.9 && existsSync(f)) renameSync(f, join(b.master, `d${pick(5)}`, `f${pick(40)}`));
      else if (r < 0.95 && existsSync(join(b.master, d))) {
        // A directory renamed away and back: two directory renames, its files moving with it.
        renameSync(join(b.master, d), join(b.master, `t${ops}`));
        renameSync(join(b.master, `t${ops}`), join(b.master, d));
      }
    } catch {
      // a name another op just moved: the writer goes on
    }
    ops++;
    if (ops % 50 === 0) await sleep(10);
  }
  await settle(b.node, 300);
  const m = journalOf(b.master);
  for (let i = 0; i < 600 && syncedOf(b.slave) !== hex(m.tid); i++) {
    if (child.exitCode !== null) break;
    await sleep(100);
  }
  t.diagnostic(`${ops} writer operations, ${m.tid} records on the master`);
  assert.equal(child.exitCode, null, `the mirror stopped: ${err}`);
  assert.equal(syncedOf(b.slave), hex(m.tid), err);
  assert.equal(journalOf(b.slave).digest, m.digest);
  assert.equal(await diskDigest(b.slave), await diskDigest(b.master));
  const exit = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  child.kill('SIGTERM');
  assert.equal(await exit, 0, err);
  const result = JSON.parse(out.trim().split('\n').pop()!) as { records: number; verified: number };
  t.diagnostic(`${result.records} records applied, ${result.verified} checked`);
  assert.equal(result.verified, result.records); // every record checked, the objects behind counted at the master's hash
});
