// Every pair of (a client's change through one name of a hard link, off line) x (a server's change of the
// link's names or inode): the client's content survives on every node, with no resync. 21 pairs, about two
// minutes: `npm run test:links`. Before the fixes in hardlinks-merge.test.ts, 5 of the 21 failed.
import assert from 'node:assert/strict';
import { appendFileSync, chmodSync, linkSync, renameSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from './helpers.js';
import { Farm, assertSettled, disconnect, eventually, journaled, reconnect, treeFiles } from './farm.js';

const X: Record<string, (c: string) => string> = {
  'truncate f': (c) => { truncateSync(join(c, 'f'), 4); return 'vers'; },
  'append g': (c) => { appendFileSync(join(c, 'g'), 'client appended\n'); return 'version 1\nclient appended\n'; },
  'inplace f': (c) => { writeFileSync(join(c, 'f'), 'client wrote f\n'); return 'client wrote f\n'; },
};
const Y: Record<string, (s: string) => void> = {
  'unlink g': (s) => unlinkSync(join(s, 'g')),
  'unlink f': (s) => unlinkSync(join(s, 'f')),
  'replace g': (s) => { writeFileSync(join(s, 'g.tmp'), 'server new g\n'); renameSync(join(s, 'g.tmp'), join(s, 'g')); },
  'rename f h': (s) => renameSync(join(s, 'f'), join(s, 'h')),
  'write g': (s) => writeFileSync(join(s, 'g'), 'server wrote g\n'),
  'chmod g': (s) => chmodSync(join(s, 'g'), 0o600),
  'link f k': (s) => linkSync(join(s, 'f'), join(s, 'k')),
};
for (const [xn, x] of Object.entries(X)) {
  for (const [yn, y] of Object.entries(Y)) {
    test(`client ${xn} / server ${yn}`, { timeout: 120_000 }, async (t) => {
      const farm = await Farm.start(t, { clients: 1 });
      const s = farm.server;
      const [c] = farm.clients as [string];
      writeFileSync(join(s, 'f'), 'version 1\n');
      await journaled(s, 0n);
      const b = journalState(s).lastTid;
      linkSync(join(s, 'f'), join(s, 'g'));
      await journaled(s, b);
      await assertSettled(farm.all);
      await disconnect(farm, c);
      const want = x(c);
      await eventually('client journals', () => journalState(c).lml, (n) => n >= 1);
      const b2 = journalState(s).lastTid;
      y(s);
      await journaled(s, b2);
      reconnect(c);
      await assertSettled(farm.all);
      for (const d of farm.all) assert.ok([...treeFiles(d).values()].includes(want), `${d}: client content ${JSON.stringify(want)} kept: ${JSON.stringify([...treeFiles(d)])}`);
      const trees = (): string => JSON.stringify(farm.all.map((d) => [...treeFiles(d)]));
      assert.deepEqual(farm.logMessages(c, /resync|does not apply/), [], `no resync; trees ${trees()}`);
    });
  }
}
