// Invariant: a disconnected client that made a directory, made a file in it and moved the file out, then
// renamed another directory over the emptied one, while the server made a directory at that name, ends
// with every file once on every node and no resync. Found by the widened chaos run (issue 11, seed 9216,
// client c3). Fails without the fix (the LML optimiser's folded create takes its last move's directory,
// RecordDraft.parent, and FilesetDb#rewriteLml keeps it): the create of e and its move out folded into
// "create epsilon/d.md" that still named sub's fid as its directory, so the server made sub/d.md; the
// client's rmdir of sub was refused ("directory is not empty here") and, with the server making sub too,
// a conflict copy and a resync followed.
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from './helpers.js';
import { Farm, disconnect, reconnect, assertSettled, eventually, journaled, treeFiles } from './farm.js';

for (const serverMakes of [false, true]) {
  test(`a directory renamed off line over an emptied one keeps every file${serverMakes ? ', the server making that name meanwhile' : ''}`, { timeout: 120_000 }, async (t) => {
    const farm = await Farm.start(t, { clients: 1 });
    const [c] = farm.clients as [string];
    const s = farm.server;
    let before = journalState(s).lastTid;
    mkdirSync(join(s, 'epsilon'));
    await journaled(s, before);
    await assertSettled(farm.all);
    await disconnect(farm, c);
    mkdirSync(join(c, 'epsilon/sub'));
    writeFileSync(join(c, 'epsilon/sub/e'), 'made in sub, moved out\n');
    await eventually('the client journals sub and e', () => journalState(c).lml, (n) => n >= 2);
    renameSync(join(c, 'epsilon/sub/e'), join(c, 'epsilon/d.md'));
    mkdirSync(join(c, 'gamma'));
    writeFileSync(join(c, 'gamma/h'), 'made in gamma\n');
    await eventually('the client journals the move, gamma and h', () => journalState(c).lml, (n) => n >= 5);
    renameSync(join(c, 'gamma'), join(c, 'epsilon/sub')); // over the empty directory
    await eventually('the client journals the move over sub', () => journalState(c).lml, (n) => n >= 6);
    if (serverMakes) {
      before = journalState(s).lastTid;
      mkdirSync(join(s, 'epsilon/sub'));
      writeFileSync(join(s, 'epsilon/sub/theirs'), 'made on the server\n');
      await journaled(s, before);
    }
    reconnect(c);
    const why = (): string => JSON.stringify(farm.logMessages(c, /refused|resync|does not apply|conflict/));
    await eventually('the client\'s files reach the server', () => [...treeFiles(s).values()], (v) => v.includes('made in gamma\n') && v.includes('made in sub, moved out\n'), 20_000, why);
    await assertSettled(farm.all);
    for (const d of farm.all) {
      const files = treeFiles(d);
      for (const want of ['made in sub, moved out\n', 'made in gamma\n', ...(serverMakes ? ['made on the server\n'] : [])]) {
        const at = [...files].filter(([, v]) => v === want).map(([k]) => k);
        assert.equal(at.length, 1, `${d}: ${JSON.stringify(want)} once (${JSON.stringify(at)})`);
      }
      assert.equal(files.get('epsilon/d.md'), 'made in sub, moved out\n', `${d}: epsilon/d.md`);
    }
    assert.deepEqual(farm.logMessages(c, /resync/i), [], `the client never resynced: ${why()}`);
    assert.equal(journalState(c).lml, 0, 'the client\'s LML is empty');
  });
}
