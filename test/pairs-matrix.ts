// Every pair of changes made off line on two clients at once (the first one reconnects first): every content
// written on either survives on every node, the nodes settle (equal digests, each journal equal to its disk)
// and neither client resyncs. `npm run test:pairs`.
import assert from 'node:assert/strict';
import { chmodSync, linkSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from './helpers.js';
import { Farm, assertSettled, disconnect, eventually, reconnect, treeFiles } from './farm.js';

/** A change on client `n` (1 or 2): the contents it writes (each must survive). */
const OPS: Record<string, (c: string, n: number) => string[]> = {
  'write d/a': (c, n) => { writeFileSync(join(c, 'd/a'), `c${n} wrote a\n`); return [`c${n} wrote a\n`]; },
  'rename d/a d/b': (c) => { renameSync(join(c, 'd/a'), join(c, 'd/b')); return []; },
  'unlink d/a': (c) => { rmSync(join(c, 'd/a')); return []; },
  'rename d e': (c) => { renameSync(join(c, 'd'), join(c, 'e')); return []; },
  'rm -r d': (c) => { rmSync(join(c, 'd'), { recursive: true }); return []; },
  'create d/new': (c, n) => { writeFileSync(join(c, 'd/new'), `c${n} new\n`); return [`c${n} new\n`]; },
  'chmod d/a': (c) => { chmodSync(join(c, 'd/a'), 0o600); return []; },
  'link d/a d/l': (c) => { linkSync(join(c, 'd/a'), join(c, 'd/l')); return []; },
  'mkdir d/s + file': (c, n) => { mkdirSync(join(c, 'd/s')); writeFileSync(join(c, 'd/s/x'), `c${n} x\n`); return [`c${n} x\n`]; },
  'replace d/a': (c, n) => { writeFileSync(join(c, 'd/a.tmp'), `c${n} replaced a\n`); renameSync(join(c, 'd/a.tmp'), join(c, 'd/a')); return [`c${n} replaced a\n`]; },
  'rename d/c over d/a': (c) => { renameSync(join(c, 'd/c'), join(c, 'd/a')); return []; },
  'symlink d/y -> a': (c) => { symlinkSync('a', join(c, 'd/y')); return []; },
};
for (const [n1, op1] of Object.entries(OPS)) {
  for (const [n2, op2] of Object.entries(OPS)) {
    test(`c1 ${n1} / c2 ${n2}`, { timeout: 120_000 }, async (t) => {
      const farm = await Farm.start(t, { clients: 2 });
      const s = farm.server;
      const [c1, c2] = farm.clients as [string, string];
      mkdirSync(join(s, 'd'));
      writeFileSync(join(s, 'd/a'), 'a before\n');
      writeFileSync(join(s, 'd/c'), 'c before\n');
      await assertSettled(farm.all);
      await disconnect(farm, c1);
      await disconnect(farm, c2);
      const want: string[] = [];
      for (const [c, op, n] of [[c1, op1, 1], [c2, op2, 2]] as const) {
        const lml = journalState(c).lml;
        want.push(...op(c, n));
        await eventually(`c${n} journals`, () => journalState(c).lml, (x) => x > lml);
      }
      reconnect(c1);
      await eventually('c1 sent its change', () => journalState(c1).lml, (x) => x === 0);
      reconnect(c2);
      await assertSettled(farm.all, 40_000);
      const trees = (): string => JSON.stringify(farm.all.map((d) => [...treeFiles(d)]));
      for (const d of farm.all) for (const w of want) assert.ok([...treeFiles(d).values()].includes(w), `${d}: ${JSON.stringify(w)} kept; trees ${trees()}`);
      for (const c of [c1, c2]) assert.deepEqual(farm.logMessages(c, /resync|does not apply/), [], `${c}: no resync; trees ${trees()}`);
    });
  }
}
