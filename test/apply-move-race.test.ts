// Invariant: a peer's write of a hard-linked file is not applied at a name a program has just moved the file
// from (capture a moment behind): it waits until the move is journaled, then goes into the file at its new
// name, so every name of the inode shows it and nothing journals the old content over it.
//
// Fails without the apply path's check refusing a write whose name is gone from the disk (ApplyPath#apply): the
// write made a file of its own at the old name, gave its content to the inode's other names in the journal while
// their disk kept the old one, and capture then journaled the moved name as a new link of that inode (with the
// journal's new content) and a write of it with the old content: on the server that write went to every name
// of the inode, and the peer's write was lost on every node (chaos s59 seed 9273, c1: `mv alpha/h.conflict-…
// delta/d.md` as the server's append to it came).
import assert from 'node:assert/strict';
import { linkSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { formatDigest } from '#core/digest.js';
import { IntersyncError } from '#core/errors.js';
import type { NodeId } from '#core/ids.js';
import type { RecordDraft } from '#core/record.js';
import { sha256Hex } from '#core/sha256.js';
import { lstatOrNull } from '#fsio/disk.js';
import { digestOfDisk } from '#presto/scan.js';
import { settle, withNode } from './helpers.js';

test('mv a d just before a peer\'s write of a (linked as b) is applied: refused until the move is journaled, then d and b hold it', async (t) => {
  await withNode(t, async (root, node) => {
    const p = (s: string): string => join(root, s);
    writeFileSync(p('a'), 'old\n');
    await settle(node);
    linkSync(p('a'), p('b'));
    await settle(node);
    const row = node.db.objectByPath('a')!;
    const before = node.db.lastTid;
    const content = Buffer.from('written by the peer\n');
    const peer = 'feedfacefeedface' as NodeId;
    const d: RecordDraft = {
      kind: 'write', fid: row.fid, path: 'a', newPath: null, target: null, preVersion: row.version, size: content.length,
      hash: sha256Hex(content), mode: 0o644, uid: 0, gid: 0, mtimeMs: Date.now(), origin: peer, time: Date.now(),
    };
    // The program's move comes just before the apply, capture a moment behind (it has not journaled it yet).
    renameSync(p('a'), p('d'));
    assert.throws(() => node.apply.apply(d, node.apply.stageBytes(d, content), (identity) => node.db.commit([{ draft: d, identity }])),
      (e: unknown) => e instanceof IntersyncError && e.code === 'CONFLICT', 'refused for the moment: the name it writes is gone here');
    assert.equal(lstatOrNull(p('a')), null, 'nothing made at the name the program left');
    await settle(node);
    assert.equal(node.db.objectByFid(row.fid)?.path, 'd', 'capture journaled the move');
    // Again, as the client does once capture has journaled the move (the conflict step places it by identity).
    const again = { ...d, path: 'd', preVersion: node.db.objectByFid(row.fid)!.version };
    node.apply.apply(again, node.apply.stageBytes(again, content), (identity) => node.db.commit([{ draft: again, identity }]));
    await settle(node);
    for (const n of ['b', 'd']) assert.equal(readFileSync(p(n), 'utf8'), 'written by the peer\n', `${n} holds the peer's write`);
    assert.equal(formatDigest(node.db.digest), formatDigest((await digestOfDisk(root)).digest), 'the journal says what the disk holds');
    // What a client would apply: no record that puts the old content back into the inode.
    const oldHash = sha256Hex(Buffer.from('old\n'));
    const records = node.db.readKml(before, 100).filter((r) => r.origin !== peer);
    const shown = JSON.stringify(records.map((x) => [x.kind, x.path, x.newPath, x.target]));
    for (const r of records) {
      assert.ok(!((r.kind === 'write' || r.kind === 'link') && r.hash === oldHash), `no record of the old content after the peer's write: ${shown}`);
    }
  });
});
