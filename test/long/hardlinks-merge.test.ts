// Invariant: a change made on a client through one name of a hard link, off line, and a change of the link's
// names on the server (a name removed, a name renamed) both survive, with no conflict copy and no resync: a
// name is not the inode, and the inode lives on under its other names. Found by an exploration of every pair
// of (client change through a name) x (server change of a name), after chaos seeds 9205-9217 lost writes to
// hard-linked files.
import assert from 'node:assert/strict';
import { appendFileSync, linkSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, conflictCopies, disconnect, eventually, journaled, readOrNull, reconnect } from '../farm.js';

/** A server and one client with `f` and its hard link `g` ("version 1") replicated; the client off line. */
async function linkedOffline(t: TestContext): Promise<{ farm: Farm; s: string; c: string }> {
  const farm = await Farm.start(t, { clients: 1 });
  const s = farm.server;
  const [c] = farm.clients as [string];
  writeFileSync(join(s, 'f'), 'version 1\n');
  await journaled(s, 0n);
  const before = journalState(s).lastTid;
  linkSync(join(s, 'f'), join(s, 'g'));
  await journaled(s, before);
  await assertSettled(farm.all);
  await disconnect(farm, c);
  return { farm, s, c };
}

test('a write through one name of a hard link on a client off line, that name removed on the server: the write lives on in the other name everywhere', { timeout: 120_000 }, async (t) => {
  // Fails without the fix (the conflict step's toHeir): the write was kept beside as f.conflict-…, while g on the
  // client still showed it (one inode) and g on the server did not: "state differs", a resync.
  const { farm, s, c } = await linkedOffline(t);
  writeFileSync(join(c, 'f'), 'written on the client through f\n');
  await eventually('the client journals the write', () => journalState(c).lml, (n) => n >= 1);
  const before = journalState(s).lastTid;
  unlinkSync(join(s, 'f'));
  await journaled(s, before);
  reconnect(c);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assert.equal(readOrNull(join(d, 'f')), null, `${d}: f removed`);
    assert.equal(readOrNull(join(d, 'g')), 'written on the client through f\n', `${d}: g holds the write`);
    assert.deepEqual(conflictCopies(d), [], `${d}: no conflict copy`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply/), [], 'no resync');
});

test('an append through one name of a hard link on a client off line, the other name renamed on the server: both survive, the names stay one inode, no resync', { timeout: 120_000 }, async (t) => {
  // Fails without the fix (applyForwarded (daemon/client-apply.ts): a rename's content differing from this name's is not
  // fetched when a name of its inode has a change pending): the server's content before the append was
  // fetched into h, taking it off the inode: "state differs", a resync.
  const { farm, s, c } = await linkedOffline(t);
  appendFileSync(join(c, 'g'), 'appended on the client through g\n');
  await eventually('the client journals the append', () => journalState(c).lml, (n) => n >= 1);
  const before = journalState(s).lastTid;
  renameSync(join(s, 'f'), join(s, 'h'));
  await journaled(s, before);
  reconnect(c);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    for (const n of ['g', 'h']) assert.equal(readOrNull(join(d, n)), 'version 1\nappended on the client through g\n', `${d}: ${n}`);
    assert.equal(statSync(join(d, 'g')).ino, statSync(join(d, 'h')).ino, `${d}: g and h one inode`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply/), [], 'no resync');
});

/** Two clients off line: `first` changes c1's copy, `second` c2's; c1 reconnects and reintegrates, then c2. */
async function twoOffline(t: TestContext, first: (c: string) => void, second: (c: string) => void): Promise<Farm> {
  const farm = await Farm.start(t, { clients: 2 });
  const s = farm.server;
  const [c1, c2] = farm.clients as [string, string];
  writeFileSync(join(s, 'a'), 'a before\n');
  await assertSettled(farm.all);
  await disconnect(farm, c1);
  await disconnect(farm, c2);
  for (const [c, op] of [[c1, first], [c2, second]] as const) {
    const lml = journalState(c).lml;
    op(c);
    await eventually('the client journals', () => journalState(c).lml, (x) => x > lml);
  }
  reconnect(c1);
  await eventually('c1 sent its change', () => journalState(c1).lml, (x) => x === 0);
  reconnect(c2);
  await assertSettled(farm.all, 40_000);
  for (const d of farm.all) {
    assert.equal(readOrNull(join(d, 'l')), 'a before\n', `${d}: l is the file a was when it was linked`);
    assert.equal(readOrNull(join(d, 'a')), 'replaced\n', `${d}: a is the new file`);
  }
  for (const c of [c1, c2]) assert.deepEqual(farm.logMessages(c, /resync|does not apply/), [], `${c}: no resync`);
  return farm;
}

const replaceA = (c: string): void => {
  writeFileSync(join(c, 'a.tmp'), 'replaced\n');
  renameSync(join(c, 'a.tmp'), join(c, 'a'));
};

test('a hard link made on one client to a file another client replaced meanwhile, the replacement first on the server: the link keeps the old file, no resync', { timeout: 120_000 }, async (t) => {
  // Fails without the fix (ApplyPath#check refuses a link whose name is another file than the one its origin
  // linked to, by targetFid; the client then sends it as a file of its own): the server linked l to the new a.
  await twoOffline(t, replaceA, (c) => linkSync(join(c, 'a'), join(c, 'l')));
});

test('a file replaced on one client while another made a hard link to it, the link first on the server: the link keeps the old file, no resync', { timeout: 120_000 }, async (t) => {
  // Fails without the fix (ClientNode: a forwarded link to a file removed here, found by targetFid, is placed as
  // a file of its own): the replacing client linked l to its new a, and its digest differed: a resync.
  await twoOffline(t, (c) => linkSync(join(c, 'a'), join(c, 'l')), replaceA);
});
