// Invariant: a hard link made off line whose target the server removed meanwhile goes to the server as a file of
// its own with the mode its name has here when sent, and its pending writes keep that mode: the server's entry
// has this node's mode, and no node resyncs.
//
// From chaos s71 seed 9274, c3 (s70 9244 and s69 9256 alike): off line, c3 linked alpha/f.json to beta/sub/g.txt,
// wrote through alpha/f.json, then chmodded the inode (journaled once, for the name it was seen through; the
// rows of the inode's other names took the mode). The server had removed the target, so the link went as a file
// of its own, with the mode of now; the write after it went with the mode of when it was journaled and set the
// old mode again on the server. "state differs … alpha/f.json: other mode", a resync.
//
// Fails without Reintegrator#withAttrsOfNow (the last pending record of an object that says its attributes
// carries those its row has when sent): the server's a was 0644, the client's 0664, and the client resynced. The
// third case (a move after the write; a move says no attributes, both ends keep the object's) failed the same
// way while the move counted as that last record.
import assert from 'node:assert/strict';
import { appendFileSync, chmodSync, linkSync, lstatSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Farm, assertSettled, disconnect, journaled, journaledHere, reconnect } from '../farm.js';
import { journalState } from '../helpers.js';

for (const [through, moved] of [['g', false], ['a', false], ['g', true]] as const) {
  const then = moved ? ', then mv a b' : '';
  const name = moved ? 'b' : 'a';
  test(`off line: link a to g, append through a, chmod through ${through}${then}; the server removes g: ${name} keeps its mode everywhere, no resync`, { timeout: 120_000 }, async (t) => {
    const farm = await Farm.start(t, { clients: 1, prepare: (s) => writeFileSync(join(s, 'g'), 'made on the server\n', { mode: 0o644 }) });
    const [c] = farm.clients as [string];
    const s = farm.server;
    await assertSettled(farm.all);
    await disconnect(farm, c);
    await journaledHere(c, 'the link', () => linkSync(join(c, 'g'), join(c, 'a')));
    await journaledHere(c, 'the append', () => appendFileSync(join(c, 'a'), 'appended on the client through a\n'));
    await journaledHere(c, 'the chmod', () => chmodSync(join(c, through), 0o664));
    // A move carries no attributes (both ends keep the object's): the write before it is the last to say them.
    if (moved) await journaledHere(c, 'the move', () => renameSync(join(c, 'a'), join(c, 'b')));
    const before = journalState(s).lastTid;
    rmSync(join(s, 'g'));
    await journaled(s, before);
    reconnect(c);
    await assertSettled(farm.all, 40_000);
    for (const dir of farm.all) assert.equal(lstatSync(join(dir, name)).mode & 0o7777, 0o664, `${name}'s mode on ${dir}`);
    assert.deepEqual(farm.logMessages(c, /resyncing/), [], 'the client never resynced');
  });
}
