// Invariants of a resync that moves directories as it goes. Chaos seed 9269 (s51): three failed resyncs in a
// row ("parent … does not exist here"), each starting from the half-done state of the one before, which capture
// journaled meanwhile; one of those records removed a server file, on every node (DESTROYED).
//
// 1. A directory of the server's that this node moved away (a pending rename the server's change to it beats)
//    goes back to its name with what it holds, even when another directory of the server's was moved to that
//    name here: that one steps aside with its pending move. Fails without the fix (copy/place.ts freeName: the
//    holder was forgotten, a directory of the server's with its pending move, and the moved directory could
//    not go back, so it was removed after its pending entries were moved beside it): "resync failed; retrying",
//    "conflict on C/X/a.txt: parent C does not exist here", and once the resync got through, z.txt twice.
// 2. Each entry is placed at the name its directory has here when it is placed, not the name it had when the
//    resync began: a directory that cannot go back (a name held on disk by what capture has not journaled yet)
//    is removed, what it holds with local changes moved beside it first (evacuate), and the server's entries
//    below a kept directory must follow it there. Fails without the fix (resync-protect's localNamer: the
//    names were computed once, before anything moved): "parent C does not exist here", the resync failed.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Farm, assertSettled, changeAway, comeBack, eventually, pastRetention, treeFiles } from '../farm.js';
import { journalState } from '../helpers.js';

test('a resync that evacuates a directory kept with its own pending move places the server\'s entries below it at its new name', { timeout: 180_000 }, async (t) => {
  const farm = await Farm.start(t, { clients: 1, serverArgs: ['--retain-records', '5'] });
  const [c] = farm.clients as [string];
  const s = farm.server;
  for (const d of ['A', 'X', 'Z']) mkdirSync(join(s, d));
  writeFileSync(join(s, 'X/a.txt'), 'a, first\n');
  writeFileSync(join(s, 'Z/z.txt'), 'z\n');
  await assertSettled(farm.all);

  // Away: A moved to C, X moved into C, Z moved to A's old name. Each a pending rename of a server directory.
  await changeAway(farm, c, 'disconnected', [
    ['mv A C', () => renameSync(join(c, 'A'), join(c, 'C'))],
    ['mv X C/X', () => renameSync(join(c, 'X'), join(c, 'C/X'))],
    ['mv Z A', () => renameSync(join(c, 'Z'), join(c, 'A'))],
  ]);
  await serverChangesAway(farm);

  await resyncs(farm, c);

  assertResynced(farm, c);
  for (const d of farm.all) {
    const files = treeFiles(d);
    assert.equal([...files.values()].filter((v) => v === 'z\n').length, 1, `${d}: Z/z.txt once`);
  }
  // X went where the client moved it: the client's move reintegrated.
  const x = [...treeFiles(s)].find(([, v]) => v.startsWith('a, '))![0];
  assert.match(x, /\/X\/a\.txt$/, `the client's move of X into C's place stands: ${x}`);
  assert.equal(readFileSync(join(c, x), 'utf8'), readFileSync(join(s, x), 'utf8'));
});

test('a resync places the server\'s entries below a kept directory where evacuate moved it', { timeout: 240_000 }, async (t) => {
  // The client's capture waits 11 s before it journals (longer than a resync waits for it): a name taken a
  // moment before the resync is on disk only, and A cannot go back to it.
  const farm = await Farm.start(t, { clients: 1, serverArgs: ['--retain-records', '5'], clientArgs: ['--settle-ms', '11000'] });
  const [c] = farm.clients as [string];
  const s = farm.server;
  for (const d of ['A', 'X']) mkdirSync(join(s, d));
  writeFileSync(join(s, 'X/a.txt'), 'a, first\n');
  await assertSettled(farm.all);

  await changeAway(farm, c, 'disconnected', [
    ['mv A C', () => renameSync(join(c, 'A'), join(c, 'C'))],
    ['mv X C/X', () => renameSync(join(c, 'X'), join(c, 'C/X'))],
  ]);
  await serverChangesAway(farm);

  writeFileSync(join(c, 'A'), 'a file at A, written on the client a moment before the resync\n');
  await resyncs(farm, c);

  assertResynced(farm, c);
  for (const d of farm.all) {
    const files = treeFiles(d);
    assert.equal([...files.values()].filter((v) => v.startsWith('a file at A')).length, 1, `${d}: the client's file once`);
  }
});

/**
 * While the client is away, the server changes A (its mode: the client's move of A loses to it) and writes in X
 * (X itself is unchanged: the client's move of X is kept, and the new content of X/a.txt is placed below it),
 * then prunes its journal past the client's place in it.
 */
async function serverChangesAway(farm: Farm): Promise<void> {
  const s = farm.server;
  const before = journalState(s).lastTid;
  chmodSync(join(s, 'A'), 0o700);
  writeFileSync(join(s, 'X/a.txt'), 'a, written on the server while the client was away\n');
  await eventually('the server journaled both', () => journalState(s).lastTid, (x) => x >= before + 2n);
  await pastRetention(farm);
}

/** The client comes back, resyncs (past the server's retention) and every node settles. */
async function resyncs(farm: Farm, c: string): Promise<void> {
  await comeBack(farm, c, 'disconnected');
  await eventually('the client resynced', () => farm.logMessages(c, /resync done/).length, (n) => n > 0, 60_000);
  await assertSettled(farm.all, 60_000);
}

/** The resync did not fail half-way, and every node holds X/a.txt once, with the server's content. */
function assertResynced(farm: Farm, c: string): void {
  assert.deepEqual(failures(farm, c), [], 'the resync did not fail half-way');
  for (const d of farm.all) {
    const a = [...treeFiles(d)].filter(([, v]) => v.startsWith('a, '));
    assert.deepEqual(a.map(([, v]) => v), ['a, written on the server while the client was away\n'], `${d}: X/a.txt once, the server's content (${JSON.stringify(a)})`);
  }
}

/** The client's log lines of a failed resync. */
function failures(farm: Farm, c: string): string[] {
  return farm.log(c).split('\n').filter((l) => l.includes('resync failed'));
}
