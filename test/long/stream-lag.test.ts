// Invariant: a client whose own change the server accepts before the client has applied the server's older
// records (its forwarded stream lags) applies those records, and ends equal without a resync. Found by the
// widened chaos run (issue 11, seeds 9204, 9214, 9217): a client removed a directory that, on the server, a
// file had been moved into and out of meanwhile; the server accepted the removal, then the client met the
// move into it: "parent … does not exist here", three times, and a resync. The first case fails without the
// fix (the conflict step's removedAhead, removeMadeAgain (daemon/client-own.ts)); the second passed before too. The client's
// record stream is held by its proxy (ChaosProxy#stallStreams) while its reintegration goes through.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, linkSync, mkdirSync, renameSync, rmdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, eventually, journaled, readOrNull, treeFiles } from '../farm.js';

for (const how of ['moved', 'made'] as const) {
test(`a directory removed on a client whose stream lags, after the server ${how} a file in it and ${how === 'moved' ? 'out of it' : 'removed it'}, is gone everywhere${how === 'moved' ? ' and the file stays' : ''}`, { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, { clients: 1, proxied: true });
  const [c] = farm.clients as [string];
  const s = farm.server;
  let before = journalState(s).lastTid;
  mkdirSync(join(s, 'epsilon'));
  mkdirSync(join(s, 'gamma'));
  mkdirSync(join(s, 'alpha'));
  writeFileSync(join(s, 'gamma/e'), 'moved through epsilon\n');
  await journaled(s, before);
  await assertSettled(farm.all);
  farm.proxyOf(c).stallStreams();
  before = journalState(s).lastTid;
  if (how === 'moved') renameSync(join(s, 'gamma/e'), join(s, 'epsilon/a.txt'));
  else writeFileSync(join(s, 'epsilon/new'), 'made and removed on the server\n');
  await journaled(s, before);
  before = journalState(s).lastTid;
  if (how === 'moved') renameSync(join(s, 'epsilon/a.txt'), join(s, 'alpha/d.md'));
  else unlinkSync(join(s, 'epsilon/new'));
  await journaled(s, before);
  rmdirSync(join(c, 'epsilon'));
  const why = (): string => JSON.stringify(farm.logMessages(c, /refused|resync|does not apply|conflict/));
  await eventually('the server accepts the client\'s removal', () => !existsSync(join(s, 'epsilon')) && journalState(c).lml === 0, (v) => v, 20_000, why);
  farm.proxyOf(c).resumeStreams();
  await assertSettled(farm.all);
  for (const d of farm.all) {
    if (how === 'moved') assert.equal(readOrNull(join(d, 'alpha/d.md')), 'moved through epsilon\n', `${d}: alpha/d.md`);
    assert.equal(existsSync(join(d, 'epsilon')), false, `${d}: epsilon is gone`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply/i), [], `the client never resynced: ${why()}`);
});
}

test('a chmod through one name of a hard link on a client whose stream lags, after the server moved the other name: both names keep the inode and the mode everywhere', { timeout: 120_000 }, async (t) => {
  // Fails without the fix (ApplyPath#baseOf passing over this node's own change the server accepted after
  // the record, FilesetDb#commitRemote keeping that change's version): the chmod through delta/h, accepted
  // with the inode's names in its `links`, gave beta/h its version here; the server's older move of beta/h,
  // made against the version before, then did not apply three times and the client resynced (chaos seed 9218).
  const farm = await Farm.start(t, { clients: 1, proxied: true });
  const [c] = farm.clients as [string];
  const s = farm.server;
  let before = journalState(s).lastTid;
  mkdirSync(join(s, 'beta'));
  mkdirSync(join(s, 'delta'));
  mkdirSync(join(s, 'alpha'));
  writeFileSync(join(s, 'beta/h'), 'one inode, two names\n');
  await journaled(s, before);
  before = journalState(s).lastTid;
  linkSync(join(s, 'beta/h'), join(s, 'delta/h'));
  await journaled(s, before);
  await assertSettled(farm.all);
  farm.proxyOf(c).stallStreams();
  before = journalState(s).lastTid;
  renameSync(join(s, 'beta/h'), join(s, 'alpha/b.txt'));
  await journaled(s, before);
  chmodSync(join(c, 'delta/h'), 0o600);
  const why = (): string => JSON.stringify(farm.logMessages(c, /refused|resync|does not apply|conflict/));
  await eventually('the server accepts the client\'s chmod', () => (statSync(join(s, 'delta/h')).mode & 0o777) === 0o600 && journalState(c).lml === 0, (v) => v, 20_000, why);
  farm.proxyOf(c).resumeStreams();
  await assertSettled(farm.all);
  for (const d of farm.all) {
    const a = statSync(join(d, 'alpha/b.txt'));
    const h = statSync(join(d, 'delta/h'));
    assert.equal(a.ino, h.ino, `${d}: alpha/b.txt and delta/h are one inode`);
    assert.equal(a.mode & 0o777, 0o600, `${d}: the chmod made through delta/h`);
    assert.equal(existsSync(join(d, 'beta/h')), false, `${d}: beta/h moved`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply/i), [], `the client never resynced: ${why()}`);
});

test('a file written on a client whose stream lags, after the server wrote it and the client\'s move of its directory was accepted: the server\'s write at the new name, the client\'s beside it', { timeout: 120_000 }, async (t) => {
  // Fails without the fix (applyForwarded (daemon/client-apply.ts) naming the record through this node's own changes the
  // server accepted after it, FilesetDb#renamesAfter): the server's "write alpha/e" met the client's pending
  // write of beta/e, and the conflict step took the record's name for the server's name now. It put the file
  // back at alpha/e, where no directory was any more (the client's `mv alpha beta` was accepted after the
  // server's write): "parent alpha does not exist here", three times, and a resync (chaos seed 9208, c3).
  const farm = await Farm.start(t, { clients: 1, proxied: true });
  const [c] = farm.clients as [string];
  const s = farm.server;
  let before = journalState(s).lastTid;
  mkdirSync(join(s, 'alpha'));
  writeFileSync(join(s, 'alpha/e'), 'made on the server\n');
  await journaled(s, before);
  await assertSettled(farm.all);
  farm.proxyOf(c).stallStreams();
  before = journalState(s).lastTid;
  writeFileSync(join(s, 'alpha/e'), 'written on the server\n');
  await journaled(s, before);
  renameSync(join(c, 'alpha'), join(c, 'beta'));
  const why = (): string => JSON.stringify(farm.logMessages(c, /refused|resync|does not apply|conflict|redo/));
  await eventually('the server accepts the client\'s move', () => existsSync(join(s, 'beta')) && journalState(c).lml === 0, (v) => v, 20_000, why);
  writeFileSync(join(c, 'beta/e'), 'written on the client\n');
  await eventually('the server refuses the client\'s write (made against the version before its own)', () => farm.logMessages(c, /reintegration refused/).length, (n) => n > 0, 20_000, why);
  farm.proxyOf(c).resumeStreams();
  await assertSettled(farm.all);
  for (const d of farm.all) {
    const files = [...treeFiles(d)].sort();
    assert.equal(files.length, 2, `${d}: beta/e and one conflict copy (${JSON.stringify(files)}; client: ${why()})`);
    assert.deepEqual(files[0], ['beta/e', 'written on the server\n'], `${d}: the server's write at beta/e`);
    assert.match(files[1]![0], /^beta\/e\.conflict-/, `${d}: the client's write beside it`);
    assert.equal(files[1]![1], 'written on the client\n', `${d}: the client's write beside it`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply/i), [], `the client never resynced: ${why()}`);
});
