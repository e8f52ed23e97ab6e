// Invariant: the start-up scan journals every change made while the daemon was stopped, including a
// rewrite that kept the file's size and had its mtime put back (`cp -p f ref; echo HELLO > f;
// touch -r ref f`): only the ctime tells, and the scan must look at it. After the restart the node's
// journal digest equals its disk digest and the new content reaches every peer. (Issue 11, fault 5.)
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, renameSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Farm, assertJournalIsDisk, assertSettled, eventually, readOrNull } from './farm.js';

const BEFORE = 'howdy\n';
const AFTER = 'HELLO\n'; // the same length as BEFORE

/** Whole seconds, so utimesSync puts the very same mtime back (no nanoseconds lost). */
const T = new Date(1_700_000_000_000);

/** Rewrite f with AFTER, same size, then put its atime and mtime back: only its ctime changed. */
function sneakyRewrite(dir: string): void {
  const f = join(dir, 'f');
  const was = statSync(f, { bigint: true });
  assert.equal(was.size, BigInt(AFTER.length), 'the same size before and after');
  writeFileSync(f, AFTER);
  utimesSync(f, new Date(Number(was.atimeMs)), new Date(Number(was.mtimeMs)));
  const now = statSync(f, { bigint: true });
  assert.equal(now.mtimeNs, was.mtimeNs, 'the mtime was put back exactly');
  assert.equal(now.size, was.size);
  assert.equal(now.ino, was.ino, 'the same inode');
  assert.notEqual(now.ctimeNs, was.ctimeNs, 'only the ctime tells');
}

function prepare(dir: string): void {
  writeFileSync(join(dir, 'f'), BEFORE);
  utimesSync(join(dir, 'f'), T, T);
}

test('a same-size rewrite with its mtime put back while the server was stopped is journaled at its restart and reaches the client', { timeout: 90_000 }, async (t) => {
  // Fails without the fix: the start-up scan compares size and mtime only and journals nothing: the
  // server's journal digest differs from its disk digest for good ("journal digest ... != disk digest",
  // f: journal 'howdy' hash, disk 'HELLO' hash) and the client keeps "howdy".
  const farm = await Farm.start(t, { clients: 1, prepare });
  const [c] = farm.clients as [string];
  await assertSettled(farm.all);
  assert.equal(readFileSync(join(c, 'f'), 'utf8'), BEFORE);
  await farm.stopNode(farm.server);
  sneakyRewrite(farm.server);
  await farm.startNode(farm.server);
  await assertJournalIsDisk(farm.server);
  await eventually('the client gets HELLO at f', () => readOrNull(join(c, 'f')), (v) => v === AFTER);
  await assertSettled(farm.all);
  for (const d of farm.all) assert.equal(readFileSync(join(d, 'f'), 'utf8'), AFTER, `${d}: f`);
});

test('a same-size rewrite with its mtime put back while a client was stopped is journaled at its restart and reaches the server', { timeout: 90_000 }, async (t) => {
  // Fails without the fix: the client's start-up scan journals nothing, so nothing is reintegrated: the
  // client's journal digest differs from its disk digest for good ("journal digest ... != disk digest",
  // f) and the server keeps "howdy".
  const farm = await Farm.start(t, { clients: 1, prepare });
  const [c] = farm.clients as [string];
  await assertSettled(farm.all);
  await farm.stopNode(c);
  sneakyRewrite(c);
  await farm.startNode(c);
  await assertJournalIsDisk(c);
  await eventually('the server gets HELLO at f', () => readOrNull(join(farm.server, 'f')), (v) => v === AFTER);
  await assertSettled(farm.all);
  for (const d of farm.all) assert.equal(readFileSync(join(d, 'f'), 'utf8'), AFTER, `${d}: f`);
});

test('a directory renamed and a file removed inside it while the server was stopped: both are journaled at its restart and reach the client', { timeout: 90_000 }, async (t) => {
  // Fails without the fix in Reconciler#addEntriesOf: the scan looked for the removal at the file's old
  // name, found no row there (the rename had moved it), and never journaled it: the server's journal kept
  // epsilon/deep/d.md, which its disk did not have ("nodes did not settle", the chaos run's seed 9101).
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'beta'));
      mkdirSync(join(s, 'epsilon'));
      writeFileSync(join(s, 'beta/d.md'), 'removed while stopped\n');
      writeFileSync(join(s, 'beta/kept'), 'kept\n');
    },
  });
  await assertSettled(farm.all);
  await farm.stopNode(farm.server);
  renameSync(join(farm.server, 'beta'), join(farm.server, 'epsilon/deep'));
  unlinkSync(join(farm.server, 'epsilon/deep/d.md'));
  await farm.startNode(farm.server);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    assert.equal(readOrNull(join(d, 'epsilon/deep/d.md')), null, `${d}: d.md is gone`);
    assert.equal(readOrNull(join(d, 'epsilon/deep/kept')), 'kept\n', `${d}: kept moved with its directory`);
  }
});
