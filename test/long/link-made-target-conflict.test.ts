// Invariant: a hard link a client made while away, to a file that the client and the server both wrote
// meanwhile (the server twice, so that its first write's content is no longer there when the client applies
// it), never carries the client's write over the server's: every write survives on every node, the link's
// names are grouped alike on both, no resync.
//
// A guard written while tracing chaos s63 seed 9222 (c1: a link made off line to gamma/c, written through; the
// write passed the server's check as made against the link's own version and wrote over another client's write
// of that inode). It passes on the code it was written against: here the conflict step keeps the client's
// writes beside and the link joins the server's content. In the run, the conflict step had placed the server's
// content at gamma/c as a file of its own, and the link's name kept the old inode; the same state after a
// resync is reproduced, and fixed, in test/long/link-apart-after-resync.test.ts.
import assert from 'node:assert/strict';
import { appendFileSync, linkSync, lstatSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Farm, assertSettled, changeAway, comeBack, journaled, treeFiles } from '../farm.js';
import { journalState } from '../helpers.js';

for (const how of ['disconnected', 'stopped'] as const) {
  test(`${how}: link a to c, append through a, write c; the server writes c: both writes are kept everywhere`, { timeout: 120_000 }, async (t) => {
    const farm = await Farm.start(t, { clients: 1, prepare: (s) => writeFileSync(join(s, 'c'), 'made on the server\n') });
    const [c] = farm.clients as [string];
    const s = farm.server;
    await assertSettled(farm.all);
    await changeAway(farm, c, how, [
      ['the link', () => linkSync(join(c, 'c'), join(c, 'a'))],
      ['the append', () => appendFileSync(join(c, 'a'), 'appended on the client through a\n')],
      ['the write', () => appendFileSync(join(c, 'c'), 'appended on the client through c\n')],
    ]);
    const before = journalState(s).lastTid;
    writeFileSync(join(s, 'c'), 'first written on the server\n');
    await journaled(s, before);
    const mid = journalState(s).lastTid;
    writeFileSync(join(s, 'c'), 'written on the server\n');
    await journaled(s, mid);
    await comeBack(farm, c, how);
    await assertSettled(farm.all);
    const client = 'made on the server\nappended on the client through a\nappended on the client through c\n';
    for (const dir of farm.all) {
      const files = [...treeFiles(dir)];
      assert.ok(files.some(([, v]) => v === 'written on the server\n'), `the server's write on ${dir}: ${JSON.stringify(files)}`);
      assert.ok(files.some(([, v]) => v === client), `the client's writes on ${dir}: ${JSON.stringify(files)}`);
    }
    assert.deepEqual([...treeFiles(c)].sort(), [...treeFiles(s)].sort(), 'the client holds what the server holds');
    assert.equal(lstatSync(join(c, 'a')).ino === lstatSync(join(c, 'c')).ino, lstatSync(join(s, 'a')).ino === lstatSync(join(s, 'c')).ino, 'a and c grouped alike');
    assert.deepEqual(farm.logMessages(c, /resyncing|does not apply/i), [], 'no resync');
  });
}
