// Invariant: a directory moved on a client over an empty directory (rename(2) replaces it), while the server
// moved a file into the replaced one: update beats delete, the replaced directory comes back with the file at
// its name (the client's name for it, after the client's later move of the directory above), the moved one
// goes beside with its entries, every node converges, no resync. The disconnected case with `mv a g` fails without
// the conflict step's removedParent finding the removed directory at its name now (the others pass without it,
// guards): the file went into the moved directory, on the client only (chaos s33 seed 9228, c3: mv beta/sub alpha/sub over an empty alpha/sub, mv alpha gamma, while the server
// moved delta/a.txt to alpha/sub/a.txt: "parent gamma.conflict-…/sub does not exist here", then a resync).
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, changeAway, comeBack, journaled } from '../farm.js';

for (const how of ['disconnected', 'stopped'] as const) {
  for (const above of [false, true]) {
test(`b/sub moved over an empty a/sub on a ${how} client${above ? ', then a moved to g' : ''}, the server moves t into a/sub: a/sub is back with t, b/sub beside, no resync`, { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'a/sub'), { recursive: true });
      mkdirSync(join(s, 'b/sub'), { recursive: true });
      writeFileSync(join(s, 'b/sub/f'), 'in b/sub\n');
      writeFileSync(join(s, 't'), 'moved on the server\n');
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  const steps: Array<[string, () => void]> = [['mv b/sub a/sub', () => renameSync(join(c, 'b/sub'), join(c, 'a/sub'))]];
  if (above) steps.push(['mv a g', () => renameSync(join(c, 'a'), join(c, 'g'))]);
  await changeAway(farm, c, how, steps);
  const before = journalState(s).lastTid;
  renameSync(join(s, 't'), join(s, 'a/sub/t'));
  await journaled(s, before);
  await comeBack(farm, c, how);
  await assertSettled(farm.all);
  assert.deepEqual(farm.logMessages(c, /resync|refused/i), [], 'no refusal, no resync');
  const top = above ? 'g' : 'a';
  for (const d of farm.all) {
    assert.deepEqual(readdirSync(join(d, 'b')), [], `${d}: b/sub moved out`);
    assert.deepEqual(readdirSync(join(d, top, 'sub')), ['t'], `${d}: ${top}/sub is the server's, with t`);
    assert.equal(readFileSync(join(d, top, 'sub/t'), 'utf8'), 'moved on the server\n', `${d}: t`);
    const aside = readdirSync(join(d, top)).filter((n) => n.startsWith('sub.conflict-'));
    assert.equal(aside.length, 1, `${d}: the moved directory is beside (${JSON.stringify(readdirSync(join(d, top)))})`);
    assert.equal(readFileSync(join(d, top, aside[0]!, 'f'), 'utf8'), 'in b/sub\n', `${d}: with its file`);
  }
});
  }
}
