// Invariant: hard links made here whose name they link to the server does not have (removed here, or refused
// there) end as one file on every node, a conflict copy among them or not: the first name goes as a file of
// its own, the others link to it. Checked by inode numbers on every node (the state digest covers no link
// groups), each node's `digest` equal to its `digest --scan`, and no resync.
//
// Test 1 fails without Reintegrator#withContent counting a name that the batch makes ahead of a link as one
// the server knows: off line, a client linked beta/d.md to epsilon/a.txt, epsilon/g.txt to beta/d.md, moved
// epsilon/g.txt to epsilon/sub/b.txt and removed epsilon/a.txt, while the server made a file of its own at
// beta/d.md. On reconnection the conflict step kept the local beta/d.md beside (a move of the name: it stays
// a name of the inode), and both links, their target gone here and no other name of the inode accepted yet,
// went as files of their own: the server held the conflict copy and epsilon/sub/b.txt apart, the client as one
// inode (chaos seed 9202, c1: "beta/d.conflict-2cd309bf0d524abf-ed.md: hard-link group differs"). The conflict
// copy is not what splits them: without the server's beta/d.md the two names went apart just the same.
//
// Test 2 fails without Reintegrator#exchange linking a link the server refused twice for its target to another
// name of the inode that the server has: off line, a client wrote beta/f.json, linked delta/g.txt and delta/h.txt
// to it and replaced beta/f.json, while the server removed it. The server refused both links (their target is
// gone there) and the client sent each as a file of its own: one inode here, two files on the server (chaos
// seed 9205, c1: beta/d.conflict-9f34c153d78ef3fa-5f.md and gamma.conflict-9f34c153d78ef3fa-1b/c, links both
// refused for beta/deep/d.md, "hard-link group differs").
import assert from 'node:assert/strict';
import { chmodSync, linkSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cli, journalState } from '../helpers.js';
import { Farm, assertSettled, conflictCopies, disconnect, eventually, journaled, readOrNull, reconnect } from '../farm.js';

/** The node's hard-link groups by inode number: the sorted names of every file with more than one name, sorted. */
function linkGroups(dir: string): string[] {
  const byIno = new Map<number, string[]>();
  const walk = (rel: string): void => {
    for (const n of readdirSync(join(dir, rel))) {
      const p = rel === '' ? n : `${rel}/${n}`;
      if (p === '.intermezzo') continue;
      const st = statSync(join(dir, p), { throwIfNoEntry: false });
      if (st === undefined) continue;
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) byIno.set(st.ino, [...(byIno.get(st.ino) ?? []), p]);
    }
  };
  walk('');
  return [...byIno.values()].filter((names) => names.length > 1).map((names) => names.sort().join(' ')).sort();
}

/** Every node: the digest as journaled equals the digest of its disk (`intersync digest` and `digest --scan`). */
function assertDigestIsDisk(farm: Farm): void {
  for (const d of farm.all) {
    const journal = cli(['digest', d]);
    const disk = cli(['digest', d, '--scan']);
    assert.equal(journal.code, 0, journal.stderr);
    assert.equal(disk.code, 0, disk.stderr);
    assert.equal(journal.stdout, disk.stdout, `${d}: digest as journaled equals digest --scan`);
  }
}

async function onServer(s: string, change: () => void): Promise<void> {
  const before = journalState(s).lastTid;
  change();
  await journaled(s, before);
}

test('off line: link two names to a file and remove it while the server takes one of the names; the conflict copy and the other name stay one file everywhere, no resync', { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'beta'));
      mkdirSync(join(s, 'epsilon', 'sub'), { recursive: true });
      writeFileSync(join(s, 'epsilon', 'a.txt'), 'made on the server\n');
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await disconnect(farm, c);
  const step = async (what: string, change: () => void): Promise<void> => {
    const n = journalState(c).lml;
    change();
    await eventually(`the client journals ${what}`, () => journalState(c).lml, (m) => m > n);
  };
  await step('the link beta/d.md', () => linkSync(join(c, 'epsilon', 'a.txt'), join(c, 'beta', 'd.md')));
  await step('the link epsilon/g.txt', () => linkSync(join(c, 'beta', 'd.md'), join(c, 'epsilon', 'g.txt')));
  await step('the move to epsilon/sub/b.txt', () => renameSync(join(c, 'epsilon', 'g.txt'), join(c, 'epsilon', 'sub', 'b.txt')));
  await step('the removal of epsilon/a.txt', () => unlinkSync(join(c, 'epsilon', 'a.txt')));
  // Meanwhile the server makes a file of its own at beta/d.md: the local beta/d.md goes beside on reconnection.
  await onServer(s, () => writeFileSync(join(s, 'beta', 'd.md'), 'made on the server at the same name\n'));
  reconnect(c);
  await assertSettled(farm.all);
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs/i), [], 'no resync');
  const kept = conflictCopies(c);
  assert.equal(kept.length, 1, `one conflict copy (${kept.join(', ')})`);
  const copy = kept[0]!;
  assert.match(copy, /^beta\/d\.conflict-.*\.md$/);
  for (const d of farm.all) {
    assert.deepEqual(conflictCopies(d), [copy], `${d}: the conflict copy`);
    assert.equal(readFileSync(join(d, 'beta', 'd.md'), 'utf8'), 'made on the server at the same name\n', `${d}: beta/d.md is the server's file`);
    assert.equal(statSync(join(d, 'beta', 'd.md')).nlink, 1, `${d}: beta/d.md a file of its own`);
    assert.equal(readFileSync(join(d, copy), 'utf8'), 'made on the server\n', `${d}: the conflict copy holds the linked file`);
    assert.equal(readOrNull(join(d, 'epsilon', 'a.txt')), null, `${d}: epsilon/a.txt removed`);
    assert.deepEqual(linkGroups(d), [`${copy} epsilon/sub/b.txt`], `${d}: the conflict copy and epsilon/sub/b.txt are one file`);
  }
  assertDigestIsDisk(farm);
  // One file everywhere: a write through one name is the other's too.
  writeFileSync(join(c, 'epsilon', 'sub', 'b.txt'), 'written through b.txt\n');
  await assertSettled(farm.all);
  for (const d of farm.all) assert.equal(readFileSync(join(d, copy), 'utf8'), 'written through b.txt\n', `${d}: the conflict copy has the write`);
  assertDigestIsDisk(farm);
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs/i), [], 'no resync');
});

test('off line: link two names to a file, replace it, while the server removes it; the links the server refuses stay one file everywhere, no resync', { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'beta'));
      mkdirSync(join(s, 'delta'));
      writeFileSync(join(s, 'beta', 'f.json'), 'made on the server\n', { mode: 0o644 });
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await disconnect(farm, c);
  writeFileSync(join(c, 'beta', 'f.json'), 'written off line\n');
  await eventually('the client journals the write', () => journalState(c).lml, (n) => n >= 1);
  linkSync(join(c, 'beta', 'f.json'), join(c, 'delta', 'g.txt'));
  await eventually('the client journals the link g', () => journalState(c).lml, (n) => n >= 2);
  linkSync(join(c, 'beta', 'f.json'), join(c, 'delta', 'h.txt'));
  await eventually('the client journals the link h', () => journalState(c).lml, (n) => n >= 3);
  // Replaced as editors do: a temp file renamed over the name. g and h keep the old inode.
  writeFileSync(join(c, 'beta', '.f.json.tmp'), 'replaced off line\n');
  renameSync(join(c, 'beta', '.f.json.tmp'), join(c, 'beta', 'f.json'));
  await eventually('the client journals the replacement', () => journalState(c).lml, (n) => n >= 6);
  // Meanwhile the server changes f and removes it: the links' target is gone there.
  await onServer(s, () => writeFileSync(join(s, 'beta', 'f.json'), 'written on the server\n'));
  await onServer(s, () => chmodSync(join(s, 'beta', 'f.json'), 0o664));
  await onServer(s, () => writeFileSync(join(s, 'beta', 'f.json'), 'written again on the server\n'));
  await onServer(s, () => unlinkSync(join(s, 'beta', 'f.json')));
  reconnect(c);
  await assertSettled(farm.all);
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs/i), [], 'no resync');
  const content = readFileSync(join(c, 'delta', 'g.txt'), 'utf8');
  for (const d of farm.all) {
    assert.deepEqual(linkGroups(d), ['delta/g.txt delta/h.txt'], `${d}: delta/g.txt and delta/h.txt are one file`);
    assert.equal(readFileSync(join(d, 'delta', 'h.txt'), 'utf8'), content, `${d}: delta/h.txt holds what delta/g.txt holds on the client`);
    assert.equal(readFileSync(join(d, 'beta', 'f.json'), 'utf8'), 'replaced off line\n', `${d}: the new beta/f.json`);
  }
  assertDigestIsDisk(farm);
  // The links' name is another file than their target here (f was replaced): the first went as a file of its own,
  // the second as a link to it, without a refusal (Reintegrator#apartHere; before it, each was refused once for
  // its target, then sent so: the same end).
  assert.equal(farm.logMessages(c, /a hard link whose .*: sent as a file of its own/).length, 1, 'one link sent as a file of its own');
  assert.equal(farm.logMessages(c, /a hard link whose .*: sent as a link to a name of the inode it has/).length, 1, 'the other linked to it');
});
