// Invariants: a change the server accepts through one name of a hard-linked inode gives its version to every
// name the server holds of that inode, here too: the pending records of those names are made against it, and
// the server takes them at the next try, with no resync and no conflict copy. And a client groups the names
// of an inode as the server does: a link made here joins the inode there too, and a write made here through a
// name the server holds apart leaves the other names with the server's content.
//
// Test 1 fails without FilesetDb#acceptOwn finding the inode of a name removed here (its removal pending):
// off line, a client links b to a, writes through b and removes b; capture journals the write again as a's
// (Reconciler#carrierOf, made against a's version), the server accepts the link and the write through b,
// which gives a the write's version there (the record's `links` are a and b), and the client, with b gone
// from its object table, rebased nothing of a's. a's write was refused three times ("made against version
// …, current is …") and the client resynced (chaos seed 9202, c1: epsilon/sub/deep/a.txt). Its last check
// fails without Reintegrator#withContent reading a write of a name removed here from the inode's name that
// lives on (FilesetDb#removedLinkIno): the write through b went to the server empty.
//
// Test 2 fails without Reintegrator#withContent sending a link whose target name is gone here as a link to
// another name of the inode: the server's removal of d undid the client's move of d and removed it, so the
// links e and f (journaled against d's new name) went as files of their own, a, e and f stayed one file
// here only, and after the write through e a held it here only ("state differs", a resync; chaos seed 9202,
// c2: "beta/a.txt: other content, hard links grouped otherwise").
//
// Test 3 fails without capture looking again at the other names of an inode after it journals a link to it:
// the link moved their change time, their rows looked written here since journaled, and the split of g off
// f's inode when the server accepted the write through f (g a file of its own there) skipped it: g kept the
// write here only ("state differs", a resync; c2's beta/a.txt again, whose inode got alpha/sub/f.json).
import assert from 'node:assert/strict';
import { linkSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cli, journalState } from '../helpers.js';
import { Farm, assertSettled, conflictCopies, disconnect, eventually, groupedHere, readOrNull, reconnect } from '../farm.js';

test('off line: link b to a, write through b, remove b; once connected a has the write on every node, no resync', { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, { clients: 1, prepare: (s) => writeFileSync(join(s, 'a.txt'), 'made on the server\n') });
  const [c] = farm.clients as [string];
  await assertSettled(farm.all);
  await disconnect(farm, c);
  linkSync(join(c, 'a.txt'), join(c, 'b.txt'));
  await eventually('the client journals the link', () => journalState(c).lml, (n) => n >= 1);
  writeFileSync(join(c, 'b.txt'), 'written off line through b\n');
  await eventually('the client journals the write', () => journalState(c).lml, (n) => n >= 2);
  unlinkSync(join(c, 'b.txt'));
  // The removal, and the write again as a's (b is gone, a holds it now).
  await eventually('the client journals the removal', () => journalState(c).lml, (n) => n >= 4);
  reconnect(c);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assert.equal(readFileSync(join(d, 'a.txt'), 'utf8'), 'written off line through b\n', `${d}: a has the write made through b`);
    assert.equal(readOrNull(join(d, 'b.txt')), null, `${d}: b removed`);
    assert.equal(statSync(join(d, 'a.txt')).nlink, 1, `${d}: a is the inode's only name`);
    assert.deepEqual(conflictCopies(d), [], `${d}: no conflict copy`);
  }
  // a's write goes in the batch that gives a the write's version there: refused once, then taken.
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs/i), [], 'no resync');
  // The write through b carried what the inode holds (from a, b being gone here), never an empty file: on the
  // server b is a name of a's inode, so an empty write emptied a there until a's own write came (and for good
  // had that one been refused).
  const kml = cli(['kml', farm.server, '--json']).stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { kind: string; path: string; size: number | null });
  const writes = kml.filter((r) => r.kind === 'write' || r.kind === 'truncate');
  assert.ok(writes.length > 0, 'the server journaled the write');
  for (const w of writes) assert.equal(w.size, 'written off line through b\n'.length, `the server's ${w.kind} of ${w.path} carries the write, not an empty file`);
});

test('off line: link e and f to a while the server removes the name they were journaled against; e, f and a stay one file everywhere, no resync', { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, { clients: 1, prepare: (s) => writeFileSync(join(s, 'd'), 'made on the server\n') });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  // a: a second name of d's inode, on every node.
  linkSync(join(c, 'd'), join(c, 'a'));
  await assertSettled(farm.all);
  await disconnect(farm, c);
  // The client moves d; its links e and f are journaled against d2, the inode's older name.
  renameSync(join(c, 'd'), join(c, 'd2'));
  await eventually('the client journals the move', () => journalState(c).lml, (n) => n >= 1);
  linkSync(join(c, 'a'), join(c, 'e'));
  await eventually('the client journals the link e', () => journalState(c).lml, (n) => n >= 2);
  writeFileSync(join(c, 'e'), 'written off line through e\n');
  await eventually('the client journals the write', () => journalState(c).lml, (n) => n >= 3);
  linkSync(join(c, 'a'), join(c, 'f'));
  await eventually('the client journals the link f', () => journalState(c).lml, (n) => n >= 4);
  // The server removes d: the conflict step undoes the move, d goes, and with it the name e and f link to.
  const before = journalState(s).lastTid;
  unlinkSync(join(s, 'd'));
  await eventually('the server journals the removal', () => journalState(s).lastTid, (tid) => tid > before);
  reconnect(c);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    for (const name of ['a', 'e', 'f']) assert.equal(readFileSync(join(d, name), 'utf8'), 'written off line through e\n', `${d}: ${name} has the write`);
    assert.equal(readOrNull(join(d, 'd')), null, `${d}: d removed`);
    assert.equal(readOrNull(join(d, 'd2')), null, `${d}: d2 gone (the move undone)`);
    const ino = statSync(join(d, 'a')).ino;
    assert.ok(['e', 'f'].every((name) => statSync(join(d, name)).ino === ino), `${d}: a, e and f are one file`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs/i), [], 'no resync');
});

test('a write here through f while g, one file with f here and apart on the server, gets a new name here: g keeps the server\'s content, no resync', { timeout: 120_000 }, async (t) => {
  // g a second name of f's inode here; the server holds two files.
  const { farm, c } = await groupedHere(t, (s) => {
    writeFileSync(join(s, 'f'), 'same content\n');
    writeFileSync(join(s, 'g'), 'same content\n');
  }, ['f', 'g']);
  await disconnect(farm, c);
  writeFileSync(join(c, 'f'), 'written on the client through f\n');
  await eventually('the client journals the write', () => journalState(c).lml, (n) => n >= 1);
  linkSync(join(c, 'g'), join(c, 'h'));
  await eventually('the client journals the link', () => journalState(c).lml, (n) => n >= 2);
  reconnect(c);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assert.equal(readFileSync(join(d, 'f'), 'utf8'), 'written on the client through f\n', `${d}: f has the client's write`);
    assert.equal(readFileSync(join(d, 'g'), 'utf8'), 'same content\n', `${d}: g kept the server's content`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs/i), [], 'no resync');
});
