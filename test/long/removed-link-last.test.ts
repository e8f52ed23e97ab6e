// Invariant: update beats delete, through hard links too. A client removes a name of a hard-linked file while
// away; meanwhile the server writes the file through its other name and then removes that name, so the name the
// client removed is the last one holding the write. The write survives at that name on every node, with no
// resync (and the directory too, when the client removed it as well).
//
// Tests 2 and 4 fail without ConflictResolver#restoreRemoved bringing the removed directory back first: the step
// gave up when the name's directory was gone here, the server refused the removal three times (update beats
// delete), and the client resynced (chaos s53 seed 9242, c1: beta/deep/d.md).
//
// Tests 5 and 6 (the client moves x to y after the removal) fail without the step placing the name where its
// directory is here now (FilesetDb#nameAfter): it looked for x, gave up, and the client resynced (chaos s70 seed
// 9242, c1: beta/deep/d.md, then `mv beta/deep alpha/sub`).
import assert from 'node:assert/strict';
import { existsSync, linkSync, mkdirSync, renameSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { Farm, assertSettled, changeAway, comeBack, journaled, readOrNull, type Away } from '../farm.js';
import { journalState } from '../helpers.js';

/**
 * The scenario's start and middle: a on the server, x/d linked to it on the client, which then makes `steps`
 * while away (`how`); the server writes a, then removes it; the client comes back and every node settles.
 */
async function linkedAway(t: TestContext, how: Away, steps: (c: string) => ReadonlyArray<readonly [string, () => void]>): Promise<{ farm: Farm; c: string }> {
  const farm = await Farm.start(t, { clients: 1, prepare: (s) => {
    writeFileSync(join(s, 'a'), 'made on the server\n');
    mkdirSync(join(s, 'x'));
  } });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  linkSync(join(c, 'a'), join(c, 'x', 'd'));
  await assertSettled(farm.all);
  await changeAway(farm, c, how, steps(c));
  const onServer = async (step: () => void): Promise<void> => {
    const before = journalState(s).lastTid;
    step();
    await journaled(s, before);
  };
  await onServer(() => writeFileSync(join(s, 'a'), 'written on the server through a\n'));
  await onServer(() => unlinkSync(join(s, 'a')));
  await comeBack(farm, c, how);
  await assertSettled(farm.all);
  return { farm, c };
}

for (const how of ['disconnected', 'stopped'] as const) {
  for (const dirToo of [false, true]) {
    test(`${how}: the client removes x/d${dirToo ? ' and x' : ''}, a link of a; the server writes a, then removes a; x/d keeps the write`, { timeout: 120_000 }, async (t) => {
      const { farm, c } = await linkedAway(t, how, (c) => [
        ['the removal', () => unlinkSync(join(c, 'x', 'd'))],
        ...(dirToo ? [['the rmdir', () => rmdirSync(join(c, 'x'))] as const] : []),
      ]);
      for (const d of farm.all) assert.equal(readOrNull(join(d, 'x', 'd')), 'written on the server through a\n', `${d}: x/d keeps the server's write`);
      assert.deepEqual(farm.logMessages(c, /resyncing|does not apply/i), [], 'no resync');
    });
  }
}

for (const how of ['disconnected', 'stopped'] as const) {
  test(`${how}: the client removes x/d, a link of a, then moves x to y; the server writes a, then removes a; y/d keeps the write`, { timeout: 120_000 }, async (t) => {
    const { farm, c } = await linkedAway(t, how, (c) => [
      ['the removal', () => unlinkSync(join(c, 'x', 'd'))],
      ['the move', () => renameSync(join(c, 'x'), join(c, 'y'))],
    ]);
    for (const d of farm.all) {
      assert.equal(readOrNull(join(d, 'y', 'd')), 'written on the server through a\n', `${d}: y/d keeps the server's write`);
      assert.equal(existsSync(join(d, 'x')), false, `${d}: x moved to y`);
    }
    assert.deepEqual(farm.logMessages(c, /resyncing|does not apply/i), [], 'no resync');
  });
}
