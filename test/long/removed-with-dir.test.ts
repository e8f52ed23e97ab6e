// Invariant: an object a client removed off line together with its directory (`rm -r d`), while the server
// moved the object out of that directory (`mv d/x y`), comes back at the server's new name on the client
// (update beats delete), the directory's removal ships, every node ends the same, and no resync follows.
// Found by the chaos run (s21: seed 9201 c2, a directory, TID 0x32; seed 9202 c3, a symlink, TID 0xca;
// seed 9213 c1, a symlink in a directory moved, then removed, off line, TID 0x18).
// Fails without the fix (the conflict step's objectStep): the conflict step dropped the object's pending removal, then
// made it again at the record's old name, inside the directory removed here ("ENOENT … mkdir d/x"); the record
// did not apply, and the retries found neither the object nor its removal ("object … does not exist here"),
// three times: the client resynced.
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, disconnect, eventually, journaled, reconnect } from '../farm.js';

type Kind = 'symlink' | 'dir' | 'file';

for (const [kind, movedFirst] of [['symlink', false], ['dir', false], ['file', false], ['symlink', true], ['dir', true]] as Array<[Kind, boolean]>) {
  test(`a ${kind} removed on a client off line with its directory${movedFirst ? ' (moved first)' : ''}, moved out of it on the server, is back at the server's name, no resync`, { timeout: 120_000 }, async (t) => {
    const farm = await Farm.start(t, {
      clients: 1,
      prepare: (s) => {
        mkdirSync(join(s, 'd'));
        mkdirSync(join(s, 'y'));
        writeFileSync(join(s, 'd/other'), 'another file of d\n');
        if (kind === 'symlink') symlinkSync('../y/t', join(s, 'd/x'));
        if (kind === 'file') writeFileSync(join(s, 'd/x'), 'the server\'s x\n');
        if (kind === 'dir') {
          mkdirSync(join(s, 'd/x'));
          writeFileSync(join(s, 'd/x/in'), 'in x\n');
        }
      },
    });
    const [c] = farm.clients as [string];
    const s = farm.server;
    await assertSettled(farm.all);
    await disconnect(farm, c);
    if (movedFirst) {
      mkdirSync(join(c, 'e'));
      renameSync(join(c, 'd'), join(c, 'e/d'));
      await eventually('the client journals its move', () => journalState(c).lml, (n) => n >= 2);
      rmSync(join(c, 'e'), { recursive: true });
    } else {
      rmSync(join(c, 'd'), { recursive: true });
    }
    await eventually('the client journals its removals', () => journalState(c).lml, (n) => n >= 3);
    const before = journalState(s).lastTid;
    renameSync(join(s, 'd/x'), join(s, 'y/x'));
    await journaled(s, before);
    reconnect(c);
    await assertSettled(farm.all);
    assert.deepEqual(farm.logMessages(c, /resync|does not apply|stream lost/i), [], 'no resync, no refusal');
    for (const d of farm.all) {
      assert.throws(() => lstatSync(join(d, 'd')), /ENOENT/, `${d}: d removed (the client's removal shipped)`);
      if (kind === 'symlink') assert.equal(readlinkSync(join(d, 'y/x')), '../y/t', `${d}: y/x is the symlink`);
      if (kind === 'file') assert.equal(readFileSync(join(d, 'y/x'), 'utf8'), 'the server\'s x\n', `${d}: y/x is the server's file`);
      if (kind === 'dir') assert.ok(lstatSync(join(d, 'y/x')).isDirectory(), `${d}: y/x is the directory`);
    }
    assert.equal(journalState(c).lml, 0, 'the client\'s LML is empty');
  });
}

test('a file moved out of its directory on a client off line, the directory then removed, and moved elsewhere on the server, ends at the server\'s name, no resync', { timeout: 120_000 }, async (t) => {
  // The same step for an object that is still here, at another name: it goes straight to the server's new name
  // (keep-both keeps the server's name of a file renamed on both sides). Before, it was moved back into the
  // removed directory (ENOENT), its move dropped; the next try moved it (nothing pending) after a failed try.
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'd'));
      mkdirSync(join(s, 'y'));
      writeFileSync(join(s, 'd/x'), 'the server\'s x\n');
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await disconnect(farm, c);
  renameSync(join(c, 'd/x'), join(c, 'z'));
  rmSync(join(c, 'd'), { recursive: true });
  await eventually('the client journals its move and removal', () => journalState(c).lml, (n) => n >= 2);
  const before = journalState(s).lastTid;
  renameSync(join(s, 'd/x'), join(s, 'y/x'));
  await journaled(s, before);
  reconnect(c);
  await assertSettled(farm.all);
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|stream lost/i), [], 'no resync, no refusal');
  for (const d of farm.all) {
    assert.throws(() => lstatSync(join(d, 'd')), /ENOENT/, `${d}: d removed (the client's removal shipped)`);
    assert.equal(readFileSync(join(d, 'y/x'), 'utf8'), 'the server\'s x\n', `${d}: y/x is the file`);
  }
  assert.equal(journalState(c).lml, 0, 'the client\'s LML is empty');
});
