// Invariant: a symlink made just after another one was removed is journaled with its own target, even when it
// takes the removed one's inode number (ext4 hands a freed number to the next inode made). A symlink's target
// never changes in place: one with another target is another object.
//
// Fails without the target check in Reconciler#renameSource: `rm epsilon/e; ln -s ../alpha delta/f.json` in one
// batch was journaled as a rename of epsilon/e to delta/f.json with e's old target; the journal named a target
// the disk did not hold, nothing raised another event, and the nodes never converged (chaos s58 seed 9278, the
// server's own directory).
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, readlinkSync, symlinkSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { formatDigest } from '#core/digest.js';
import { digestOfDisk } from '#presto/scan.js';
import { settle, withNode } from './helpers.js';

test('rm a symlink, make another with another target at once (its inode number back): journaled with its own target', async (t) => {
  await withNode(t, async (root, node) => {
    const p = (s: string): string => join(root, s);
    mkdirSync(p('a'));
    mkdirSync(p('b'));
    let reused = 0;
    for (let i = 0; i < 30 && (i < 5 || reused < 2); i++) {
      symlinkSync(`../old-${i}`, p(`a/e${i}`));
      await settle(node);
      const ino = lstatSync(p(`a/e${i}`)).ino;
      unlinkSync(p(`a/e${i}`));
      symlinkSync(`../new-${i}`, p(`b/f${i}`));
      if (lstatSync(p(`b/f${i}`)).ino === ino) reused++;
      await settle(node);
      const row = node.db.objectByPath(`b/f${i}`);
      assert.equal(row?.target, readlinkSync(p(`b/f${i}`)), `trial ${i}: b/f${i} journaled with the target it has on disk`);
      assert.equal(node.db.objectByPath(`a/e${i}`), undefined, `trial ${i}: a/e${i} removed from the journal`);
      assert.equal(formatDigest(node.db.digest), formatDigest((await digestOfDisk(root)).digest), `trial ${i}: journal digest equals disk digest`);
    }
    assert.ok(reused >= 2, `the case happened: a new symlink took the removed one's inode number (${reused} times)`);
  });
});
