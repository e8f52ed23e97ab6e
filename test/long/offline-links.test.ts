// Invariants: content a client wrote off line reaches the server under every name that still holds it, even
// when the name it was written under is gone before the client reconnects: a hard link made off line keeps
// the inode alive, and the file's create ships what that link holds. Found by the widened chaos run (issue
// 11, seed 9207: "op173 … is not on the server, nor on any node (DESTROYED)"); and a name removed off line
// stays removed when the server changed its inode through another name meanwhile, with no resync.
import assert from 'node:assert/strict';
import { linkSync, mkdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, disconnect, eventually, readOrNull, reconnect } from '../farm.js';

test('off line: create a, link b to it, rename another file over a; once connected b holds a\'s content on every node, no resync', { timeout: 120_000 }, async (t) => {
  // Fails without Reintegrator#linkedHere: the create of a shipped empty (nothing left to read at a), the
  // server's link b took that empty inode, and the client's "state differs" resync then replaced its own b
  // with the empty one: the write was lost on every node.
  const farm = await Farm.start(t, { clients: 1, prepare: (s) => { mkdirSync(join(s, 'beta')); mkdirSync(join(s, 'alpha')); } });
  const [c] = farm.clients as [string];
  await assertSettled(farm.all);
  await disconnect(farm, c);
  writeFileSync(join(c, 'beta/a.txt'), 'written off line at a\n', { flag: 'wx' });
  writeFileSync(join(c, 'beta/b.txt'), 'written off line at b\n', { flag: 'wx' });
  await eventually('the client journals both creates', () => journalState(c).lml, (n) => n >= 2);
  linkSync(join(c, 'beta/a.txt'), join(c, 'alpha/f.json'));
  await eventually('the client journals the link', () => journalState(c).lml, (n) => n >= 3);
  renameSync(join(c, 'beta/b.txt'), join(c, 'beta/a.txt'));
  await eventually('the client journals the rename over a', () => journalState(c).lml, (n) => n >= 5);
  reconnect(c);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assert.equal(readFileSync(join(d, 'alpha/f.json'), 'utf8'), 'written off line at a\n', `${d}: the link kept a's content`);
    assert.equal(readFileSync(join(d, 'beta/a.txt'), 'utf8'), 'written off line at b\n', `${d}: a is the renamed b`);
    assert.equal(statSync(join(d, 'alpha/f.json')).nlink, 1, `${d}: the link is the inode's only name now`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs/i), [], 'no resync, no refusal');
});

test('off line: a client removes f while the server links g to f and writes through g; the removal stands, g has the write, no resync', { timeout: 120_000 }, async (t) => {
  // Fails without ObjectTable#applyToObjects rebasing a removal pending here of a name in the record's
  // `links`: the server's write through g gave f a new version there, the client's removal of f (made
  // against the old one) was refused three times ("made against version …, current is …"), and the client
  // resynced (chaos seed 9202).
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => writeFileSync(join(s, 'f'), 'one name yet\n'),
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await disconnect(farm, c);
  unlinkSync(join(c, 'f'));
  await eventually('the client journals the removal', () => journalState(c).lml, (n) => n >= 1);
  const before = journalState(s).lastTid;
  linkSync(join(s, 'f'), join(s, 'g'));
  await eventually('the server journals its link', () => journalState(s).lastTid, (tid) => tid > before);
  const linked = journalState(s).lastTid;
  writeFileSync(join(s, 'g'), 'written on the server through g\n');
  await eventually('the server journals its write', () => journalState(s).lastTid, (tid) => tid > linked);
  reconnect(c);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assert.equal(readOrNull(join(d, 'f')), null, `${d}: f removed`);
    assert.equal(readFileSync(join(d, 'g'), 'utf8'), 'written on the server through g\n', `${d}: g has the server's write`);
  }
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs/i), [], 'no resync, no refusal');
});
