// Invariant: off line, a client writes a hard-linked file through one name (a), moves its other name (g to b),
// then chmods it through a, while the server removes a: the client's write and mode reach every node, and no
// node resyncs.
//
// From chaos s75 seed 9254, c2: the server removed beta/a.txt (then made a new file there); c2 had written
// through it, moved the inode's other name alpha/c.conflict-… to gamma/b.txt, and chmodded through beta/a.txt.
// The conflict step kept the write beside the removed name, but the moved name still held it (one inode here)
// with nothing pending to say so: "state differs … gamma/b.txt: other content, other mode", a resync.
//
// Fails without the conflict step's heirNamesThen (the changes go through the moved name, each at its name of the
// time, before and after the move): the client resynced.
import assert from 'node:assert/strict';
import { appendFileSync, chmodSync, linkSync, lstatSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Farm, assertSettled, disconnect, journaled, journaledHere, reconnect, treeFiles } from '../farm.js';
import { journalState } from '../helpers.js';

test('off line: append through a, mv g b, chmod 600 a (one inode); the server removes a: the write and the mode everywhere, no resync', { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      writeFileSync(join(s, 'g'), 'made on the server\n', { mode: 0o644 });
      linkSync(join(s, 'g'), join(s, 'a'));
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await disconnect(farm, c);
  await journaledHere(c, 'the append', () => appendFileSync(join(c, 'a'), 'appended on the client through a\n'));
  await journaledHere(c, 'the move', () => renameSync(join(c, 'g'), join(c, 'b')));
  await journaledHere(c, 'the chmod', () => chmodSync(join(c, 'a'), 0o600));
  const before = journalState(s).lastTid;
  rmSync(join(s, 'a'));
  await journaled(s, before);
  reconnect(c);
  await assertSettled(farm.all, 40_000);
  const written = 'made on the server\nappended on the client through a\n';
  for (const dir of farm.all) {
    const files = [...treeFiles(dir)];
    assert.ok(files.some(([, v]) => v === written), `the client's append on ${dir}: ${JSON.stringify(files)}`);
  }
  assert.deepEqual([...treeFiles(c)].sort(), [...treeFiles(s)].sort(), 'the client holds what the server holds');
  assert.equal(lstatSync(join(c, 'b')).mode & 0o777, lstatSync(join(s, 'b')).mode & 0o777, 'b has one mode everywhere');
  assert.equal(readFileSync(join(c, 'b'), 'utf8'), readFileSync(join(s, 'b'), 'utf8'), 'b has one content everywhere');
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs/i), [], 'no refusal, no resync');
});
