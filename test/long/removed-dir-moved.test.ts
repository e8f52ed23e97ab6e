// Invariant: a directory the server removed or moved while a client had moved it (pending, twice when its
// daemon was down between the moves) and made a file in it ends with the client's file on every node, and
// no resync. Found by the widened chaos run (issue 11, seed 9206, client c1).
// Fails without the fix (LmlRewriter#unmoveLml), in the second case (removed on the server): the conflict step drops the
// directory's pending moves and puts it back at the server's name, but the file's create, made between the
// two moves, kept the name only the first move gave the directory (beta/sub/a.txt); the server refused it
// three times ("parent beta/sub does not exist here") and the client resynced.
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, disconnect, reconnect, assertSettled, eventually, journaled, treeFiles } from '../farm.js';

for (const [dead, serverMoves] of [[false, false], [true, false], [true, true]] as const) {
  test(`a directory ${serverMoves ? 'moved' : 'removed'} on the server, moved on a disconnected client with a new file in it${dead ? ', then moved again while its daemon was down' : ''}, keeps the file everywhere`, { timeout: 120_000 }, async (t) => {
    const farm = await Farm.start(t, { clients: 1 });
    const [c] = farm.clients as [string];
    const s = farm.server;
    let before = journalState(s).lastTid;
    mkdirSync(join(s, 'epsilon/sub'), { recursive: true });
    mkdirSync(join(s, 'beta'));
    writeFileSync(join(s, 'epsilon/sub/b.txt'), 'the server\'s b\n');
    await journaled(s, before);
    await assertSettled(farm.all);
    await disconnect(farm, c);
    renameSync(join(c, 'epsilon/sub'), join(c, 'beta/sub'));
    writeFileSync(join(c, 'beta/sub/a.txt'), 'made on the client\n');
    await eventually('the client journals its move and file', () => journalState(c).lml, (n) => n >= 2);
    if (dead) {
      await farm.stopNode(c);
      renameSync(join(c, 'beta/sub'), join(c, 'beta/deep'));
    }
    before = journalState(s).lastTid;
    if (serverMoves) renameSync(join(s, 'epsilon/sub'), join(s, 'gamma'));
    else rmSync(join(s, 'epsilon/sub'), { recursive: true });
    await journaled(s, before);
    if (dead) await farm.startNode(c);
    reconnect(c);
    const why = (): string => JSON.stringify(farm.logMessages(c, /refused|resync|does not apply|conflict/));
    await eventually('the client\'s file reaches the server', () => [...treeFiles(s).values()], (v) => v.includes('made on the client\n'), 20_000, why);
    await assertSettled(farm.all);
    for (const d of farm.all) {
      const mine = [...treeFiles(d)].filter(([, v]) => v === 'made on the client\n').map(([k]) => k);
      assert.equal(mine.length, 1, `${d}: the client's file once (${JSON.stringify(mine)})`);
    }
    assert.deepEqual(farm.logMessages(c, /resync/i), [], 'the client never resynced');
    assert.equal(journalState(c).lml, 0, 'the client\'s LML is empty');
  });
}
