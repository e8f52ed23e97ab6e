// Invariant: a directory a disconnected client removed (`rm -r d`, or `rmdir d` of an empty one), whose name it
// then gave to a directory of its own (`mkdir d`), comes back on the client when the server changed or added an
// entry in it meanwhile (update beats delete): the server's entries stay in the server's directory on every node,
// the client's new directory ships beside it (an open keep-both conflict) or at its own later name, nothing is lost,
// and no resync follows.
// Found by the chaos run (s25): seed 9203 (c2: rm -r alpha/deep, then mkdir -p alpha/deep, while the server chmodded
// alpha/deep/d.md, TID 0x85) and seed 9212 (c2: rmdir gamma/deep, then mkdir -p gamma/deep and mv gamma/deep
// beta/sub, while the server made a file in gamma/deep, TID 0xc0): "reint local change refused by the server;
// resyncing, the local version is kept beside | conflict on …: directory is not empty here".
// Fails without the fix (the conflict step's removedAncestor, #parents freeing the name; local-names serverRenames):
// the server's entry went into the client's new directory (by its name, or through its pending move), the removal
// of the server's directory stayed pending, and the server refused it three times: the client resynced.
import assert from 'node:assert/strict';
import { chmodSync, linkSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, rmdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from '../helpers.js';
import { Farm, assertSettled, disconnect, eventually, journaled, readOrNull, reconnect } from '../farm.js';

/** One local change on the client, journaled before the next. */
async function step(c: string, change: () => void): Promise<void> {
  const before = journalState(c).lml;
  change();
  await eventually('the client journals its change', () => journalState(c).lml, (n) => n > before);
}

test('d removed with its file on a client off line, d made again there, the file chmodded on the server: d comes back with it, the new d beside, no resync', { timeout: 120_000 }, async (t) => {
  // Seed 9203, c2: the server's setattr names d/x, which is not here; d is held by the client's new directory, so
  // the conflict step brought x back inside that one and left the removal of the server's d pending.
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'd'));
      writeFileSync(join(s, 'd/x'), 'the server\'s x\n');
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await disconnect(farm, c);
  await step(c, () => rmSync(join(c, 'd'), { recursive: true }));
  await eventually('the client journals both removals', () => journalState(c).lml, (n) => n >= 2);
  await step(c, () => mkdirSync(join(c, 'd')));
  await step(c, () => writeFileSync(join(c, 'd/new'), 'made on the client\n'));
  const before = journalState(s).lastTid;
  chmodSync(join(s, 'd/x'), 0o600);
  await journaled(s, before);
  reconnect(c);
  const why = (): string => JSON.stringify(events(farm, c));
  await eventually('the client\'s new file reaches the server', () => asideOf(s, 'd'), (a) => a !== null, 20_000, why);
  await assertSettled(farm.all);
  assert.deepEqual(farm.logMessages(c, /resync|refused/i), [], `no refusal, no resync: ${why()}`);
  const aside = asideOf(s, 'd')!;
  for (const d of farm.all) {
    assert.equal(readFileSync(join(d, 'd/x'), 'utf8'), 'the server\'s x\n', `${d}: d/x is the server's`);
    assert.equal(statSync(join(d, 'd/x')).mode & 0o777, 0o600, `${d}: d/x has the server's mode`);
    assert.deepEqual(readdirSync(join(d, 'd')), ['x'], `${d}: d holds the server's entry alone`);
    assert.equal(readFileSync(join(d, aside, 'new'), 'utf8'), 'made on the client\n', `${d}: the client's new d is beside, with its file`);
  }
  assert.equal(journalState(c).lml, 0, 'the client\'s LML is empty');
});

test('a/d removed with its file on a client off line, a/d made again there; on the server a moved to b and the file, linked to y, chmodded: b/d comes back with it, no resync', { timeout: 120_000 }, async (t) => {
  // Seed 9203, c2, as it was: the file had another name that lived on here (alpha/deep/d.md linked to beta/f.json),
  // and the server moved the directory above (alpha to epsilon/deep) before the chmod: the pending removal and the
  // new directory's mkdir both follow that move.
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'a/d'), { recursive: true });
      writeFileSync(join(s, 'a/d/x'), 'the server\'s x\n');
      linkSync(join(s, 'a/d/x'), join(s, 'y'));
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await disconnect(farm, c);
  await step(c, () => rmSync(join(c, 'a/d'), { recursive: true }));
  await eventually('the client journals both removals', () => journalState(c).lml, (n) => n >= 2);
  await step(c, () => mkdirSync(join(c, 'a/d')));
  await step(c, () => writeFileSync(join(c, 'a/d/new'), 'made on the client\n'));
  let before = journalState(s).lastTid;
  renameSync(join(s, 'a'), join(s, 'b'));
  await journaled(s, before);
  before = journalState(s).lastTid;
  chmodSync(join(s, 'b/d/x'), 0o600);
  await journaled(s, before);
  reconnect(c);
  const why = (): string => JSON.stringify(events(farm, c));
  await eventually('the client\'s new file reaches the server', () => asideOf(join(s, 'b'), 'd'), (a) => a !== null, 20_000, why);
  await assertSettled(farm.all);
  assert.deepEqual(farm.logMessages(c, /resync|refused/i), [], `no refusal, no resync: ${why()}`);
  const aside = asideOf(join(s, 'b'), 'd')!;
  for (const d of farm.all) {
    assert.equal(readFileSync(join(d, 'b/d/x'), 'utf8'), 'the server\'s x\n', `${d}: b/d/x is the server's`);
    assert.equal(statSync(join(d, 'b/d/x')).mode & 0o777, 0o600, `${d}: b/d/x has the server's mode`);
    assert.equal(statSync(join(d, 'b/d/x')).ino, statSync(join(d, 'y')).ino, `${d}: b/d/x and y are one file`);
    assert.deepEqual(readdirSync(join(d, 'b/d')), ['x'], `${d}: b/d holds the server's entry alone`);
    assert.equal(readFileSync(join(d, 'b', aside, 'new'), 'utf8'), 'made on the client\n', `${d}: the client's new d is beside, with its file`);
  }
  assert.equal(journalState(c).lml, 0, 'the client\'s LML is empty');
});

test('an empty d removed on a client off line, d made again there and moved to e, a file made in d on the server: d comes back with it, e ships, no resync', { timeout: 120_000 }, async (t) => {
  // Seed 9212, c2: the server's create names d/x (in the server's d, by fid, not here); the client's pending move
  // of its own new d to e carried that name into e, so x went into the client's directory, and the removal of the
  // server's d stayed pending.
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'd'));
      writeFileSync(join(s, 'other'), 'another file\n');
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await disconnect(farm, c);
  await step(c, () => rmdirSync(join(c, 'd')));
  await step(c, () => mkdirSync(join(c, 'd')));
  await step(c, () => writeFileSync(join(c, 'd/new'), 'made on the client\n'));
  await step(c, () => renameSync(join(c, 'd'), join(c, 'e')));
  const before = journalState(s).lastTid;
  writeFileSync(join(s, 'd/x'), 'the server\'s x\n');
  await journaled(s, before);
  reconnect(c);
  const why = (): string => JSON.stringify(events(farm, c));
  await eventually('the client\'s new file reaches the server', () => readOrNull(join(s, 'e/new')), (v) => v !== null, 20_000, why);
  await assertSettled(farm.all);
  assert.deepEqual(farm.logMessages(c, /resync|refused/i), [], `no refusal, no resync: ${why()}`);
  for (const d of farm.all) {
    assert.deepEqual(readdirSync(join(d, 'd')), ['x'], `${d}: d holds the server's entry alone`);
    assert.equal(readFileSync(join(d, 'd/x'), 'utf8'), 'the server\'s x\n', `${d}: d/x is the server's`);
    assert.deepEqual(readdirSync(join(d, 'e')), ['new'], `${d}: e holds the client's file alone`);
  }
  assert.equal(journalState(c).lml, 0, 'the client\'s LML is empty');
});

test('a file moved out of d on a client off line, d removed, made again and moved to e, the file written on the server: it is written at its new name, e ships, no resync', { timeout: 120_000 }, async (t) => {
  // Seed 9212, c2, its other entry (gamma/deep/g.txt, moved out here before the rmdir, written there, TID 0x5c): the
  // conflict step put the file back at the server's name, which the pending move of the new d carried into e; the
  // redone move then came after the removal of d, which the server, still holding the file in d, refused.
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'd'));
      writeFileSync(join(s, 'd/g'), 'the first g\n');
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await disconnect(farm, c);
  await step(c, () => renameSync(join(c, 'd/g'), join(c, 'g')));
  await step(c, () => rmdirSync(join(c, 'd')));
  await step(c, () => mkdirSync(join(c, 'd')));
  await step(c, () => writeFileSync(join(c, 'd/new'), 'made on the client\n'));
  await step(c, () => renameSync(join(c, 'd'), join(c, 'e')));
  const before = journalState(s).lastTid;
  writeFileSync(join(s, 'd/g'), 'the server\'s g\n');
  await journaled(s, before);
  reconnect(c);
  const why = (): string => JSON.stringify(events(farm, c));
  await eventually('the client\'s changes reach the server', () => [readOrNull(join(s, 'e/new')), readOrNull(join(s, 'g'))], (v) => v[0] !== null && v[1] !== null, 20_000, why);
  await assertSettled(farm.all);
  assert.deepEqual(farm.logMessages(c, /resync|refused/i), [], `no refusal, no resync: ${why()}`);
  for (const d of farm.all) {
    assert.equal(readFileSync(join(d, 'g'), 'utf8'), 'the server\'s g\n', `${d}: g has the server's content at the client's name`);
    assert.deepEqual(readdirSync(join(d, 'e')), ['new'], `${d}: e holds the client's file alone`);
  }
  assert.equal(journalState(c).lml, 0, 'the client\'s LML is empty');
});

for (const how of ['disconnected', 'stopped'] as const) {
test(`d removed with d/sub/x on a ${how} client, d made again there (${how === 'stopped' ? 'e moved to d' : 'mkdir d'}), a file made in d/sub on the server: d and d/sub come back with it, the new d beside, no resync`, { timeout: 120_000 }, async (t) => {
  // Chaos s32 seed 9223, c1 (rm -r gamma, mv delta/deep gamma while dead; the server's gamma/sub gained d.md): the
  // conflict step brought the server's gamma/sub back inside the client's new gamma (the first directory on the
  // way that was there, by name), then the server's gamma back at its name with the new one beside, and sub
  // stayed in the new one: on the client only ("state differs … with nothing pending", a resync). Fails without
  // the conflict step's removedAncestor for records that give a name.
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'd/sub'), { recursive: true });
      writeFileSync(join(s, 'd/sub/x'), 'the server\'s x\n');
      mkdirSync(join(s, 'e'));
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  if (how === 'disconnected') {
    await disconnect(farm, c);
    await step(c, () => rmSync(join(c, 'd'), { recursive: true }));
    await eventually('the client journals the three removals', () => journalState(c).lml, (n) => n >= 3);
    await step(c, () => mkdirSync(join(c, 'd')));
    await step(c, () => writeFileSync(join(c, 'd/new'), 'made on the client\n'));
  } else {
    // Stopped, the start-up scan tells a new directory at d from the old one by its inode: e's.
    await farm.stopNode(c);
    rmSync(join(c, 'd'), { recursive: true });
    renameSync(join(c, 'e'), join(c, 'd'));
    writeFileSync(join(c, 'd/new'), 'made on the client\n');
  }
  const before = journalState(s).lastTid;
  writeFileSync(join(s, 'd/sub/y'), 'the server\'s y\n');
  await journaled(s, before);
  if (how === 'disconnected') reconnect(c);
  else await farm.startNode(c);
  const why = (): string => JSON.stringify(events(farm, c));
  await eventually('the client\'s new file reaches the server', () => asideOf(s, 'd'), (a) => a !== null, 20_000, why);
  await assertSettled(farm.all);
  assert.deepEqual(farm.logMessages(c, /resync|refused/i), [], `no refusal, no resync: ${why()}`);
  const aside = asideOf(s, 'd')!;
  for (const d of farm.all) {
    assert.deepEqual(readdirSync(join(d, 'd')), ['sub'], `${d}: d holds the server's entry alone`);
    assert.deepEqual(readdirSync(join(d, 'd/sub')), ['y'], `${d}: d/sub holds the server's new file (x was removed on the client)`);
    assert.equal(readFileSync(join(d, 'd/sub/y'), 'utf8'), 'the server\'s y\n', `${d}: d/sub/y is the server's`);
    assert.deepEqual(readdirSync(join(d, aside)), ['new'], `${d}: the client's new d is beside, with its file alone`);
  }
  assert.equal(journalState(c).lml, 0, 'the client\'s LML is empty');
});
}

test('d removed with d/sub/x on a client off line, d made again there, x removed on the server then a file moved into d/sub: d and d/sub come back, the new d beside, no resync', { timeout: 120_000 }, async (t) => {
  // Chaos s92 seed 9350, c1 (rm -r epsilon, then a symlink made in a new epsilon; the server removed
  // epsilon/deep/e, which the client had removed too, then moved a file into epsilon/deep): for the server's removal
  // the conflict step brought epsilon/deep back inside the client's new epsilon (the first directory on the way, by
  // name), and the server's epsilon came back later with the new one beside, taking epsilon/deep along: "state
  // differs … with nothing pending", a resync. Fails without removedAncestor for a removal of an object removed here.
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'd/sub'), { recursive: true });
      writeFileSync(join(s, 'd/sub/x'), 'the server\'s x\n');
      writeFileSync(join(s, 'd/y'), 'the server\'s y\n');
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertSettled(farm.all);
  await disconnect(farm, c);
  await step(c, () => rmSync(join(c, 'd'), { recursive: true }));
  await eventually('the client journals the four removals', () => journalState(c).lml, (n) => n >= 4);
  await step(c, () => mkdirSync(join(c, 'd')));
  await step(c, () => symlinkSync('../elsewhere', join(c, 'd/new')));
  let before = journalState(s).lastTid;
  rmSync(join(s, 'd/sub/x'));
  await journaled(s, before);
  before = journalState(s).lastTid;
  renameSync(join(s, 'd/y'), join(s, 'd/sub/b'));
  await journaled(s, before);
  reconnect(c);
  const why = (): string => JSON.stringify(events(farm, c));
  await eventually('the client\'s new symlink reaches the server', () => asideOf(s, 'd'), (a) => a !== null, 20_000, why);
  await assertSettled(farm.all);
  assert.deepEqual(farm.logMessages(c, /resync|refused/i), [], `no refusal, no resync: ${why()}`);
  const aside = asideOf(s, 'd')!;
  for (const d of farm.all) {
    assert.deepEqual(readdirSync(join(d, 'd')), ['sub'], `${d}: d holds the server's entry alone`);
    assert.deepEqual(readdirSync(join(d, 'd/sub')), ['b'], `${d}: d/sub holds the file the server moved there`);
    assert.equal(readFileSync(join(d, 'd/sub/b'), 'utf8'), 'the server\'s y\n', `${d}: d/sub/b is the server's y`);
    assert.deepEqual(readdirSync(join(d, aside)), ['new'], `${d}: the client's new d is beside, with its symlink alone`);
  }
  assert.equal(journalState(c).lml, 0, 'the client\'s LML is empty');
});

/** The `<name>.conflict-*` entry beside `name` in dir, or null. */
function asideOf(dir: string, name: string): string | null {
  return readdirSync(dir).find((n) => n.startsWith(`${name}.conflict-`)) ?? null;
}

/** The client's log lines about refusals, resyncs and conflicts, each with its path and error. */
function events(farm: Farm, c: string): string[] {
  return farm.log(c).split('\n').flatMap((line) => {
    try {
      const j = JSON.parse(line) as { msg?: string; path?: string; err?: string };
      return /refused|resync|does not apply|conflict/.test(j.msg ?? '') ? [`${j.msg ?? ''} ${j.path ?? ''} ${j.err ?? ''}`.trim()] : [];
    } catch {
      return [];
    }
  });
}
