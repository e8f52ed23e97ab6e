// Invariant: every node ends with the server's hard-link groups (which names share an inode), not only with
// its contents: a group that differs is not seen by the state digest (it covers no link groups), so nothing
// would ever set it right, and a later write through one name would show through the wrong names.
//
// Test 1 fails without Reintegrator#withContent finding a pending link's target by its fid: off line, a
// client made x, linked y to it and renamed x to x2; at its name when linked (x) nothing was left, x2 was
// not accepted yet (no version: not a name the server knows), so the link went as a file of its own and the
// server held x2 and y apart while the client held one inode (chaos seed 9207, c2: alpha/f.json and
// beta.conflict-…/a.conflict-….txt, "hard-link group differs").
//
// Tests 2 and 3 fail without applyResolved (daemon/client-apply.ts) linking the server's new name to the inode the removed
// target lives on in here: a client replaced a (b a second name of its inode: b keeps it) while the server
// linked c to a; the client placed c as a file of its own, and once its removal of the old a was accepted the
// server held {b c} and the client {b} {c} (chaos seed 9207, c1: c3's link of alpha/deep/b.txt to
// alpha/f.json, which c1 had replaced while stopped: "beta.conflict-…/deep/b.txt: hard-link group differs").
// Test 3 holds the client's record stream, so that the server accepts the removal before the link comes: it
// also fails without FilesetDb#acceptOwn keeping the removed name's inode until the stream brings the removal
// back (the server's answer had dropped it, and the link found no inode to join).
//
// Test 4 fails without applyResolved (daemon/client-apply.ts) joining the server's names of the inode (the record's
// `links`) after the record brought its file back: off line, a client removed f while the server linked g to
// f and wrote through f. g came as a file of its own (its target removed here), then the write through f
// brought f back (update beats delete) as a new file of its own, after the link step, which had found no f
// on disk to join g to: the server held {f g}, the client {f} {g} (chaos seed 9215, c1: alpha/sub/c apart
// from epsilon/a.txt and epsilon/e).
//
// Test 5 fails without applyForwarded (daemon/client-apply.ts) joining, at the server's acceptance of a write made here, the
// names the server holds with the written one that are files of their own here (the split there already was):
// they kept their old content, the digests differed and the client resynced (chaos seed 9215, c2: a resync
// had placed epsilon/c apart from d.md while a write through d.md was pending; the write came back with
// links [epsilon/c, d.md], "alpha/sub/c: other content, hard links grouped otherwise").
import assert from 'node:assert/strict';
import { copyFileSync, linkSync, readFileSync, readdirSync, renameSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, disconnect, eventually, journalAsOnDisk, journaled, readOrNull, reconnect } from '../farm.js';

/** The node's hard-link groups: the sorted names of every file with more than one name, sorted. */
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

function assertGroups(farm: Farm, want: string[]): void {
  for (const d of farm.all) assert.deepEqual(linkGroups(d), want, `${d}: hard-link groups`);
}

test('off line: make x, link y to it, rename x to x2; once connected x2 and y are one file on every node', { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, { clients: 1 });
  const [c] = farm.clients as [string];
  await assertSettled(farm.all);
  await disconnect(farm, c);
  writeFileSync(join(c, 'x'), 'made off line\n', { flag: 'wx' });
  await eventually('the client journals x', () => journalState(c).lml, (n) => n >= 1);
  linkSync(join(c, 'x'), join(c, 'y'));
  await eventually('the client journals the link', () => journalState(c).lml, (n) => n >= 2);
  renameSync(join(c, 'x'), join(c, 'x2'));
  await eventually('the client journals the rename', () => journalState(c).lml, (n) => n >= 3);
  reconnect(c);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assert.equal(readOrNull(join(d, 'x')), null, `${d}: x renamed`);
    for (const name of ['x2', 'y']) assert.equal(readFileSync(join(d, name), 'utf8'), 'made off line\n', `${d}: ${name}`);
  }
  assertGroups(farm, ['x2 y']);
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs|file of its own/i), [], 'the link went as a link, no resync');
});

/**
 * a and b one inode everywhere; the server links c to a while the client replaces a (a temp file renamed over
 * it: b keeps the old inode), off line (`lags` false: its removal of the old a pending when the link comes) or
 * connected with its record stream held (`lags`: the server accepts the removal before the stream brings the
 * older link). b and c end one file on every node.
 */
async function linkToReplaced(t: TestContext, lags: boolean): Promise<void> {
  const farm = await Farm.start(t, {
    clients: 1,
    proxied: lags,
    prepare: (s) => {
      writeFileSync(join(s, 'a'), 'one inode\n');
      linkSync(join(s, 'a'), join(s, 'b'));
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  assertGroups(farm, ['a b']);
  if (lags) farm.proxyOf(c).stallStreams();
  else await disconnect(farm, c);
  const before = journalState(s).lastTid;
  linkSync(join(s, 'a'), join(s, 'c'));
  await journaled(s, before);
  writeFileSync(join(c, 'a.tmp'), 'a new a\n');
  renameSync(join(c, 'a.tmp'), join(c, 'a'));
  if (lags) {
    const why = (): string => JSON.stringify(farm.logMessages(c, /refused|resync|does not apply|conflict/));
    await eventually('the server accepts the client\'s new a', () => readOrNull(join(s, 'a')) === 'a new a\n' && journalState(c).lml === 0, (v) => v, 20_000, why);
    farm.proxyOf(c).resumeStreams();
  } else {
    await eventually('the client journals the new a', () => journalState(c).lml, (n) => n >= 2);
    reconnect(c);
  }
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assert.equal(readOrNull(join(d, 'a')), 'a new a\n', `${d}: a replaced`);
    for (const name of ['b', 'c']) assert.equal(readFileSync(join(d, name), 'utf8'), 'one inode\n', `${d}: ${name}`);
  }
  assertGroups(farm, ['b c']);
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs/i), [], 'no resync');
  assert.equal(farm.logMessages(c, /a hard link to a file removed here: made to another name of its inode here/).length, 1, 'c joined b\'s inode');
}

test('off line: replace a, b a second name of its inode, while the server links c to a; once connected b and c are one file on every node', { timeout: 120_000 }, async (t) => {
  await linkToReplaced(t, false);
});

test('stream held: replace a, b a second name of its inode, accepted before the server\'s link of c to a comes; b and c are one file on every node', { timeout: 120_000 }, async (t) => {
  await linkToReplaced(t, true);
});

test('off line: remove f while the server links g to f and writes through f; once connected f and g are one file with the write on every node', { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, { clients: 1, prepare: (s) => writeFileSync(join(s, 'f'), 'one name yet\n') });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await disconnect(farm, c);
  unlinkSync(join(c, 'f'));
  await eventually('the client journals the removal', () => journalState(c).lml, (n) => n >= 1);
  let before = journalState(s).lastTid;
  linkSync(join(s, 'f'), join(s, 'g'));
  await journaled(s, before);
  before = journalState(s).lastTid;
  writeFileSync(join(s, 'f'), 'written on the server through f\n');
  await journaled(s, before);
  reconnect(c);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    for (const name of ['f', 'g']) assert.equal(readFileSync(join(d, name), 'utf8'), 'written on the server through f\n', `${d}: ${name} has the write`);
  }
  assertGroups(farm, ['f g']);
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs/i), [], 'no resync');
});

test('a write here through f while g, one file with f on the server, is a file of its own here: once accepted g joins f\'s inode here with the write, no resync', { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      writeFileSync(join(s, 'f'), 'one inode\n');
      linkSync(join(s, 'f'), join(s, 'g'));
    },
  });
  const [c] = farm.clients as [string];
  await assertSettled(farm.all);
  // g apart here, on disk and in the journal, nothing pending: astray consistently, as a resync left it when
  // the names differed from the server's while a write through f was pending (chaos seed 9215, c2).
  await farm.stopNode(c);
  copyFileSync(join(c, 'g'), join(c, 'g.apart'));
  const was = statSync(join(c, 'g'));
  utimesSync(join(c, 'g.apart'), was.atime, was.mtime); // nothing for the start-up scan to journal
  renameSync(join(c, 'g.apart'), join(c, 'g'));
  journalAsOnDisk(c, ['f', 'g']); // both names as on disk now (g leaving the inode moved f's change time too)
  await farm.startNode(c);
  await assertSettled(farm.all);
  // Apart here only: the digest does not see it.
  assert.deepEqual(linkGroups(farm.server), ['f g'], 'one file on the server');
  assert.deepEqual(linkGroups(c), [], `${c}: two files here`);
  writeFileSync(join(c, 'f'), 'written on the client through f\n');
  await assertSettled(farm.all);
  for (const d of farm.all) {
    for (const name of ['f', 'g']) assert.equal(readFileSync(join(d, name), 'utf8'), 'written on the client through f\n', `${d}: ${name} has the write`);
  }
  assertGroups(farm, ['f g']);
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs/i), [], 'no resync');
});
