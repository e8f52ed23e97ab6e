// Invariant: a client groups the names of an inode as the server does. The state digest does not see link
// groups: names apart here and one file on the server stay so for good.
//
// Fails without ApplyPath noting that a write replaced the inode a name removed here lives on in
// (FilesetDb#inodeReplaced for a file of one name, not only for one of several): chaos s49 seed 9255, c2. Off
// line, the client removed c; the server linked f to c, wrote f, and linked h to c. The client placed f as a
// file of its own (c gone here) and noted that c's inode is f's; the write gave f a new inode and the note
// kept the old one, so h was placed as a file of its own too: f and h one file on the server, two here.
import assert from 'node:assert/strict';
import { linkSync, lstatSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Farm, assertSettled, changeAway, comeBack, journaled } from '../farm.js';
import { journalState } from '../helpers.js';

/** The files of the node at `dir` (top level), grouped by inode: each group's names sorted, the groups sorted. */
function groups(dir: string): string[] {
  const byIno = new Map<number, string[]>();
  for (const n of readdirSync(dir).filter((x) => !x.startsWith('.')).sort()) {
    const st = lstatSync(join(dir, n));
    if (st.isFile()) byIno.set(st.ino, [...(byIno.get(st.ino) ?? []), n]);
  }
  return [...byIno.values()].map((g) => g.join(' ')).sort();
}

for (const how of ['disconnected', 'stopped'] as const) {
  test(`${how}: remove c; the server links f to c, writes f, links h to c; f and h are one file everywhere`, { timeout: 120_000 }, async (t) => {
    const farm = await Farm.start(t, { clients: 1, prepare: (s) => writeFileSync(join(s, 'c'), 'made on the server\n') });
    const [c] = farm.clients as [string];
    const s = farm.server;
    await assertSettled(farm.all);
    await changeAway(farm, c, how, [['the removal', () => unlinkSync(join(c, 'c'))]]);
    const onServer = async (step: () => void): Promise<void> => {
      const before = journalState(s).lastTid;
      step();
      await journaled(s, before);
    };
    await onServer(() => linkSync(join(s, 'c'), join(s, 'f')));
    await onServer(() => writeFileSync(join(s, 'f'), 'written on the server through f\n'));
    await onServer(() => linkSync(join(s, 'c'), join(s, 'h')));
    await comeBack(farm, c, how);
    await assertSettled(farm.all);
    assert.deepEqual(groups(s), ['f h'], 'the server: c removed, f and h one file');
    assert.deepEqual(groups(c), groups(s), 'the client groups the names as the server does');
    assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs/i), [], 'no resync');
  });
}
