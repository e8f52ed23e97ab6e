// Invariant: objects that trade places (a cycle of renames, a directory moved into the one made at its old
// name, two files swapped), while a client's daemon is stopped or running, are journaled in an order that can
// be applied: the journal matches the disk on the client, every node ends with the same tree, and each object
// is moved whole (renames, no removal).
//
// From chaos s67 seed 9242: after `mv beta delta/sub; mkdir beta; mv epsilon/deep beta/sub; mv delta/sub
// epsilon/deep` with the daemon stopped, the start-up scan journaled each move into the wrong parent (the
// journal held epsilon/deep/sub/sub, the disk did not) and the fileset never converged. Fails without
// Reconciler's parent-first rule (a name waits for a parent being worked out) and #stepAside: the swap never
// settles, and the other two journal a removal and a new object rather than the moves; running, the directory
// cases do so too without #inNewDirs (the moved directory's new place is in a directory not listed yet).
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Farm, assertSettled, journaled, serverLinked, treeFiles } from '../farm.js';
import { cli, journalState } from '../helpers.js';
import type { Away } from '../farm.js';

interface Case {
  readonly name: string;
  readonly dirs: readonly string[];
  readonly files: Readonly<Record<string, string>>;
  readonly steps: (c: string) => void;
  readonly want: Readonly<Record<string, string>>;
}

const cases: Case[] = [
  {
    name: 'two directories trade places through a third',
    dirs: ['beta/sub', 'epsilon/deep', 'delta'],
    files: { 'beta/sub/f.json': '{"f":1}\n', 'epsilon/deep/h': 'h\n' },
    steps: (c) => {
      renameSync(join(c, 'beta'), join(c, 'delta', 'sub'));
      mkdirSync(join(c, 'beta'));
      renameSync(join(c, 'epsilon', 'deep'), join(c, 'beta', 'sub'));
      renameSync(join(c, 'delta', 'sub'), join(c, 'epsilon', 'deep'));
    },
    want: { 'beta/sub/h': 'h\n', 'epsilon/deep/sub/f.json': '{"f":1}\n' },
  },
  {
    name: 'a directory moves into the one made at its old name',
    dirs: ['a/d'],
    files: { 'a/d/f': 'f\n' },
    steps: (c) => {
      renameSync(join(c, 'a'), join(c, 'a2'));
      mkdirSync(join(c, 'a'));
      renameSync(join(c, 'a2'), join(c, 'a', 'x'));
    },
    want: { 'a/x/d/f': 'f\n' },
  },
  {
    name: 'two files swap names',
    dirs: [],
    files: { a: 'first\n', b: 'second\n' },
    steps: (c) => {
      renameSync(join(c, 'a'), join(c, 't'));
      renameSync(join(c, 'b'), join(c, 'a'));
      renameSync(join(c, 't'), join(c, 'b'));
    },
    want: { a: 'second\n', b: 'first\n' },
  },
];

for (const how of ['stopped', 'running'] as const satisfies ReadonlyArray<Away | 'running'>) {
  for (const k of cases) {
    test(`${how}: ${k.name}; every node has the new tree`, { timeout: 120_000 }, async (t) => {
      const farm = await Farm.start(t, { clients: 1 });
      const [c] = farm.clients as [string];
      const s = farm.server;
      const before = journalState(s).lastTid;
      for (const d of k.dirs) mkdirSync(join(s, d), { recursive: true });
      for (const [f, text] of Object.entries(k.files)) writeFileSync(join(s, f), text);
      await journaled(s, before);
      await assertSettled(farm.all);
      if (how === 'stopped') await farm.stopNode(c);
      k.steps(c);
      if (how === 'stopped') await farm.startNode(c);
      await assertSettled(farm.all);
      for (const dir of farm.all) {
        assert.deepEqual(Object.fromEntries([...treeFiles(dir)].sort()), k.want, `tree on ${dir}`);
      }
      assert.deepEqual(farm.logMessages(c, /resyncing|does not apply/i), [], 'no resync');
      // Moved whole: the journal says so with renames (a removal and a new object would be an unlink or rmdir).
      const kinds = journalKinds(s, before);
      assert.ok(!kinds.includes('unlink') && !kinds.includes('rmdir'), `the server journaled moves, not removals: ${kinds.join(' ')}`);
    });
  }
}

/** The kinds of the records `dir` journaled after TID `after`, in order. */
function journalKinds(dir: string, after: bigint): string[] {
  const r = cli(['kml', dir, '--since', after.toString(), '--json']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter((l) => l !== '').map((l) => (JSON.parse(l) as { kind: string }).kind);
}

// A name of a hard-linked file replaced by rename-over: the old inode lives on at its other name, which is no
// move of the replaced name's object. Fails with a step-aside that takes the other name for the object's new
// place (chaos s69 seed 9244): the replaced object went to .intersync-moving-1, on every node but the client.
for (const how of ['stopped', 'running'] as const) {
  test(`${how}: a name of a hard-linked file replaced by rename-over; the other name keeps the old content, nothing steps aside`, { timeout: 120_000 }, async (t) => {
    const farm = await Farm.start(t, { clients: 1 });
    const [c] = farm.clients as [string];
    await serverLinked(farm, 'a', 'h', 'the old file\n');
    if (how === 'stopped') await farm.stopNode(c);
    writeFileSync(join(c, 't'), 'the new a\n');
    renameSync(join(c, 't'), join(c, 'a'));
    if (how === 'stopped') await farm.startNode(c);
    await assertSettled(farm.all);
    for (const dir of farm.all) {
      assert.deepEqual(Object.fromEntries([...treeFiles(dir)].sort()), { a: 'the new a\n', h: 'the old file\n' }, `tree on ${dir}`);
      assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith('.intersync-moving')), [], `no name stepped aside on ${dir}`);
      assert.notEqual(lstatSync(join(dir, 'a')).ino, lstatSync(join(dir, 'h')).ino, `a and h are two inodes on ${dir}`);
    }
    assert.deepEqual(farm.logMessages(c, /resyncing|does not apply/i), [], 'no resync');
  });
}
