// Invariant: a directory the server removes while a disconnected client has pending records that give names in it
// (a file made there, a file moved in and out again, a hard link made there and removed) ends with the client's
// changes on every node, nothing lost, and no resync: the conflict step names them beside the directory, as it does
// with what the directory still holds, and the server accepts them.
// Found by the chaos run (s21): seeds 9203 (c3) and 9212 (c2), 9215 (c2), 9205 (c1): "reint local change refused
// by the server; resyncing, the local version is kept beside | conflict on P: parent D does not exist here".
// Fails without the fix (LmlRewriter#moveLml across directories, the conflict step's emptyForRmdir for what left the
// directory): each case's record naming D was refused three times and the client resynced the whole fileset.
import assert from 'node:assert/strict';
import { linkSync, mkdirSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, disconnect, eventually, journaled, reconnect, treeFiles } from '../farm.js';

/** A farm with d/sub (and d/x) on every node, the client disconnected. */
async function setUp(t: TestContext): Promise<{ farm: Farm; c: string; s: string }> {
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'd/sub'), { recursive: true });
      writeFileSync(join(s, 'd/x'), 'the server\'s x\n');
    },
  });
  const [c] = farm.clients as [string];
  await assertSettled(farm.all);
  await disconnect(farm, c);
  return { farm, c, s: farm.server };
}

/** One local change on the client, journaled before the next. */
async function step(c: string, change: () => void): Promise<void> {
  const before = journalState(c).lml;
  change();
  await eventually('the client journals its change', () => journalState(c).lml, (n) => n > before);
}

/** The server removes d/sub; the client comes back; every node settles with no resync on the client. */
async function removeAndReconnect(farm: Farm, c: string, s: string, until: (files: Map<string, string>) => boolean): Promise<() => string> {
  const before = journalState(s).lastTid;
  rmSync(join(s, 'd/sub'), { recursive: true });
  await journaled(s, before);
  reconnect(c);
  const why = (): string => JSON.stringify(farm.logMessages(c, /refused|resync|does not apply|conflict/));
  await eventually('the client\'s changes reach the server', () => treeFiles(s), until, 20_000, why);
  await assertSettled(farm.all);
  assert.deepEqual(farm.logMessages(c, /resync/i), [], `the client never resynced: ${why()}`);
  assert.equal(journalState(c).lml, 0, 'the client\'s LML is empty');
  return why;
}

test('a file made in d/sub by a disconnected client that then moved d to e, d/sub removed on the server: the file is kept beside it, in e, everywhere', { timeout: 120_000 }, async (t) => {
  // Seeds 9203 (c3) and 9212 (c2): the conflict step moved e/sub/a.txt beside e/sub, but the create, made before the
  // move of d, still named d/sub/a.txt: the LML's names older than a pending rename of a directory above were
  // rewritten only for a move within one directory.
  const { farm, c, s } = await setUp(t);
  await step(c, () => writeFileSync(join(c, 'd/sub/a.txt'), 'made on the client\n'));
  await step(c, () => renameSync(join(c, 'd'), join(c, 'e')));
  const why = await removeAndReconnect(farm, c, s, (f) => [...f.values()].includes('made on the client\n'));
  for (const d of farm.all) {
    const files = [...treeFiles(d)];
    const mine = files.filter(([, v]) => v === 'made on the client\n').map(([k]) => k);
    assert.equal(mine.length, 1, `${d}: the client's file once (${JSON.stringify(files)}; client: ${why()})`);
    assert.match(mine[0]!, /^e\/a\.conflict-[0-9a-f]+-[0-9a-f]+\.txt$/, `${d}: beside the removed directory, in e`);
    assert.ok(files.some(([k, v]) => k === 'e/x' && v === 'the server\'s x\n'), `${d}: e/x (${JSON.stringify(files)})`);
  }
});

test('a file a disconnected client moved into d/sub and on out of it, d/sub removed on the server: the file ends where the client moved it, everywhere', { timeout: 120_000 }, async (t) => {
  // Seed 9215 (c2): the rename into d/sub (not folded with the next, a directory made in between) still named
  // d/sub once the server had removed it, and nothing was left in d/sub for the conflict step to move beside it.
  const { farm, c, s } = await setUp(t);
  await step(c, () => renameSync(join(c, 'd/x'), join(c, 'd/sub/y')));
  await step(c, () => mkdirSync(join(c, 'e')));
  await step(c, () => renameSync(join(c, 'd/sub/y'), join(c, 'e/y')));
  const why = await removeAndReconnect(farm, c, s, (f) => f.get('e/y') === 'the server\'s x\n');
  for (const d of farm.all) assert.deepEqual([...treeFiles(d)], [['e/y', 'the server\'s x\n']], `${d}: e/y alone (client: ${why()})`);
});

test('a hard link a disconnected client made in d/sub and removed again, d/sub removed on the server: nothing of it is left, and nothing else changes', { timeout: 120_000 }, async (t) => {
  // Seed 9205 (c1): the link (left as journaled by the optimiser: hard links are) named d/sub for ever.
  const { farm, c, s } = await setUp(t);
  await step(c, () => linkSync(join(c, 'd/x'), join(c, 'd/sub/l')));
  await step(c, () => unlinkSync(join(c, 'd/sub/l')));
  const why = await removeAndReconnect(farm, c, s, () => journalState(c).lml === 0);
  for (const d of farm.all) assert.deepEqual([...treeFiles(d)], [['d/x', 'the server\'s x\n']], `${d}: d/x alone (client: ${why()})`);
});
