// Invariant: a directory moved out on a client, the directory it was in removed there and its name given to
// another directory (moved there), while the server moved the first directory elsewhere: one move wins, the
// directory with its entries is in one place on every node, no resync. Fails without the fix in
// the conflict step's objectStep (the server's old name of the directory was taken for a place here by name, in
// the other directory: the directory went back there and the server's move became one onto itself, "a
// directory cannot move inside itself", three times, then a resync; chaos s32 seed 9229, c2).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, renameSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, changeAway, comeBack, journaled } from '../farm.js';

for (const how of ['disconnected', 'stopped'] as const) {
test(`e/sub moved to g on a ${how} client, e removed there and d moved to e, the server moves e/sub to d/sub: sub is in one place, no resync`, { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'e/sub'), { recursive: true });
      writeFileSync(join(s, 'e/sub/f'), 'in sub\n');
      mkdirSync(join(s, 'd'));
      writeFileSync(join(s, 'd/x'), 'in d\n');
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await changeAway(farm, c, how, [
    ['mv e/sub g', () => renameSync(join(c, 'e/sub'), join(c, 'g'))],
    ['rmdir e', () => rmdirSync(join(c, 'e'))],
    ['mv d e', () => renameSync(join(c, 'd'), join(c, 'e'))],
  ]);
  const before = journalState(s).lastTid;
  renameSync(join(s, 'e/sub'), join(s, 'd/sub'));
  await journaled(s, before);
  await comeBack(farm, c, how);
  await assertSettled(farm.all);
  assert.deepEqual(farm.logMessages(c, /resync|refused/i), [], 'no refusal, no resync');
  for (const d of farm.all) {
    assert.equal(readFileSync(join(d, 'e/x'), 'utf8'), 'in d\n', `${d}: d moved to e`);
    const at = ['g', 'e/sub'].filter((p) => existsSync(join(d, p, 'f')));
    assert.equal(at.length, 1, `${d}: sub is in one place (${JSON.stringify(at)})`);
    assert.equal(readFileSync(join(d, at[0]!, 'f'), 'utf8'), 'in sub\n', `${d}: with its file`);
  }
});
}
