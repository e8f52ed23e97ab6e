// Invariant: a change made through one name of a hard-linked file (the name joined to another inode, moved or
// removed; by the apply path, the link steps or the user) leaves the inode's other names journaled as they are
// on disk, and a server change that names them (its `links`) applies at once: never refused as "a name the
// server links to this file was written here since it was journaled" until the client resyncs. The move or
// removal of a name changes the inode's change time under the other names, and inotify says nothing of them.
//
// Chaos run s21 (7 of its 29 resyncs): joining one of two names the server links to a file (apply/link-align.ts
// joinLinks) left the other looking written here (seeds 9205 c2 and c3, 9209 c1, 9215 c3, 9217 c2: test 1); the
// server's move of one name, applied here, left the other so (seed 9218 c3: test 2); so did a move made here,
// which capture journaled for the moved name only (seed 9220 c3: test 3). Each test fails without the fix: the
// client refuses the server's chmod three times and resyncs.
import assert from 'node:assert/strict';
import { chmodSync, linkSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { assertSettled, eventually, groupedHere, type Farm } from '../farm.js';

/** On the server f, g and h are one inode; on the client f is a file of its own, g and h one inode. */
async function fApartGhTogether(t: Parameters<typeof groupedHere>[0]): Promise<{ farm: Farm; c: string }> {
  return groupedHere(t, (s) => {
    writeFileSync(join(s, 'f'), 'same content\n');
    linkSync(join(s, 'f'), join(s, 'g'));
    linkSync(join(s, 'f'), join(s, 'h'));
  }, ['g', 'h'], { firstApart: true });
}

async function serverChmod(farm: Farm, name: string): Promise<void> {
  const before = journalState(farm.server).lastTid;
  chmodSync(join(farm.server, name), 0o600);
  await eventually('the server journals the chmod', () => journalState(farm.server).lastTid, (tid) => tid > before);
  await assertSettled(farm.all);
}

function assertOneInode(farm: Farm, names: readonly string[]): void {
  for (const d of farm.all) {
    const ino = statSync(join(d, names[0]!)).ino;
    for (const n of names) {
      assert.equal(statSync(join(d, n)).ino, ino, `${d}: ${n} is a name of ${names[0]!}'s inode`);
      assert.equal(statSync(join(d, n)).mode & 0o777, 0o600, `${d}: ${n} has the server's mode`);
    }
  }
}

function assertNoRefusal(farm: Farm, c: string): void {
  const refused = farm.log(c).split('\n').filter((l) => l.includes('written here since it was journaled'));
  assert.deepEqual(refused, [], 'no refusal of the server\'s change');
  assert.deepEqual(farm.logMessages(c, /does not apply|resync|differs/i), [], 'no resync');
}

test('joining one of two names the server links to a file leaves the other as journaled: both join, no refusal', { timeout: 120_000 }, async (t) => {
  const { farm, c } = await fApartGhTogether(t);
  // The chmod names f, g and h: g and h join f's inode here, one after the other.
  await serverChmod(farm, 'f');
  assertOneInode(farm, ['f', 'g', 'h']);
  assertNoRefusal(farm, c);
});

test('the server\'s move of one name of a hard-linked file, applied here, leaves the other name as journaled', { timeout: 120_000 }, async (t) => {
  const { farm, c } = await fApartGhTogether(t);
  renameSync(join(farm.server, 'g'), join(farm.server, 'g2'));
  await assertSettled(farm.all);
  await serverChmod(farm, 'f');
  assertOneInode(farm, ['f', 'g2', 'h']);
  assertNoRefusal(farm, c);
});

test('a move made here of one name of a hard-linked file leaves the other name as journaled', { timeout: 120_000 }, async (t) => {
  const { farm, c } = await fApartGhTogether(t);
  renameSync(join(c, 'g'), join(c, 'g2'));
  await assertSettled(farm.all);
  await serverChmod(farm, 'f');
  assertOneInode(farm, ['f', 'g2', 'h']);
  assertNoRefusal(farm, c);
});
