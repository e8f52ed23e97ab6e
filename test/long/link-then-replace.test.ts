// Invariant: a hard link made here that reaches the server as a file of its own (the name it links to is gone
// there) carries what its name is here now, content and mode: every node ends with the same file, no resync.
//
// Both tests fail without Reintegrator#asOwnFile: off line, a client writes beta/f.json, links delta/g.txt to
// it and replaces beta/f.json (a temp file renamed over it: delta/g.txt keeps the old inode); meanwhile the
// server writes beta/f.json, chmods it 664, writes it again and removes it. On reconnection the conflict step
// keeps the write made here beside and makes beta/f.json again as a name of delta/g.txt's inode (as on the
// server), so the server's chmod goes into that inode: delta/g.txt is 664 here, in its row, with no record of
// its own. The server's removal then takes beta/f.json, and the link goes as a file of its own: a create that
// still carried the mode the link was journaled with (644). The server's delta/g.txt was 644, this node's 664:
// "state differs … delta/g.txt: other mode" and a resync (chaos seed 9207, c2: `create delta/g.txt … size 0`
// in the server's KML). Test 1: another file holds the link's target name here (the new beta/f.json), and the
// link's name is another file than it: Reintegrator#withContent sends it as a file of its own at once (before
// Reintegrator#apartHere, the server refused the link for its target twice first; the same end); test 2: the new
// beta/f.json moved away too, nothing holds the link's target name here, and it goes as a file of its own at
// once as well.
//
// Content: the server no longer holds the content of its first write (written again, then removed), so the
// conflict step places an empty stand-in, through beta/f.json, into the inode delta/g.txt shares; the write
// made here is the conflict copy beside beta/f.json, on every node.
import assert from 'node:assert/strict';
import { chmodSync, linkSync, mkdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { cli, journalState } from '../helpers.js';
import { Farm, assertSettled, conflictCopies, disconnect, eventually, journaled, reconnect } from '../farm.js';

async function linkThenReplace(t: TestContext, moveAway: boolean): Promise<void> {
  const farm = await Farm.start(t, {
    clients: 2,
    prepare: (s) => {
      mkdirSync(join(s, 'beta'));
      mkdirSync(join(s, 'delta'));
      writeFileSync(join(s, 'beta', 'f.json'), 'made on the server\n', { mode: 0o644 });
    },
  });
  const [c] = farm.clients as [string, string];
  const s = farm.server;
  await assertSettled(farm.all);
  await disconnect(farm, c);
  writeFileSync(join(c, 'beta', 'f.json'), 'written off line\n');
  await eventually('the client journals the write', () => journalState(c).lml, (n) => n >= 1);
  linkSync(join(c, 'beta', 'f.json'), join(c, 'delta', 'g.txt'));
  await eventually('the client journals the link', () => journalState(c).lml, (n) => n >= 2);
  // Replaced as editors and deploy tools do: a temp file renamed over the name. g keeps the old inode.
  writeFileSync(join(c, 'beta', '.f.json.tmp'), 'replaced off line\n');
  renameSync(join(c, 'beta', '.f.json.tmp'), join(c, 'beta', 'f.json'));
  await eventually('the client journals the replacement', () => journalState(c).lml, (n) => n >= 5);
  if (moveAway) {
    const n = journalState(c).lml;
    renameSync(join(c, 'beta', 'f.json'), join(c, 'beta', 'h.json'));
    await eventually('the client journals the move', () => journalState(c).lml, (m) => m > n);
  }
  // Meanwhile the server writes f, chmods it, writes it again and removes it.
  const onServer = async (change: () => void): Promise<void> => {
    const before = journalState(s).lastTid;
    change();
    await journaled(s, before);
  };
  await onServer(() => writeFileSync(join(s, 'beta', 'f.json'), 'written on the server\n'));
  await onServer(() => chmodSync(join(s, 'beta', 'f.json'), 0o664));
  await onServer(() => writeFileSync(join(s, 'beta', 'f.json'), 'written again on the server\n'));
  await onServer(() => unlinkSync(join(s, 'beta', 'f.json')));
  reconnect(c);
  await assertSettled(farm.all);
  assert.deepEqual(farm.logMessages(c, /resync|does not apply|differs/i), [], 'no resync');
  // The link became a file of its own at once, never refused for its target; with another file at its target's
  // name here, said so.
  assert.deepEqual(farm.logMessages(c, /a hard link whose other name the server does not have/), [], 'never refused for its target');
  assert.equal(farm.logMessages(c, /a hard link whose name is another file than its target here: sent as a file of its own/).length, moveAway ? 0 : 1,
    'sent as a file of its own because another file holds its target\'s name here');
  const here = { content: readFileSync(join(c, 'delta', 'g.txt'), 'utf8'), mode: statSync(join(c, 'delta', 'g.txt')).mode & 0o7777 };
  assert.equal(here.mode, 0o664, 'delta/g.txt took the server\'s chmod here (through the name made again)');
  for (const d of farm.all) {
    assert.equal(readFileSync(join(d, 'delta', 'g.txt'), 'utf8'), here.content, `${d}: delta/g.txt holds what it holds on the client`);
    assert.equal(statSync(join(d, 'delta', 'g.txt')).mode & 0o7777, here.mode, `${d}: delta/g.txt has the client's mode`);
    assert.equal(readFileSync(join(d, 'beta', moveAway ? 'h.json' : 'f.json'), 'utf8'), 'replaced off line\n', `${d}: the new f`);
    const kept = conflictCopies(d).map((p) => readFileSync(join(d, p), 'utf8'));
    assert.ok(kept.includes('written off line\n'), `${d}: the write made off line is kept beside (${kept.join(', ')})`);
  }
  // The server made delta/g.txt as this node has it: its create carries the mode of the name here, not the
  // mode the link was journaled with.
  const kml = cli(['kml', s, '--json']).stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { kind: string; path: string; mode: number });
  const made = kml.filter((r) => r.path === 'delta/g.txt' && (r.kind === 'create' || r.kind === 'link'));
  assert.equal(made.length, 1, 'the server made delta/g.txt once');
  assert.equal(made[0]!.kind, 'create', 'as a file of its own (the name it links to is gone there)');
  assert.equal(made[0]!.mode & 0o7777, here.mode, 'with the mode it has on the client');
}

test('off line: write f, link g to f, replace f; the server chmods and removes f: g goes as the file it is here; no resync', { timeout: 120_000 }, async (t) => {
  await linkThenReplace(t, false);
});

test('off line: write f, link g to f, replace f and move the new f away; the server chmods and removes f: g goes as the file it is here; no resync', { timeout: 120_000 }, async (t) => {
  await linkThenReplace(t, true);
});
