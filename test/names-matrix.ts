// Every pair of (a client's change in or of a directory, off line) x (the server's change of that directory
// or a name in it): every content written on either side survives on every node, the nodes settle (equal
// digests, each journal equal to its disk), and the client does not resync. `npm run test:names`.
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from './helpers.js';
import { Farm, assertSettled, disconnect, eventually, journaled, reconnect, treeFiles } from './farm.js';

/** A client change, off line: the contents it writes (each must survive). */
const CLIENT: Record<string, (c: string) => string[]> = {
  'create d/new': (c) => { writeFileSync(join(c, 'd/new'), 'client new\n'); return ['client new\n']; },
  'write d/a': (c) => { writeFileSync(join(c, 'd/a'), 'client wrote a\n'); return ['client wrote a\n']; },
  'rename d/a d/b': (c) => { renameSync(join(c, 'd/a'), join(c, 'd/b')); return []; },
  'mkdir d/sub + file': (c) => { mkdirSync(join(c, 'd/sub')); writeFileSync(join(c, 'd/sub/x'), 'client x\n'); return ['client x\n']; },
  'rename d e, write e/a': (c) => { renameSync(join(c, 'd'), join(c, 'e')); writeFileSync(join(c, 'e/a'), 'client wrote e/a\n'); return ['client wrote e/a\n']; },
  'rm -r d': (c) => { rmSync(join(c, 'd'), { recursive: true }); return []; },
  'replace d/a': (c) => { writeFileSync(join(c, 'd/a.tmp'), 'client replaced a\n'); renameSync(join(c, 'd/a.tmp'), join(c, 'd/a')); return ['client replaced a\n']; },
};
/** A server change: the contents it writes (each must survive). */
const SERVER: Record<string, (s: string) => string[]> = {
  'rename d e': (s) => { renameSync(join(s, 'd'), join(s, 'e')); return []; },
  'rename d z/d': (s) => { renameSync(join(s, 'd'), join(s, 'z/d')); return []; },
  'rm -r d': (s) => { rmSync(join(s, 'd'), { recursive: true }); return []; },
  'write d/a': (s) => { writeFileSync(join(s, 'd/a'), 'server wrote a\n'); return ['server wrote a\n']; },
  'unlink d/a': (s) => { rmSync(join(s, 'd/a')); return []; },
  'create d/new': (s) => { writeFileSync(join(s, 'd/new'), 'server new\n'); return ['server new\n']; },
  'rename d/a z/a': (s) => { renameSync(join(s, 'd/a'), join(s, 'z/a')); return []; },
  'rename z d/z': (s) => { renameSync(join(s, 'z'), join(s, 'd/z')); return []; },
};
for (const [cn, cop] of Object.entries(CLIENT)) {
  for (const [sn, sop] of Object.entries(SERVER)) {
    test(`client ${cn} / server ${sn}`, { timeout: 120_000 }, async (t) => {
      const farm = await Farm.start(t, { clients: 1, clientArgs: process.env.DEBUGLOG === '1' ? ['--debug', '18'] : [] });
      const s = farm.server;
      const [c] = farm.clients as [string];
      mkdirSync(join(s, 'd'));
      mkdirSync(join(s, 'z'));
      writeFileSync(join(s, 'd/a'), 'a before\n');
      writeFileSync(join(s, 'z/keep'), 'z keep\n');
      await assertSettled(farm.all);
      await disconnect(farm, c);
      const lml = journalState(c).lml;
      const want = cop(c);
      await eventually('the client journals', () => journalState(c).lml, (n) => n > lml);
      const before = journalState(s).lastTid;
      want.push(...sop(s));
      await journaled(s, before);
      reconnect(c);
      await assertSettled(farm.all);
      // DEBUGLOG=1: the client's log lines that tell what happened (and its daemon at --debug 18).
      if (process.env.DEBUGLOG === '1') console.log(farm.log(c).split('\n').filter((l) => /warn|error|conflict|resync|refused|does not|"lml"|accepted|reintegrat/.test(l)).map((l) => l.slice(70, 600)).join('\n'));
      const trees = (): string => JSON.stringify(farm.all.map((d) => [...treeFiles(d)]));
      for (const d of farm.all) for (const w of want) assert.ok([...treeFiles(d).values()].includes(w), `${d}: ${JSON.stringify(w)} kept; trees ${trees()}`);
      assert.deepEqual(farm.logMessages(c, /resync|does not apply/), [], `no resync; trees ${trees()}`);
    });
  }
}
