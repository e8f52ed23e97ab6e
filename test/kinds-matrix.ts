// Every pair of (a client's change off line) x (a server's change meanwhile) over a tree that holds a
// symlink, a hard link and directories, the kinds the other matrices leave out: the nodes settle (equal
// digests, each journal equal to its disk, identical trees with symlink targets), every content written
// survives, and the client does not resync. 49 pairs of symlink and directory changes, then 25 of changes
// of the hard link's names, about eight minutes: `npm run test:kinds`. Written after chaos seeds 9201 (a
// symlink removed here and moved on the server came back as a file) and 9202 (a name of a hard link
// removed here, the inode written there through another: refused, then a resync).
import assert from 'node:assert/strict';
import { appendFileSync, chmodSync, linkSync, mkdirSync, renameSync, rmSync, rmdirSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from './helpers.js';
import { Farm, assertSettled, disconnect, eventually, journaled, reconnect, treeFiles } from './farm.js';

/** A change on the client, off line: the contents it writes (each must survive). */
const X: Record<string, (c: string) => string[]> = {
  'unlink d/s': (c) => { unlinkSync(join(c, 'd/s')); return []; },
  'rename d/s d/t': (c) => { renameSync(join(c, 'd/s'), join(c, 'd/t')); return []; },
  'replace symlink d/s by a file': (c) => { unlinkSync(join(c, 'd/s')); writeFileSync(join(c, 'd/s'), 'client file at s\n'); return ['client file at s\n']; },
  'rename d e': (c) => { renameSync(join(c, 'd'), join(c, 'e')); return []; },
  'rm -r d': (c) => { rmSync(join(c, 'd'), { recursive: true }); return []; },
  'rmdir d/empty': (c) => { rmdirSync(join(c, 'd/empty')); return []; },
  'file in d/empty': (c) => { writeFileSync(join(c, 'd/empty/x'), 'client x\n'); return ['client x\n']; },
};
/** A change on the server meanwhile. */
const Y: Record<string, (s: string) => void> = {
  'rename d/s d/u': (s) => renameSync(join(s, 'd/s'), join(s, 'd/u')),
  'unlink d/s': (s) => unlinkSync(join(s, 'd/s')),
  'rename d f': (s) => renameSync(join(s, 'd'), join(s, 'f')),
  'rm -r d': (s) => rmSync(join(s, 'd'), { recursive: true }),
  'rmdir d/empty': (s) => rmdirSync(join(s, 'd/empty')),
  'chmod d': (s) => chmodSync(join(s, 'd'), 0o700),
  'symlink d/empty/y': (s) => symlinkSync('../a', join(s, 'd/empty/y')),
};
/** Changes of the hard link d/a = d/h: on the client, off line ... */
const XL: Record<string, (c: string) => string[]> = {
  'unlink d/h': (c) => { unlinkSync(join(c, 'd/h')); return []; },
  'append through d/h': (c) => { appendFileSync(join(c, 'd/h'), 'client appended\n'); return ['a before\nclient appended\n']; },
  'chmod d/h': (c) => { chmodSync(join(c, 'd/h'), 0o600); return []; },
  'link d/a d/k': (c) => { linkSync(join(c, 'd/a'), join(c, 'd/k')); return []; },
  'replace d/a': (c) => { writeFileSync(join(c, 'd/a.tmp'), 'client replaced a\n'); renameSync(join(c, 'd/a.tmp'), join(c, 'd/a')); return ['client replaced a\n']; },
};
/** ... and on the server meanwhile. */
const YL: Record<string, (s: string) => void> = {
  'write d/a': (s) => writeFileSync(join(s, 'd/a'), 'server wrote a\n'),
  'unlink d/a': (s) => unlinkSync(join(s, 'd/a')),
  'chmod d/a': (s) => chmodSync(join(s, 'd/a'), 0o640),
  'rename d/h d/m': (s) => renameSync(join(s, 'd/h'), join(s, 'd/m')),
  'link d/h d/z': (s) => linkSync(join(s, 'd/h'), join(s, 'd/z')),
};
const pairs = [
  ...Object.entries(X).flatMap(([xn, x]) => Object.entries(Y).map(([yn, y]) => [xn, x, yn, y] as const)),
  ...Object.entries(XL).flatMap(([xn, x]) => Object.entries(YL).map(([yn, y]) => [xn, x, yn, y] as const)),
];
for (const [xn, x, yn, y] of pairs) {
  {
    test(`client ${xn} / server ${yn}`, { timeout: 120_000 }, async (t) => {
      const farm = await Farm.start(t, {
        clients: 1,
        prepare: (s) => {
          mkdirSync(join(s, 'd/empty'), { recursive: true });
          writeFileSync(join(s, 'd/a'), 'a before\n');
          symlinkSync('a', join(s, 'd/s'));
          linkSync(join(s, 'd/a'), join(s, 'd/h'));
        },
      });
      const s = farm.server;
      const [c] = farm.clients as [string];
      await assertSettled(farm.all);
      await disconnect(farm, c);
      const want = x(c);
      await eventually('the client journals its change', () => journalState(c).lml, (n) => n >= 1);
      const b = journalState(s).lastTid;
      y(s);
      await journaled(s, b);
      reconnect(c);
      await assertSettled(farm.all);
      const trees = (): string => JSON.stringify(farm.all.map((d) => [...treeFiles(d)]));
      for (const w of want) {
        for (const d of farm.all) assert.ok([...treeFiles(d).values()].includes(w), `${d}: client content ${JSON.stringify(w)} kept: ${trees()}`);
      }
      assert.deepEqual(farm.logMessages(c, /resync|does not apply/), [], `no resync; trees ${trees()}`);
    });
  }
}
