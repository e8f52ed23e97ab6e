// Invariant: a change made here through a name that is then removed here reaches every name the server links
// to that inode, here too. Chaos s53 seed 9244, c3: off line, the client changed the mode of alpha/deep/h and
// removed it; the server (its daemon down) linked alpha/h to alpha/deep/h. Back on line, the client applied
// the link first, as a file of its own (its target removed here) with the server's mode of then, and sent
// its chmod and removal: the server set the mode of the inode, alpha/h with it, and the client's alpha/h kept
// the old one. The journals differed ("alpha/h: other mode"), and the client resynced.
//
// The chmod case fails without the fix (ownChangeThroughRemoved (daemon/client-own.ts)): "state differs", a resync.
import assert from 'node:assert/strict';
import { chmodSync, linkSync, lstatSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Farm, assertSettled, changeAway, comeBack, journaled } from '../farm.js';
import { journalState } from '../helpers.js';

const cases = [
  { what: 'chmod 600', change: (p: string) => chmodSync(p, 0o600), mode: 0o600, content: 'made on the server\n' },
  // A guard (passes without the fix): the written content went with the removal here before it could be sent
  // (nothing here holds it), so the server's f keeps what it held, on every node, with no resync.
  { what: 'a write', change: (p: string) => writeFileSync(p, 'written on the client, then removed\n'), mode: 0o644, content: 'made on the server\n' },
];

for (const k of cases) {
  test(`off line, ${k.what} of c and its removal; the server links f to c: f takes the change here too`, { timeout: 120_000 }, async (t) => {
    const farm = await Farm.start(t, { clients: 1, prepare: (s) => writeFileSync(join(s, 'c'), 'made on the server\n', { mode: 0o644 }) });
    const [c] = farm.clients as [string];
    const s = farm.server;
    await assertSettled(farm.all);
    await changeAway(farm, c, 'disconnected', [
      [k.what, () => k.change(join(c, 'c'))],
      ['the removal', () => unlinkSync(join(c, 'c'))],
    ]);
    const before = journalState(s).lastTid;
    linkSync(join(s, 'c'), join(s, 'f'));
    await journaled(s, before);
    await comeBack(farm, c, 'disconnected');
    await assertSettled(farm.all);
    for (const d of farm.all) {
      assert.equal(lstatSync(join(d, 'f')).mode & 0o777, k.mode, `${d}: f's mode`);
      assert.equal(readFileSync(join(d, 'f'), 'utf8'), k.content, `${d}: f's content`);
    }
    assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs/i), [], 'no resync');
  });
}
