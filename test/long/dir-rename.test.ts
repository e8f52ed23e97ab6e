// Invariant: a directory rename never swallows changes made under the directory. Capture journals a
// write, create or unlink made under a directory renamed in the same batch; local changes a client made
// under a directory the server renamed meanwhile reach the server at the new path (no refusal loop);
// and a resync never removes local changes the server has not accepted. At the end every node's journal
// digest equals its disk digest and all agree. (Issue 11, faults 2, 3 and 4.)
import assert from 'node:assert/strict';
import { linkSync, mkdirSync, readFileSync, readdirSync, renameSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, disconnect, reconnect, assertJournalsAgree, assertSettled, conflictCopies, eventually, journaled, pastRetention, readOrNull, statusJson } from '../farm.js';

// ---------------------------------------------------------------- fault 2: capture

test('capture journals a write, an unlink and a create made under a directory renamed in the same batch (5 trials)', { timeout: 120_000 }, async (t) => {
  // Fails without the fix: the renames are journaled, the changes under the new names are not (until a
  // restart): the server's journal digest differs from its disk digest ("nodes did not settle", e.g.
  // "d2-0/f: on disk, not journaled", "articles-0/p3: journal file ..., disk undefined") and the client
  // keeps the old articles-N/p2 and p3.
  const farm = await Farm.start(t, { clients: 1 });
  const [c] = farm.clients as [string];
  const s = farm.server;
  const trials = 5;
  for (let i = 0; i < trials; i++) {
    mkdirSync(join(s, `d1-${i}`));
    mkdirSync(join(s, `docs-${i}`));
    writeFileSync(join(s, `docs-${i}/p2`), `p2 as first written, trial ${i}\n`);
    writeFileSync(join(s, `docs-${i}/p3`), `p3, trial ${i}\n`);
    await assertJournalsAgree(farm.all); // d1, docs, p2 and p3 journaled and on the client
    // Each sequence in one go, as a shell runs it: mv d1 d2; echo x > d2/f ...
    renameSync(join(s, `d1-${i}`), join(s, `d2-${i}`));
    writeFileSync(join(s, `d2-${i}/f`), `x ${i}\n`);
    // ... and mv docs articles; rm articles/p3; echo y > articles/p2.
    renameSync(join(s, `docs-${i}`), join(s, `articles-${i}`));
    unlinkSync(join(s, `articles-${i}/p3`));
    writeFileSync(join(s, `articles-${i}/p2`), `y ${i}\n`);
  }
  await assertSettled(farm.all);
  for (let i = 0; i < trials; i++) {
    for (const d of farm.all) {
      assert.deepEqual(readdirSync(join(d, `d2-${i}`)), ['f'], `${d}: trial ${i}: d2 holds the new file`);
      assert.equal(readFileSync(join(d, `d2-${i}/f`), 'utf8'), `x ${i}\n`, `${d}: trial ${i}: d2/f`);
      assert.deepEqual(readdirSync(join(d, `articles-${i}`)), ['p2'], `${d}: trial ${i}: p3 is gone from articles`);
      assert.equal(readFileSync(join(d, `articles-${i}/p2`), 'utf8'), `y ${i}\n`, `${d}: trial ${i}: articles/p2 was rewritten`);
    }
  }
  assert.equal(readOrNull(join(c, 'docs-0/p2')), null, 'no docs left on the client');
});

// ---------------------------------------------------------------- fault 3: offline changes under a renamed directory


function readdirOrEmpty(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** The client's log lines that tell of a refusal or a resync, for failure messages. */
function trouble(farm: Farm, dir: string): string {
  const m = farm.logMessages(dir, /refused|resync|does not apply|not here yet/);
  return `${m.length} refusal/resync log lines on the client${m.length === 0 ? '' : `, e.g. ${JSON.stringify([...new Set(m)])}`}`;
}

test('files and directories made under d on a disconnected client reach the server at e after the server renamed d to e', { timeout: 120_000 }, async (t) => {
  // Fails without the fix: the client's LML records keep the path d/...; the server refuses them
  // ("parent d does not exist here"), the client resyncs, and again, for ever: the server never gets
  // e/new.txt ("the server has e/new.txt ...: not so after 20000 ms", with refusal/resync lines logged).
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'd'));
      writeFileSync(join(s, 'd/old.txt'), 'there before\n');
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await disconnect(farm, c);
  writeFileSync(join(c, 'd/new.txt'), 'made on the client while away\n');
  mkdirSync(join(c, 'd/x'));
  writeFileSync(join(c, 'd/x/y'), 'deeper, made on the client while away\n');
  await eventually('the client journals its three changes in its LML', () => journalState(c).lml, (n) => n >= 3);
  const before = journalState(s).lastTid;
  renameSync(join(s, 'd'), join(s, 'e'));
  await journaled(s, before);
  reconnect(c);
  const why = (): string => trouble(farm, c);
  await eventually('the server has e/new.txt with the client\'s content', () => readOrNull(join(s, 'e/new.txt')), (v) => v === 'made on the client while away\n', 20_000, why);
  await eventually('the server has e/x/y with the client\'s content', () => readOrNull(join(s, 'e/x/y')), (v) => v === 'deeper, made on the client while away\n', 10_000, why);
  await assertSettled(farm.all);
  assert.equal(journalState(c).lml, 0, 'the client\'s LML is empty');
  for (const d of farm.all) {
    assert.deepEqual(readdirSync(join(d, 'e')).sort(), ['new.txt', 'old.txt', 'x'], `${d}: e holds both sides' files`);
    assert.equal(readOrNull(join(d, 'd/new.txt')), null, `${d}: nothing left under d`);
    assert.deepEqual(conflictCopies(d), [], `${d}: no conflict copy`);
  }
  assert.deepEqual(farm.logMessages(c, /resync/i), [], 'the client never resynced');
});

test('a file renamed inside d on a disconnected client ends at e/b on both nodes after the server renamed d to e', { timeout: 120_000 }, async (t) => {
  // Fails without the fix: the client's rename d/a -> d/b is refused at d on the server ("parent d does
  // not exist here"), again after every resync: the server keeps e/a, the client shows e/b, and they
  // never agree ("e/b on the server holds a's content: not so after 20000 ms (last: null)", with the
  // refusal/resync lines). The QA run saw the file vanish on both sides, with no conflict entry.
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'd'));
      writeFileSync(join(s, 'd/a'), 'the content of a\n');
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await disconnect(farm, c);
  renameSync(join(c, 'd/a'), join(c, 'd/b'));
  await eventually('the client journals the rename in its LML', () => journalState(c).lml, (n) => n >= 1);
  const before = journalState(s).lastTid;
  renameSync(join(s, 'd'), join(s, 'e'));
  await journaled(s, before);
  reconnect(c);
  const why = (): string => trouble(farm, c);
  await eventually('e/b on the server holds a\'s content', () => readOrNull(join(s, 'e/b')), (v) => v === 'the content of a\n', 20_000, why);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assert.equal(readOrNull(join(d, 'e/b')), 'the content of a\n', `${d}: e/b holds a's content`);
    assert.deepEqual(readdirSync(join(d, 'e')), ['b'], `${d}: only b in e`);
    assert.equal(readOrNull(join(d, 'd/b')), null, `${d}: no d left`);
  }
  assert.equal(journalState(c).lml, 0, 'the client\'s LML is empty');
  assert.deepEqual(farm.logMessages(c, /resync/i), [], 'the client never resynced');
});

// ---------------------------------------------------------------- fault 4: a resync keeps pending local changes

test('a client past the server\'s retention resyncs after the server renamed d to e without destroying its pending write to d/f and its new d/g', { timeout: 120_000 }, async (t) => {
  // Fails without the fix: the resync's place() removes the client's d with `rm -r`, taking the pending
  // write and the new file with them (the client ends with neither d nor e on disk): neither content
  // reaches the server (e/f keeps the server's version, no e/g, no conflict copy), the LML keeps
  // write d/f and create d/g for ever and the log repeats "object ... is not here yet".
  const farm = await Farm.start(t, {
    clients: 1,
    serverArgs: ['--retain-records', '5'],
    prepare: (s) => {
      mkdirSync(join(s, 'd'));
      writeFileSync(join(s, 'd/f'), 'the server\'s first version of f\n');
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await disconnect(farm, c);
  writeFileSync(join(c, 'd/f'), 'written on the client while away\n');
  writeFileSync(join(c, 'd/g'), 'new on the client while away\n');
  await eventually('the client journals both changes in its LML', () => journalState(c).lml, (n) => n >= 2);
  const before = journalState(s).lastTid;
  renameSync(join(s, 'd'), join(s, 'e'));
  await journaled(s, before);
  // More than the 5 records retained: the server prunes the ones the client missed (every second).
  await pastRetention(farm);
  reconnect(c);
  await eventually('the client resynced past retention', () => farm.logMessages(c, /retention/).length, (n) => n > 0);
  // Both of the client's contents survive, at their names under e or as conflict copies.
  const contents = (d: string): string[] => {
    const names = [...(readdirOrEmpty(join(d, 'e'))).map((n) => `e/${n}`), ...conflictCopies(d)];
    return [...new Set(names)].map((n) => readOrNull(join(d, n)) ?? '');
  };
  const survived = (d: string): boolean => contents(d).includes('written on the client while away\n') && contents(d).includes('new on the client while away\n');
  const why = (): string => `client holds ${JSON.stringify(contents(c))}; ${trouble(farm, c)}`;
  await eventually('the client\'s write to d/f and its new d/g reach the server (under e or as conflict copies)', () => contents(s), () => survived(s), 20_000, why);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assert.ok(survived(d), `${d}: the client's write to d/f and its d/g survive (${JSON.stringify(contents(d))})`);
    assert.equal(readOrNull(join(d, 'e/f')) !== null, true, `${d}: e/f is there`);
  }
  assert.equal(journalState(c).lml, 0, 'the client\'s LML is empty');
  assert.deepEqual(farm.logMessages(c, /not here yet|resync failed/), [], 'no "is not here yet" or "resync failed" in the client\'s log');
  // The status file is rewritten every second and the follow stream reconnects after the resync: wait for it.
  type St = { pendingLocal: number; client: { connected: boolean; stuckSince?: number | null } };
  const st = await eventually('status: connected', () => statusJson(c) as St, (v) => v.client.connected, 10_000);
  assert.equal(st.pendingLocal, 0, 'status: nothing pending');
  assert.equal(st.client.stuckSince ?? null, null, 'status: not stuck');
});

// ---------------------------------------------------------------- a server change below a directory renamed here

test('a server write and create below d reach a client that renamed d to x while away, at x, with no resync', { timeout: 120_000 }, async (t) => {
  // Fails without the fix (reint/local-names.ts): the server's write to d/f met "the object is at x/f here"
  // on the client three times ("forwarded record does not apply"), then the client resynced.
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'd'));
      writeFileSync(join(s, 'd/f'), 'first\n');
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await disconnect(farm, c);
  renameSync(join(c, 'd'), join(c, 'x'));
  await eventually('the client journals its rename in its LML', () => journalState(c).lml, (n) => n >= 1);
  const before = journalState(s).lastTid;
  writeFileSync(join(s, 'd/f'), 'second, written on the server\n');
  writeFileSync(join(s, 'd/g'), 'new on the server\n');
  await journaled(s, before);
  reconnect(c);
  const why = (): string => trouble(farm, c);
  await eventually('the server has x/f with its own write', () => readOrNull(join(s, 'x/f')), (v) => v === 'second, written on the server\n', 20_000, why);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assert.deepEqual(readdirSync(join(d, 'x')).sort(), ['f', 'g'], `${d}: x holds f and g`);
    assert.equal(readOrNull(join(d, 'x/g')), 'new on the server\n', `${d}: x/g`);
    assert.equal(readOrNull(join(d, 'd')), null, `${d}: no d left`);
    assert.deepEqual(conflictCopies(d), [], `${d}: no conflict copy`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply/), [], 'no resync and no refused server record on the client');
});

test('a file and a symlink removed on a client past the server\'s retention stay removed after its resync', { timeout: 120_000 }, async (t) => {
  // A guard of the whole path with real daemons. (Here the reintegrator ships the removals while the follow
  // loop resyncs, so it passes without the fix too; test/resync-protect.test.ts pins protectLocal's rule.)
  const farm = await Farm.start(t, {
    clients: 1,
    serverArgs: ['--retain-records', '5'],
    prepare: (s) => {
      mkdirSync(join(s, 'd'));
      writeFileSync(join(s, 'd/f'), 'removed on the client while away\n');
      writeFileSync(join(s, 'd/kept'), 'stays\n');
      symlinkSync('kept', join(s, 'd/l'));
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await disconnect(farm, c);
  unlinkSync(join(c, 'd/f'));
  unlinkSync(join(c, 'd/l'));
  await eventually('the client journals both removals in its LML', () => journalState(c).lml, (n) => n >= 2);
  await pastRetention(farm);
  reconnect(c);
  await eventually('the client resynced past retention', () => farm.logMessages(c, /retention/).length, (n) => n > 0);
  const why = (): string => trouble(farm, c);
  await eventually('f is gone from the server', () => readOrNull(join(s, 'd/f')), (v) => v === null, 20_000, why);
  await eventually('l is gone from the server', () => readdirSync(join(s, 'd')).includes('l'), (v) => !v, 10_000, why);
  await assertSettled(farm.all);
  for (const d of farm.all) assert.deepEqual(readdirSync(join(d, 'd')), ['kept'], `${d}: only d/kept is left`);
  assert.equal(journalState(c).lml, 0, 'the client\'s LML is empty');
});

test('a resync places a hard link whose other name is kept elsewhere here (a pending local rename) instead of failing for ever', { timeout: 120_000 }, async (t) => {
  // A guard of the path with real daemons: when the snapshot names f as g's other name while f is at z here
  // (renamed while away, not accepted yet, so kept), linking g to f failed with ENOENT and the log repeated
  // "resync failed" (seed 7101 of the widened chaos run: 140 times). Here the reintegrator usually ships the
  // rename before the resync takes its snapshot, so this passes without the fix too; the chaos seed shows it.
  const farm = await Farm.start(t, {
    clients: 1,
    serverArgs: ['--retain-records', '5'],
    prepare: (s) => {
      writeFileSync(join(s, 'f'), 'two names\n');
      linkSync(join(s, 'f'), join(s, 'g'));
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await disconnect(farm, c);
  renameSync(join(c, 'f'), join(c, 'z'));
  await eventually('the client journals the rename', () => journalState(c).lml, (n) => n >= 1);
  await pastRetention(farm);
  reconnect(c);
  await eventually('the client resynced past retention', () => farm.logMessages(c, /retention/).length, (n) => n > 0);
  await eventually('z reaches the server', () => readOrNull(join(s, 'z')), (v) => v === 'two names\n', 20_000, () => trouble(farm, c));
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assert.equal(readOrNull(join(d, 'g')), 'two names\n', `${d}: g`);
    assert.equal(readOrNull(join(d, 'f')), null, `${d}: no f`);
  }
  assert.deepEqual(farm.logMessages(c, /resync failed/), [], 'no failed resync');
});

/**
 * The cycle's start: a/f and b/g on a server and one client, the client off line, where it has moved b
 * into a (a/b); the server then moves a into b in each test.
 */
async function cycleStart(t: TestContext, serverArgs: readonly string[] = []): Promise<{ farm: Farm; c: string; s: string }> {
  const farm = await Farm.start(t, {
    clients: 1,
    serverArgs,
    prepare: (s) => {
      mkdirSync(join(s, 'a'));
      mkdirSync(join(s, 'b'));
      writeFileSync(join(s, 'a/f'), 'in a\n');
      writeFileSync(join(s, 'b/g'), 'in b\n');
    },
  });
  const [c] = farm.clients as [string];
  await assertSettled(farm.all);
  await disconnect(farm, c);
  renameSync(join(c, 'b'), join(c, 'a/b'));
  return { farm, c, s: farm.server };
}

/** The server moves a into b (b/a), and journals it. */
async function serverMovesAIntoB(s: string): Promise<void> {
  const before = journalState(s).lastTid;
  renameSync(join(s, 'a'), join(s, 'b/a'));
  await journaled(s, before);
}

/** The server's move stood on node `d`: no a, a's file in b/a, b's own file in b. */
function assertServerMoveStood(d: string): void {
  assert.equal(readOrNull(join(d, 'a')), null, `${d}: a moved`);
  assert.equal(readOrNull(join(d, 'b/a/f')), 'in a\n', `${d}: b/a/f`);
  assert.equal(readOrNull(join(d, 'b/g')), 'in b\n', `${d}: b/g`);
}

test('a directory moved into another on a client off line while the server moved that other one into it: the server\'s move stands, nothing inside is lost, no resync', { timeout: 120_000 }, async (t) => {
  // Fails without ConflictResolver#breakCycle: in the client's names the server's move of a into b was a
  // move of a into a/b ("a directory cannot move inside itself"), three times, then a resync (chaos seed 9106).
  const { farm, c, s } = await cycleStart(t);
  writeFileSync(join(c, 'a/b/h'), 'made in b on the client after its move\n');
  await eventually('the client journals its rename and its file', () => journalState(c).lml, (n) => n >= 2);
  await serverMovesAIntoB(s);
  reconnect(c);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assertServerMoveStood(d);
    assert.equal(readOrNull(join(d, 'b/h')), 'made in b on the client after its move\n', `${d}: the client's new file, in b`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply/), [], 'no resync and no refused server record on the client');
});

test('the same cycle when the client made a new directory at the name it moved away from: that new one goes beside, the server\'s move stands, no resync', { timeout: 120_000 }, async (t) => {
  // Fails without the set-aside in ConflictResolver#breakCycle: the name to move b back to was taken by the
  // client's new b, so the cycle stayed ("a directory cannot move inside itself"), three times, then a
  // resync that failed too (chaos seed 9201: beta moved into gamma/deep, then mkdir -p beta/sub).
  const { farm, c, s } = await cycleStart(t);
  mkdirSync(join(c, 'b/sub'), { recursive: true });
  writeFileSync(join(c, 'b/sub/x'), 'in the client\'s new b\n');
  await eventually('the client journals its rename and its new directory', () => journalState(c).lml, (n) => n >= 4);
  await serverMovesAIntoB(s);
  reconnect(c);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assertServerMoveStood(d);
    const beside = readdirSync(d).filter((n) => n.startsWith('b.conflict-'));
    assert.equal(beside.length, 1, `${d}: the client's new b kept beside (${readdirSync(d).join(' ')})`);
    assert.equal(readOrNull(join(d, beside[0]!, 'sub/x')), 'in the client\'s new b\n', `${d}: its file`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply/), [], 'no resync and no refused server record on the client');
});

test('the same cycle met by a resync (the client past the server\'s retention): the server\'s move stands and nothing below either directory is lost', { timeout: 180_000 }, async (t) => {
  // Fails without undoCycles in daemon/resync-protect.ts: the resync kept the client's move of b into a, so
  // the server's a (now b/a) was a/b/a here, inside itself: the resync removed a with the server's a/f, and
  // b/a/f was gone on every node.
  const { farm, c, s } = await cycleStart(t, ['--retain-records', '5']);
  writeFileSync(join(c, 'a/b/h'), 'made in b on the client after its move\n');
  await eventually('the client journals its rename and its file', () => journalState(c).lml, (n) => n >= 2);
  await serverMovesAIntoB(s);
  await pastRetention(farm);
  reconnect(c);
  await eventually('the client resynced past retention', () => farm.logMessages(c, /retention/).length, (n) => n > 0);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assertServerMoveStood(d);
    assert.equal(readOrNull(join(d, 'b/h')), 'made in b on the client after its move\n', `${d}: the client's new file, in b`);
  }
  assert.deepEqual(farm.logMessages(c, /resync failed|does not apply/), [], 'no failed resync, no refused server record');
});
