// Invariant: a client that writes through one name of a hard-linked file while away and then removes that name
// (alone, or with the directory that holds it) keeps its write when the server removed the other name meanwhile:
// the write lives on in the inode under the other name here, update beats delete, and it comes back on every
// node.
//
// From chaos s63 seed 9229, c2: truncate epsilon/b.txt (linked as gamma/d.md), then `rm -r epsilon`; the server
// had removed d.md. Nothing pending named d.md, so the server's removal applied here without a conflict, and the
// truncate, its object and every name gone, was dropped: an acknowledged write on no node.
//
// The `rm -r` variants fail without the reconciler journaling a write of the inode's surviving name for each
// written file a directory's removal takes (Reconciler#removal, #carrierOf): the truncated content was on no node.
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, rmSync, truncateSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Farm, assertSettled, changeAway, comeBack, journaled, serverLinked, treeFiles } from '../farm.js';
import { journalState } from '../helpers.js';

for (const how of ['disconnected', 'stopped'] as const) {
  for (const [withDir, moved, taken] of [[false, false, false], [true, false, false], [false, true, false], [true, true, true]] as const) {
    const name = withDir ? 'k/a' : 'a';
    const steps = `truncate ${name}, ${withDir ? 'rm -r k' : 'remove a'}${moved ? ', move d (holding h) to e' : ''}`;
    const server = `${taken ? 'makes a directory e, ' : ''}${moved ? 'moves d to f and removes f/h' : 'removes h'}`;
    test(`${how}: ${steps}; the server ${server}: the truncated content is on every node`, { timeout: 120_000 }, async (t) => {
      const farm = await Farm.start(t, { clients: 1, prepare: (s) => { mkdirSync(join(s, 'd')); mkdirSync(join(s, 'k')); } });
      const [c] = farm.clients as [string];
      const s = farm.server;
      await serverLinked(farm, name, 'd/h', 'made on the server, forty bytes or so\n');
      await changeAway(farm, c, how, [
        ['the truncate', () => truncateSync(join(c, name), 9)],
        ['the removal', () => (withDir ? rmSync(join(c, 'k'), { recursive: true }) : unlinkSync(join(c, 'a')))],
        ...(moved ? [['the move', () => renameSync(join(c, 'd'), join(c, 'e'))] as const] : []),
      ]);
      let before = journalState(s).lastTid;
      if (taken) {
        mkdirSync(join(s, 'e'));
        await journaled(s, before);
        before = journalState(s).lastTid;
      }
      if (moved) {
        renameSync(join(s, 'd'), join(s, 'f'));
        await journaled(s, before);
        before = journalState(s).lastTid;
      }
      unlinkSync(join(s, moved ? 'f/h' : 'd/h'));
      await journaled(s, before);
      await comeBack(farm, c, how);
      await assertSettled(farm.all);
      for (const dir of farm.all) {
        const files = [...treeFiles(dir)];
        assert.ok(files.some(([, v]) => v === 'made on t'), `the truncated content on ${dir}: ${JSON.stringify(files)}`);
      }
      assert.deepEqual([...treeFiles(c)].sort(), [...treeFiles(s)].sort(), 'the client holds what the server holds');
      assert.deepEqual(farm.logMessages(c, /resyncing|does not apply/i), [], 'no resync');
    });
  }
}
