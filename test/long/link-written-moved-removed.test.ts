// Invariant: a client that writes through one name of a hard-linked file while away, and moves that name, keeps
// its write and the link when the server removed the name meanwhile (by rm, or by renaming another file over
// it): the inode lives on under its other name and the moved name, with the client's content, on every node,
// and the two names stay one inode.
//
// From chaos s61 seed 9251: the server replaced a name by rename-over (an explicit removal of the name's object)
// that a client had written and moved while away; the hard-link groups differed between the client and the
// server at the end, and the client resynced.
//
// Fails without the conflict step's toHeir taking names with pending moves (FilesetDb#movesToLink): the write was
// kept beside twice as conflict copies, h kept the old content, and the moved name c was gone on every node.
import assert from 'node:assert/strict';
import { appendFileSync, lstatSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Farm, assertSettled, changeAway, comeBack, journaled, serverLinked, treeFiles } from '../farm.js';
import { journalState } from '../helpers.js';

for (const how of ['disconnected', 'stopped'] as const) {
  for (const [replace, moveFirst, write] of [[false, false, true], [true, false, true], [true, true, true], [false, true, false]] as const) {
    const steps = !write ? 'move a to c' : moveFirst ? 'move a to c, append through c' : 'append through a, move a to c';
    test(`${how}: ${steps}; the server ${replace ? 'renames another file over a' : 'removes a'}: h and c hold ${write ? 'the append' : 'the content'}, one inode`, { timeout: 120_000 }, async (t) => {
      const farm = await Farm.start(t, { clients: 1 });
      const [c] = farm.clients as [string];
      const s = farm.server;
      await serverLinked(farm, 'a', 'h', 'made on the server\n');
      const append = ['the append', () => appendFileSync(join(c, moveFirst ? 'c' : 'a'), 'appended on the client\n')] as const;
      const move = ['the move', () => renameSync(join(c, 'a'), join(c, 'c'))] as const;
      await changeAway(farm, c, how, !write ? [move] : moveFirst ? [move, append] : [append, move]);
      const before = journalState(s).lastTid;
      if (replace) {
        writeFileSync(join(s, 't'), 'the server\'s new a\n');
        renameSync(join(s, 't'), join(s, 'a'));
      } else {
        unlinkSync(join(s, 'a'));
      }
      await journaled(s, before);
      await comeBack(farm, c, how);
      await assertSettled(farm.all);
      const want = write ? 'made on the server\nappended on the client\n' : 'made on the server\n';
      for (const dir of farm.all) {
        assert.equal(readFileSync(join(dir, 'h'), 'utf8'), want, `h on ${dir}: ${JSON.stringify([...treeFiles(dir)])}`);
        assert.equal(readFileSync(join(dir, 'c'), 'utf8'), want, `c on ${dir}`);
        assert.equal(lstatSync(join(dir, 'c')).ino, lstatSync(join(dir, 'h')).ino, `c and h are one inode on ${dir}`);
        if (replace) assert.equal(readFileSync(join(dir, 'a'), 'utf8'), 'the server\'s new a\n', `a on ${dir}`);
        assert.deepEqual([...treeFiles(dir)].map(([n]) => n).sort(), replace ? ['a', 'c', 'h'] : ['c', 'h'], `no conflict copy on ${dir}`);
      }
      assert.deepEqual(farm.logMessages(c, /resyncing|does not apply/i), [], 'no resync');
    });
  }
}
