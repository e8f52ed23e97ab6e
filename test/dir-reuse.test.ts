// Invariant: a directory that takes the inode number of one removed a moment ago is watched like any new
// directory: everything made in it is journaled, at once and later. ext4 hands a freed inode number to the
// next directory made, so `rm -rf build && mkdir build`, `rmdir a; mkdir b`, or a peer's rmdir followed by
// a peer's mkdir give the new directory the old one's number. Watches are keyed by inode number, and a
// watch of a removed directory stays in the table (inotify drops it, fs.watch says nothing but one event
// named after the directory), so the new directory passed for watched and nothing made in it was journaled
// until the next start.
//
// Tests 1 and 3 fail without the fix (presto/dir-watcher.ts takes a watch whose directory may have gone
// for suspect, and the reconciler watches that directory again): "the journal names what is on disk" with
// d1/f, then e1/f, missing from the journal. Test 4 fails without the watcher remembering the first name
// of a directory's kernel watch (c2/f missing). Test 2 passed before (capture takes `rmdir a; mkdir b` with
// the same inode number for a rename) and stays as a guard of that case.
// Chaos seed 9201: the server's `mv delta/b.txt delta/d.md`, in a delta its apply path had made again just
// after a client's rename of the old delta, was journaled nowhere and the nodes never converged.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, rmSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { formatDigest } from '#core/digest.js';
import { NO_VERSION, type Fid, type NodeId } from '#core/ids.js';
import type { RecordDraft } from '#core/record.js';
import { digestOfDisk } from '#presto/scan.js';
import { settle, startNode, withNode } from './helpers.js';

type Node = Awaited<ReturnType<typeof startNode>>;


/** The journal says what the disk holds: names, types, modes and contents (the state digest of each). */
async function journalIsDisk(dir: string, node: Node, what: string): Promise<void> {
  const disk = await digestOfDisk(dir);
  const onDisk = (readdirSync(dir, { recursive: true }) as string[]).filter((n) => n !== '.intermezzo' && !n.startsWith('.intermezzo/')).sort();
  const journaled = [...node.db.allObjects()].map((o) => o.path).sort();
  assert.deepEqual(journaled, onDisk, `${what}: the journal names what is on disk`);
  assert.equal(formatDigest(node.db.digest), formatDigest(disk.digest), `${what}: journal digest equals disk digest`);
}

/**
 * Runs trials until the file system handed a removed directory's inode number to the next one made at least
 * twice (at least 5 trials, at most 30), and returns how often it did. ext4 here does it at once; on another
 * machine a removed directory's watch may keep its inode a moment longer (inotify drops its reference after
 * a grace period), so trials that did not see it pause between the removal and the mkdir (`pause`), 0-120 ms.
 */
async function untilReused(trial: (i: number, pause: () => Promise<void>) => Promise<boolean>): Promise<number> {
  let reused = 0;
  for (let i = 0; i < 30 && (i < 5 || reused < 2); i++) {
    const wait = i - reused < 3 ? 0 : 20 * ((i % 6) + 1);
    if (await trial(i, () => sleep(wait))) reused++;
  }
  return reused;
}

/** A peer's records (a mkdir unless `over` says otherwise) applied through the node's apply path and journaled, as reintegration does. */
function peerApplier(node: Node): (over: Partial<RecordDraft>) => void {
  const peer = 'feedfacefeedface' as NodeId;
  let seq = 0;
  return (over) => {
    const d: RecordDraft = {
      kind: 'mkdir', fid: `${peer}-${(++seq).toString(16)}` as Fid, path: '', newPath: null, target: null, preVersion: NO_VERSION,
      size: null, hash: null, mode: 0o755, uid: 0, gid: 0, mtimeMs: Date.now(), origin: peer, time: Date.now(), ...over,
    };
    node.apply.apply(d, null, (identity) => {
      node.db.commit([{ draft: d, identity }]);
    });
  };
}

test('rm -rf d; mkdir d; echo > d/f: the new d is watched (same inode number, same name)', async (t) => {
  await withNode(t, async (dir, node) => {
    const p = (s: string): string => join(dir, s);
    for (let i = 0; i < 5; i++) {
      mkdirSync(p(`d${i}`));
      writeFileSync(p(`d${i}/old`), 'old\n');
      await settle(node);
      const ino = statSync(p(`d${i}`)).ino;
      // In one go, as a build script does.
      rmSync(p(`d${i}`), { recursive: true });
      mkdirSync(p(`d${i}`));
      writeFileSync(p(`d${i}/f`), `f ${i}\n`);
      const reused = statSync(p(`d${i}`)).ino === ino;
      await settle(node);
      await journalIsDisk(dir, node, `trial ${i} (inode number ${reused ? 'reused' : 'new'}), just after`);
      // And later: the new directory has a live watch.
      writeFileSync(p(`d${i}/g`), `g ${i}\n`);
      await settle(node);
      await journalIsDisk(dir, node, `trial ${i}, a write a moment later`);
    }
  });
});

test('rmdir a; mkdir b: the removal journaled after b was made does not take b\'s watch', async (t) => {
  await withNode(t, async (dir, node) => {
    const p = (s: string): string => join(dir, s);
    for (let i = 0; i < 5; i++) {
      mkdirSync(p(`a${i}`));
      await settle(node);
      rmdirSync(p(`a${i}`));
      mkdirSync(p(`b${i}`)); // takes a's inode number on ext4
      await settle(node);
      await journalIsDisk(dir, node, `trial ${i}, b made`);
      writeFileSync(p(`b${i}/late`), `late ${i}\n`);
      await settle(node);
      await journalIsDisk(dir, node, `trial ${i}, a write in b a moment later`);
    }
  });
});

test('a peer\'s rmdir, then a peer\'s mkdir through the apply path: what is written in the new directory here is journaled', async (t) => {
  await withNode(t, async (dir, node) => {
    const p = (s: string): string => join(dir, s);
    const applied = peerApplier(node);
    const reused = await untilReused(async (i, pause) => {
      applied({ path: `gone${i}` });
      await settle(node);
      const row = node.db.objectByPath(`gone${i}`)!;
      const ino = statSync(p(`gone${i}`)).ino;
      // A peer removes the directory and makes another: the apply path does both, and the new directory
      // takes the removed one's inode number.
      applied({ kind: 'rmdir', fid: row.fid, path: `gone${i}`, preVersion: row.version });
      await pause();
      applied({ path: `e${i}` });
      const same = statSync(p(`e${i}`)).ino === ino;
      await settle(node);
      writeFileSync(p(`e${i}/f`), `written here ${i}\n`);
      await settle(node);
      await journalIsDisk(dir, node, `trial ${i}, a write in the directory the peer made`);
      return same;
    });
    assert.ok(reused > 0, 'the case under test happened: a directory of the apply path took a freed inode number');
  });
});

test('a peer renames a directory, removes it, makes another with its inode number: the new one is watched', async (t) => {
  // Fails without DirWatcher remembering the name the kernel watch was first made for: libuv reports a
  // directory's own removal with the basename of that first path ("a"), not the name it was watched again
  // at after its rename ("b"), so the removal went unseen and c, with b's inode number, passed for watched.
  await withNode(t, async (dir, node) => {
    const p = (s: string): string => join(dir, s);
    const applied = peerApplier(node);
    const reused = await untilReused(async (i, pause) => {
      applied({ path: `a${i}` });
      await settle(node);
      const a = node.db.objectByPath(`a${i}`)!;
      applied({ kind: 'rename', fid: a.fid, path: `a${i}`, newPath: `b${i}`, preVersion: a.version });
      await settle(node);
      const b = node.db.objectByPath(`b${i}`)!;
      const ino = statSync(p(`b${i}`)).ino;
      applied({ kind: 'rmdir', fid: b.fid, path: `b${i}`, preVersion: b.version });
      await pause();
      applied({ path: `c${i}` });
      const same = statSync(p(`c${i}`)).ino === ino;
      await settle(node);
      writeFileSync(p(`c${i}/f`), `f ${i}\n`);
      await settle(node);
      await journalIsDisk(dir, node, `trial ${i}, a write in c`);
      return same;
    });
    assert.ok(reused > 0, 'the case under test happened: c took b\'s inode number');
  });
});
