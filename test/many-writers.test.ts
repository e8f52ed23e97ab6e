// Invariant: with the default `--token-scope none`, independent changes from different clients never wait on
// each other's write token (no recall, no TOKEN_BUSY, no token held), and every change still reaches every node;
// two clients changing the same file at the same moment still end in a conflict handled by the conflict policy
// (keep-both: a conflict copy), with neither write lost (issue 19, item 6).
// Fails without the change: the first test, on d25e364 (fileset tokens by default), where the server recalls the
// fileset's token from one writer for the next, and a writer holds it ("write tokens held: the whole fileset").
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readStatusFile } from '#daemon/status-file.js';
import { Farm, assertSettled, conflictCopies, statusJson, treeFiles } from './farm.js';
import { sleep } from './helpers.js';

const DIR = 'orders';

test('writers on three clients at once: none waits on another\'s token, every file arrives everywhere', { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, { clients: 3, prepare: (s) => mkdirSync(join(s, DIR)) });
  // Three rounds, each client writing ten orders in the same moment as the others.
  const want = new Map<string, string>();
  for (let round = 0; round < 3; round++) {
    for (let n = 0; n < 10; n++) {
      for (const [i, c] of farm.clients.entries()) {
        const name = `${DIR}/c${i}-${round}-${n}.txt`;
        writeFileSync(join(c, name), `order ${round}/${n} from client ${i}\n`);
        want.set(name, `order ${round}/${n} from client ${i}\n`);
      }
    }
    await sleep(150);
  }
  await assertSettled(farm.all, 60_000);
  for (const d of farm.all) {
    const files = treeFiles(d);
    for (const [name, content] of want) assert.equal(files.get(name), content, `${d}: ${name}`);
  }
  await sleep(1100); // the server's status file is written every second
  const server = (readStatusFile(join(farm.server, '.intermezzo/default/status.json'))?.server ?? {}) as { recalls?: number };
  assert.equal(server.recalls, 0, 'the server recalled no token');
  assert.deepEqual((statusJson(farm.server).server as { tokens: unknown[] }).tokens, [], 'the server granted no token');
  for (const c of farm.clients) {
    assert.deepEqual((statusJson(c).client as { tokensHeld: string[] }).tokensHeld, [], `${c} holds no token`);
    assert.deepEqual(farm.logMessages(c, /token|TOKEN_BUSY/), [], `${c} logged no token wait`);
    assert.equal(farm.log(c).includes('TOKEN_BUSY'), false, `${c}: no TOKEN_BUSY in its log`);
  }
  assert.deepEqual(farm.logMessages(farm.server, /token recalled/), []);
});

test('two clients writing the same files at the same moment: a conflict copy each, nothing lost', { timeout: 120_000 }, async (t) => {
  const names = ['a', 'b', 'c', 'd'].map((x) => `${DIR}/${x}.txt`);
  const farm = await Farm.start(t, {
    clients: 2,
    prepare: (s) => {
      mkdirSync(join(s, DIR));
      for (const n of names) writeFileSync(join(s, n), 'first\n');
    },
  });
  const [a, b] = farm.clients as [string, string];
  // Both writes in the same tick: neither client can have seen the other's before it wrote its own.
  for (const n of names) {
    writeFileSync(join(a, n), `${n} from A\n`);
    writeFileSync(join(b, n), `${n} from B\n`);
  }
  await assertSettled(farm.all, 60_000);
  for (const d of farm.all) {
    const copies = conflictCopies(d, DIR);
    for (const n of names) {
      const base = n.slice(DIR.length + 1, -'.txt'.length);
      const mine = copies.filter((c) => c.startsWith(`${DIR}/${base}.`));
      const contents = [readFileSync(join(d, n), 'utf8'), ...mine.map((c) => readFileSync(join(d, c), 'utf8'))].sort();
      assert.deepEqual(contents, [`${n} from A\n`, `${n} from B\n`], `${d}: ${n} and its conflict copy hold both writes (${mine.join(', ')})`);
    }
  }
});
