// Invariant: a name matched by the ignore patterns (.intersyncignore at the root, replicated; the config's
// `ignore`) is never journaled nor sent, an ignored directory gets no watch, a change of the patterns applies
// live both ways (newly ignored names stop being journaled and are not removed anywhere; names no longer
// ignored are journaled as found), and a peer's removal of a directory that holds ignored names here loses none
// of them (the directory stays with them; see docs/architecture.md, "Ignore patterns").
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { findFileset } from '#journal/layout.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { IGNORE_FILE, IgnoreRules } from '#presto/ignore-rules.js';
import { records, settle, startNode, tmpDir } from './helpers.js';
import { Farm, assertJournalsAgree, eventually, statusJson } from './farm.js';

test('the matcher: gitignore rules, case-sensitive, directories, the patterns file never ignored, live refresh', (t) => {
  const dir = tmpDir();
  t.after(dir.cleanup);
  writeFileSync(join(dir.path, IGNORE_FILE), '# editors\n*.swp\n*~\n.#*\n4913\nbuild/\n/root-only\n!keep.swp\n.*\n');
  const rules = new IgnoreRules(dir.path, ['*.tmp']);
  const table: Array<[string, boolean, boolean]> = [
    ['a.swp', false, true], ['deep/x/.a.html.swp', false, true], ['keep.swp', false, false], ['A.SWP', false, false],
    ['index.html~', false, true], ['.#index.html', false, true], ['4913', false, true], ['sub/4913', false, true],
    ['build', true, true], ['build', false, false], ['build/x/y.o', false, true], ['src/build', true, true],
    ['root-only', false, true], ['sub/root-only', false, false], ['upload.tmp', false, true], ['page.html', false, false],
    [IGNORE_FILE, false, false], ['.intermezzo', true, false], ['.hidden', false, true],
  ];
  for (const [p, isDir, want] of table) assert.equal(rules.ignores(p, isDir), want, `${p}${isDir ? '/' : ''}`);
  assert.deepEqual(rules.status(), { patterns: 9, paths: 0 });
  mkdirSync(join(dir.path, 'd/e'), { recursive: true });
  writeFileSync(join(dir.path, 'd/e/a.swp'), '');
  writeFileSync(join(dir.path, 'd/b.tmp'), '');
  assert.equal(rules.holdsOnlyIgnored('d'), true, 'only ignored names, and a directory holding only those');
  writeFileSync(join(dir.path, 'd/e/page.html'), '');
  assert.equal(rules.holdsOnlyIgnored('d'), false, 'a name not ignored below it');
  assert.equal(rules.refresh(), false, 'the file did not change');
  writeFileSync(join(dir.path, IGNORE_FILE), '*.swp\n');
  assert.equal(rules.refresh(), true, 'an edit of the file is seen');
  assert.equal(rules.ignores('build', true), false);
  assert.equal(rules.setConfig(['*.tmp']), false, 'same config patterns');
  assert.equal(rules.setConfig([]), true);
  assert.equal(rules.ignores('upload.tmp', false), false);
});

test('ignored names are not journaled nor watched; status counts them', async (t) => {
  const dir = tmpDir();
  const logs = tmpDir('intersync-logs-');
  writeFileSync(join(dir.path, '.intersyncignore'), '# editors\n*.swp\nbuild/\n');
  mkdirSync(join(dir.path, 'build/deep'), { recursive: true });
  writeFileSync(join(dir.path, 'build/deep/out.o'), 'object');
  const node = await startNode(dir.path, logs.path, { ignore: ['*.tmp'] });
  t.after(async () => {
    await node.stop();
    dir.cleanup();
    logs.cleanup();
  });
  await settle(node);
  const watchedAtStart = node.capture.status().watchedDirs;
  assert.equal(watchedAtStart, 1, 'the root is watched; build/ (ignored) and what it holds are not');
  writeFileSync(join(dir.path, 'page.html'), 'kept');
  writeFileSync(join(dir.path, '.page.html.swp'), 'editor state');
  writeFileSync(join(dir.path, 'upload.tmp'), 'half an upload');
  mkdirSync(join(dir.path, 'build/more'));
  writeFileSync(join(dir.path, 'build/more/x'), 'built');
  await settle(node);
  const paths = records(node).map((r) => r.path);
  assert.deepEqual(paths.sort(), ['.intersyncignore', 'page.html'], 'only the names not ignored are journaled (the patterns file is)');
  assert.equal(node.capture.status().watchedDirs, 1, 'no watch in an ignored directory');
  const ig = node.capture.status().ignored;
  assert.deepEqual(ig, { patterns: 3, paths: 3 }, 'three patterns; build, .page.html.swp and upload.tmp are ignored');
  unlinkSync(join(dir.path, 'upload.tmp'));
  await settle(node);
  assert.equal(node.capture.status().ignored?.paths, 2, 'an ignored name removed is no longer counted');
  // The daemon publishes its status every second: intersync status --json says how many paths are ignored.
  await eventually('status --json counts the ignored paths', () => JSON.stringify(statusJson(dir.path).ignored), (v) => v === JSON.stringify({ patterns: 3, paths: 2 }), 10_000);
});

test('a change of .intersyncignore applies live, both ways, and removes nothing', async (t) => {
  const dir = tmpDir();
  const logs = tmpDir('intersync-logs-');
  writeFileSync(join(dir.path, '.intersyncignore'), '*.log\n');
  const node = await startNode(dir.path, logs.path);
  t.after(async () => {
    await node.stop();
    dir.cleanup();
    logs.cleanup();
  });
  mkdirSync(join(dir.path, 'logs'));
  writeFileSync(join(dir.path, 'logs/a.log'), 'line 1\n');
  writeFileSync(join(dir.path, 'notes.txt'), 'notes');
  await settle(node);
  const has = (p: string): boolean => node.db.objectByPath(p) !== undefined;
  assert.equal(has('logs/a.log'), false, 'ignored: not journaled');
  assert.equal(has('notes.txt'), true);

  // Un-ignore: the log already on disk is journaled, though nothing touched it.
  writeFileSync(join(dir.path, '.intersyncignore'), '# nothing ignored now\n');
  await settle(node);
  await eventually('logs/a.log journaled once *.log is no longer ignored', () => has('logs/a.log'), (v) => v, 10_000);
  assert.equal(node.db.objectByPath('logs/a.log')?.size, 7);

  // Ignore again (another pattern): newly ignored names stop being journaled, and their removal is not journaled.
  assert.equal(node.capture.status().watchedDirs, 2, 'the root and logs/ are watched');
  writeFileSync(join(dir.path, '.intersyncignore'), '*.txt\nlogs/\n');
  await settle(node);
  await eventually('logs/, newly ignored, loses its watch', () => node.capture.status().watchedDirs, (n) => n === 1, 10_000);
  const before = node.db.lastTid;
  writeFileSync(join(dir.path, 'notes.txt'), 'changed while ignored');
  writeFileSync(join(dir.path, 'logs/a.log'), 'line 1\nline 2\n');
  await settle(node);
  unlinkSync(join(dir.path, 'notes.txt'));
  await settle(node);
  assert.deepEqual(records(node, before).map((r) => `${r.kind} ${r.path}`), [], 'nothing journaled for newly ignored names');
  assert.equal(node.db.objectByPath('notes.txt')?.hash !== undefined, true, 'notes.txt stays journaled as it was (not removed on peers)');
  assert.equal(node.db.objectByPath('logs/a.log')?.size, 7, 'logs/a.log stays journaled as it was');
});

test('between nodes: ignored names are not sent, a peer\'s pattern change applies live, a peer\'s removal of a directory keeps the ignored names', { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      writeFileSync(join(s, '.intersyncignore'), '*.swp\n');
      mkdirSync(join(s, 'www/sub'), { recursive: true });
      writeFileSync(join(s, 'www/index.html'), 'index');
      writeFileSync(join(s, 'www/sub/page.html'), 'page');
    },
  });
  const [c] = farm.clients as [string];
  const s = farm.server;
  await assertJournalsAgree(farm.all);
  assert.equal(readFileSync(join(c, '.intersyncignore'), 'utf8'), '*.swp\n', 'the patterns file is replicated');

  // Editor swap files on the client: not journaled there, never on the server.
  writeFileSync(join(c, 'www/.index.html.swp'), 'the client\'s editor state');
  writeFileSync(join(c, 'www/sub/.page.html.swp'), 'more editor state');
  writeFileSync(join(c, 'www/new.html'), 'new');
  await eventually('the client\'s new.html reaches the server', () => existsSync(join(s, 'www/new.html')), (v) => v);
  await assertJournalsAgree(farm.all);
  assert.equal(existsSync(join(s, 'www/.index.html.swp')), false, 'an ignored file is not sent');
  assert.equal(existsSync(join(s, 'www/sub/.page.html.swp')), false);
  const cdb = FilesetDb.open(findFileset(c).db, { readonly: true, check: false });
  try {
    assert.equal(cdb.objectByPath('www/.index.html.swp'), undefined, 'an ignored file is not journaled');
  } finally {
    cdb.close();
  }

  // The server removes www/sub: the client keeps its ignored file there (the directory stays, journaled again).
  rmSync(join(s, 'www/sub'), { recursive: true });
  await eventually('page.html removed on the client', () => existsSync(join(c, 'www/sub/page.html')), (v) => !v);
  await assertJournalsAgree(farm.all);
  assert.equal(readFileSync(join(c, 'www/sub/.page.html.swp'), 'utf8'), 'more editor state', 'the ignored file in the removed directory is kept');
  assert.ok(existsSync(join(s, 'www/sub')), 'the directory is journaled again, and is back (empty) on the server');
  assert.equal(existsSync(join(s, 'www/sub/page.html')), false);
  assert.ok(farm.logMessages(c, /kept here: it holds ignored names/).length >= 1, 'the client says why it kept the directory');
  assert.equal((statusJson(c).client as { resyncs: number }).resyncs, 0, 'no resync');

  // A peer's record of the patterns file: the server un-ignores *.swp, the client's swap files are journaled and sent.
  writeFileSync(join(s, '.intersyncignore'), '# nothing\n');
  await eventually('the client\'s swap file reaches the server once *.swp is no longer ignored', () => existsSync(join(s, 'www/.index.html.swp')), (v) => v, 20_000);
  await assertJournalsAgree(farm.all);
  assert.equal(readFileSync(join(s, 'www/sub/.page.html.swp'), 'utf8'), 'more editor state');
});
