// Invariant: a client's removal of one name of a hard-linked file never destroys content its client never saw.
// The server takes the removal of one name of an inode that keeps another there, whatever changed the inode's
// content since (that content lives on under the other names); the removal of the inode's last name there,
// made against an older version, is refused, and the client's conflict step brings the server's content back
// (update beats delete): at the name, or beside it when another object holds the name here. No resync.
//
// Chaos seed 9206 ("DESTROYED", op138): alpha/f.json and epsilon/g.txt one inode; c1, off line, renamed
// epsilon/c over epsilon/g.txt (the inode kept alpha/f.json there); the server wrote through alpha/f.json
// (0x48, links both names), then removed alpha/f.json (0x4a): its write lived on at epsilon/g.txt only. c1,
// back, applied 0x48, which gave its pending removal of epsilon/g.txt that version (FilesetDb, "a change of
// content does not meet a removal of one name"), then 0x4a; the server took the removal as made against its
// current version (0x65), and the write was gone on every node. The first two tests fail without the fix
// (the removal keeping the version it was made against, ApplyPath#baseOf, ConflictResolver#restoreRemoved):
// the first as in the chaos run (off line), the second with the removal sent before the client's record stream
// brought the server's write and removal (held by its proxy), so it is refused first, then taken once the
// stream brought them. The third (the server keeps the other name: the removal is taken, nothing comes back)
// passed before too: the server takes the removal whatever version it was made against.
import assert from 'node:assert/strict';
import { existsSync, linkSync, mkdirSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, disconnect, eventually, journaled, readOrNull, reconnect, treeFiles } from '../farm.js';

const OLD = 'written before the removal\n';
const NEW = 'op138: written on the server through the other name\n';
const MOVED = 'epsilon/c, renamed over epsilon/g.txt\n';

/** A farm whose server holds alpha/f.json and epsilon/g.txt as one inode, and epsilon/c; settled. */
async function start(t: TestContext, proxied: boolean): Promise<{ farm: Farm; c: string; s: string }> {
  const farm = await Farm.start(t, { clients: 1, proxied });
  const [c] = farm.clients as [string];
  const s = farm.server;
  let before = journalState(s).lastTid;
  mkdirSync(join(s, 'alpha'));
  mkdirSync(join(s, 'epsilon'));
  writeFileSync(join(s, 'alpha/f.json'), OLD);
  writeFileSync(join(s, 'epsilon/c'), MOVED);
  await journaled(s, before);
  before = journalState(s).lastTid;
  linkSync(join(s, 'alpha/f.json'), join(s, 'epsilon/g.txt'));
  await journaled(s, before);
  await assertSettled(farm.all);
  assert.equal(statSync(join(c, 'alpha/f.json')).ino, statSync(join(c, 'epsilon/g.txt')).ino, 'one inode on the client');
  return { farm, c, s };
}

/** The server writes through alpha/f.json (in place: both names), then removes alpha/f.json unless told not to. */
async function serverWritesAndRemoves(s: string, remove = true): Promise<void> {
  let before = journalState(s).lastTid;
  writeFileSync(join(s, 'alpha/f.json'), NEW);
  await journaled(s, before);
  if (!remove) return;
  before = journalState(s).lastTid;
  unlinkSync(join(s, 'alpha/f.json'));
  await journaled(s, before);
}

/** Every node holds the same files; returns the server's. */
function sameFiles(farm: Farm): Map<string, string> {
  const want = treeFiles(farm.server);
  for (const d of farm.clients) assert.deepEqual(treeFiles(d), want, `${d}: the server's files`);
  return want;
}

test('off line, a client renames a file over one name of a hard link; the server writes through the other name and removes it: the write lives on every node, beside the name', { timeout: 120_000 }, async (t) => {
  const { farm, c, s } = await start(t, false);
  await disconnect(farm, c);
  renameSync(join(c, 'epsilon/c'), join(c, 'epsilon/g.txt')); // the inode keeps alpha/f.json here
  await eventually('the client journals the rename over epsilon/g.txt', () => journalState(c).lml, (n) => n >= 2);
  await serverWritesAndRemoves(s);
  reconnect(c);
  await assertSettled(farm.all);
  const files = sameFiles(farm);
  assert.equal(files.get('epsilon/g.txt'), MOVED, `the client's renamed file has the name: ${JSON.stringify([...files])}`);
  assert.equal(files.has('alpha/f.json'), false, 'the server\'s removal of alpha/f.json stands');
  assert.equal(files.has('epsilon/c'), false, 'epsilon/c was renamed');
  const kept = [...files].filter(([, v]) => v === NEW).map(([k]) => k);
  assert.equal(kept.length, 1, `the server's write lives on, once: ${JSON.stringify([...files])}`);
  assert.match(kept[0]!, /^epsilon\/g\.conflict-[0-9a-f]+-[0-9a-f]+\.txt$/, 'beside epsilon/g.txt');
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs/i), [], 'no resync');
});

test('a client removes one name of a hard link while its record stream lags; the server wrote through the other name and removed it: the write comes back at the name on every node', { timeout: 120_000 }, async (t) => {
  const { farm, c, s } = await start(t, true);
  farm.proxyOf(c).stallStreams();
  await serverWritesAndRemoves(s);
  unlinkSync(join(c, 'epsilon/g.txt'));
  const why = (): string => JSON.stringify(farm.logMessages(c, /refused|resync|does not apply|conflict/));
  // Sent and refused: made against the version before the write, and the name is the inode's last there.
  await eventually('the server refuses the client\'s removal', () => farm.logMessages(c, /reintegration refused/).length, (n) => n >= 1, 20_000, why);
  assert.equal(readOrNull(join(s, 'epsilon/g.txt')), NEW, 'the server still holds the write');
  farm.proxyOf(c).resumeStreams();
  await assertSettled(farm.all);
  const files = sameFiles(farm);
  assert.equal(files.get('epsilon/g.txt'), NEW, `the server's write is back at epsilon/g.txt: ${JSON.stringify([...files])}`);
  assert.equal(files.has('alpha/f.json'), false, 'the server\'s removal of alpha/f.json stands');
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs/i), [], `no resync: ${why()}`);
});

test('off line, a client removes one name of a hard link the server writes through the other name: the removal is taken, the write stays at the other name', { timeout: 120_000 }, async (t) => {
  const { farm, c, s } = await start(t, false);
  await disconnect(farm, c);
  unlinkSync(join(c, 'epsilon/g.txt'));
  await eventually('the client journals the removal', () => journalState(c).lml, (n) => n >= 1);
  await serverWritesAndRemoves(s, false);
  reconnect(c);
  await assertSettled(farm.all);
  const files = sameFiles(farm);
  assert.equal(files.get('alpha/f.json'), NEW, 'the write at the name the server kept');
  assert.equal(existsSync(join(s, 'epsilon/g.txt')), false, 'the client\'s removal of epsilon/g.txt taken');
  assert.equal([...files.values()].filter((v) => v === NEW).length, 1, 'no copy of it');
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs|conflict/i), [], 'no resync, no conflict');
});
