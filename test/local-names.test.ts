// Invariant: a server record about a name below a directory this client renamed (and the server has not
// accepted yet) is applied at the directory's local name, never refused: replaying the pending renames
// over a server path, oldest first, gives its path here; a name a renamed object left stays as it is.
// Fails without the fix (reint/local-names.ts): the server's write to d/f met "the object is at x/f here"
// three times, then a full resync.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Fid, NodeId, Tid } from '#core/ids.js';
import type { KmlRecord, LmlRecord } from '#core/record.js';
import { localNamesOf, localPath, localTarget, serverRenames } from '#reint/local-names.js';

function rename(seq: number, path: string, newPath: string, fid = `n-${seq}`): LmlRecord {
  return {
    kind: 'rename', fid: fid as Fid, path, newPath, target: null, preVersion: 1n as Tid, size: null, hash: null,
    mode: 0o755, uid: 0, gid: 0, mtimeMs: 0, origin: 'n' as NodeId, time: 0, seq: BigInt(seq),
  };
}

test('localPath replays pending renames over a server path', () => {
  const cases: Array<[string, LmlRecord[], string]> = [
    ['d/f', [], 'd/f'],
    ['d/f', [rename(1, 'd', 'x')], 'x/f'],
    ['d/sub/f', [rename(1, 'd', 'x'), rename(2, 'x/sub', 'y')], 'y/f'],
    ['d', [rename(1, 'd', 'x')], 'd'], // the name itself: another object may hold it now
    ['dd/f', [rename(1, 'd', 'x')], 'dd/f'], // a prefix of the name is not a parent
    ['a/b', [rename(1, 'a', 'b'), rename(2, 'c', 'a')], 'b/b'], // a later rename onto the old name does not apply twice
  ];
  for (const [p, renames, want] of cases) assert.equal(localPath(p, renames), want, `${p} with ${renames.map((r) => `${r.path}->${r.newPath}`).join(', ')}`);
});

test('localNamesOf maps path, new path and a hard link target; returns the same record when nothing moves', () => {
  const base: KmlRecord = {
    kind: 'link', fid: 's-1' as Fid, path: 'd/g', newPath: null, target: 'd/f', preVersion: 0n as Tid, size: 3, hash: 'h',
    mode: 0o644, uid: 0, gid: 0, mtimeMs: 0, origin: 's' as NodeId, time: 0, tid: 9n as Tid, postVersion: 9n as Tid, digest: '', originSeq: null,
  };
  const got = localNamesOf(base, [rename(1, 'd', 'x')]);
  assert.deepEqual([got.path, got.target], ['x/g', 'x/f']);
  const mv = localNamesOf({ ...base, kind: 'rename', path: 'd/a', newPath: 'd/b', target: null }, [rename(1, 'd', 'x')]);
  assert.deepEqual([mv.path, mv.newPath], ['x/a', 'x/b']);
  assert.equal(localNamesOf(base, [rename(1, 'e', 'x')]), base);
});

test('serverRenames marks the renames of an object made here: a server path below its old name is not in it', () => {
  // Chaos seed 9212 (test/long/removed-dir-taken.test.ts): rmdir d, mkdir d, mv d e here; the server's d/x is in the
  // server's d (removed here), not in the new directory now at e.
  const made: LmlRecord = { ...rename(2, 'd', 'd', 'n-new'), kind: 'mkdir', newPath: null };
  const lml = [rename(1, 'a', 'b', 'n-old'), made, rename(3, 'd', 'e', 'n-new')];
  const db = { pendingRenames: () => lml.filter((r) => r.kind === 'rename'), localRecordsOf: (fid: Fid) => lml.filter((r) => r.fid === fid) };
  const renames = serverRenames(db);
  assert.deepEqual(renames.map((r) => [String(r.seq), r.made === undefined ? null : String(r.made)]), [['1', null], ['3', '2']], 'the new directory\'s rename is marked with its mkdir');
  assert.equal(localPath('d/x', renames), 'd/x');
  assert.equal(localPath('a/x', renames), 'b/x');
  // Once its mkdir is accepted (not pending), the server knows the object at its old name: its rename carries.
  const accepted = { pendingRenames: () => [lml[2]!], localRecordsOf: (fid: Fid) => (fid === 'n-new' ? [lml[2]!] : []) };
  assert.equal(localPath('d/x', serverRenames(accepted)), 'e/x');
});

test('the rename of an object made here moves what an earlier pending rename moved into it', () => {
  // Chaos s31 seed 9224 (test/long/moved-into-new-dir.test.ts): mkdir n, mv a n/sub, mv n m here: the server's
  // a/e is at m/sub/e, not at n/sub/e (nothing is at n any more). Its target too, and so a server path moved
  // into a directory below the new one, and one moved into it before it was made is not.
  const lml: LmlRecord[] = [
    { ...rename(1, 'n', 'n', 'n-new'), kind: 'mkdir', newPath: null },
    rename(2, 'a', 'n/sub', 'n-a'),
    rename(3, 'b', 'n/sub/deep', 'n-b'),
    rename(4, 'n', 'm', 'n-new'),
  ];
  const db = { pendingRenames: () => lml.filter((r) => r.kind === 'rename'), localRecordsOf: (fid: Fid) => lml.filter((r) => r.fid === fid) };
  const renames = serverRenames(db);
  assert.equal(localPath('a/e', renames), 'm/sub/e');
  assert.equal(localTarget('a/e', renames), 'm/sub/e');
  assert.equal(localPath('b/x', renames), 'm/sub/deep/x');
  assert.equal(localPath('n/x', renames), 'n/x', 'the server\'s n (another object) stays');
  assert.equal(localTarget('n', renames), 'n');
  const before: LmlRecord[] = [rename(1, 'a', 'n', 'n-a'), rename(2, 'n', 'o', 'n-a'), { ...rename(3, 'n', 'n', 'n-new'), kind: 'mkdir', newPath: null }, rename(4, 'n', 'm', 'n-new')];
  const db2 = { pendingRenames: () => before.filter((r) => r.kind === 'rename'), localRecordsOf: (fid: Fid) => before.filter((r) => r.fid === fid) };
  assert.equal(localPath('a/e', serverRenames(db2)), 'o/e', 'moved into the name before the new object took it: not in it');
});

test('the rename of an object an earlier rename brought to its name moves only what came with it, not the server\'s object at that name', () => {
  // Chaos s76 seed 9259 (test/long/moved-over-then-on.test.ts): mv a d/sub over the empty d/sub, then mv d/sub
  // d/deep here; the server's d/sub/g is in the server's d/sub (replaced here), not in a, now at d/deep.
  // Fails without the check of `brought` in follow: d/sub/g was taken to d/deep/g.
  const renames = [rename(2, 'a', 'd/sub', 'n-a'), rename(3, 'd/sub', 'd/deep', 'n-a')];
  assert.equal(localPath('d/sub/g', renames), 'd/sub/g', 'the server\'s entry stays in the server\'s d/sub');
  assert.equal(localPath('a/x', renames), 'd/deep/x', 'what was in a is at d/deep');
  assert.equal(localTarget('a', renames), 'd/deep', 'a itself is at d/deep');
  assert.equal(localTarget('d/sub', renames), 'd/sub', 'the server\'s d/sub is not a');
  // Another object's rename of that name still moves what is below it (not brought there by a rename of its own).
  assert.equal(localPath('d/sub/g', [rename(2, 'a', 'b', 'n-a'), rename(3, 'd/sub', 'd/deep', 'n-s')]), 'd/deep/g');
});
