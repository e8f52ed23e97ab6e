// Invariant: every change a real program makes through the filter mount is journaled before the program
// gets its answer, with the pre-version its object had: right after each program exits (the watcher on DIR
// told to wait 10 minutes before it journals anything), the journal's digest equals `digest --scan` of DIR
// and each record's pre-version is its object's previous version. Fails without the mount's journaling
// (fuse-capture.ts): the digests differ until the watcher's batch, minutes later.
import assert from 'node:assert/strict';
import { chmodSync, closeSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readLogs, tmpDir } from './helpers.js';
import { assertJournaled, forceUnmount, kmlShapes, mountDirs, run, spawnMount, stopMount, type Mounted } from './mount-fixture.js';

/** A source tree with subfolders, modes, a symlink and a hard link, made outside the mount. */
function makeTree(root: string): void {
  mkdirSync(join(root, 'a/b/c'), { recursive: true });
  writeFileSync(join(root, 'a/one.txt'), 'one\n');
  writeFileSync(join(root, 'a/b/two.bin'), Buffer.alloc(300_000, 7));
  writeFileSync(join(root, 'a/b/c/run.sh'), '#!/bin/sh\necho hi\n');
  chmodSync(join(root, 'a/b/c/run.sh'), 0o755);
  symlinkSync('../one.txt', join(root, 'a/b/link'));
  linkSync(join(root, 'a/one.txt'), join(root, 'a/b/c/hard.txt'));
  writeFileSync(join(root, 'empty'), '');
}

describe('programs through the mount', { timeout: 300_000 }, () => {
  let m: Mounted;
  let src: { path: string; cleanup: () => void };
  let cleanup: () => Promise<void>;

  before(async () => {
    src = tmpDir('intersync-src-');
    makeTree(src.path);
    const d = mountDirs();
    cleanup = d.cleanup;
    m = d.track(await spawnMount(d.dir, d.mnt, d.logs, ['--settle-ms', '600000']));
  });
  after(async () => {
    await cleanup();
    src.cleanup();
  });

  test('a single change is in the journal when the program gets its answer', async () => {
    mkdirSync(join(m.mnt, 'first'));
    assert.ok(kmlShapes(m.dir).includes('mkdir first'), 'mkdir journaled before it returned');
    await assertJournaled(m.dir, 'mkdir');
  });

  test('cp -a of a tree', async () => {
    run('cp', ['-a', join(src.path, 'a'), join(m.mnt, 'copied')], m.mnt);
    run('diff', ['-r', '--no-dereference', join(src.path, 'a'), join(m.dir, 'copied')], m.mnt);
    assert.equal(statSync(join(m.dir, 'copied/b/c/hard.txt')).ino, statSync(join(m.dir, 'copied/one.txt')).ino, 'the hard link is one inode in DIR');
    assert.equal(statSync(join(m.dir, 'copied/b/c/run.sh')).mode & 0o777, 0o755);
    await assertJournaled(m.dir, 'cp -a');
  });

  test('tar x of an archive', async () => {
    const tarball = join(src.path, '..', `${src.path.split('/').pop()!}.tar`);
    run('tar', ['cf', tarball, '-C', src.path, 'a', 'empty'], src.path);
    mkdirSync(join(m.mnt, 'untarred'));
    run('tar', ['xf', tarball, '-C', join(m.mnt, 'untarred')], m.mnt);
    run('diff', ['-r', '--no-dereference', join(src.path, 'a'), join(m.dir, 'untarred/a')], m.mnt);
    await assertJournaled(m.dir, 'tar x');
  });

  test('git init, add and commit', async () => {
    const repo = join(m.mnt, 'repo');
    mkdirSync(repo);
    const env = { GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.invalid', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.invalid', GIT_CONFIG_NOSYSTEM: '1', HOME: src.path };
    run('git', ['init', '-q'], repo, env);
    writeFileSync(join(repo, 'README'), 'hello\n');
    run('git', ['add', 'README'], repo, env);
    run('git', ['commit', '-q', '-m', 'first'], repo, env);
    writeFileSync(join(repo, 'README'), 'hello again\n');
    run('git', ['commit', '-q', '-am', 'second'], repo, env);
    assert.equal(run('git', ['log', '--oneline'], join(m.dir, 'repo'), env).trim().split('\n').length, 2, 'the repository in DIR has both commits');
    await assertJournaled(m.dir, 'git commit');
  });

  test('sqlite3 writes a database', async () => {
    const db = join(m.mnt, 'app.db');
    run('sqlite3', [db, 'create table t(x); insert into t values (1),(2),(3);'], m.mnt);
    run('sqlite3', [db, 'insert into t select x + 3 from t;'], m.mnt);
    assert.equal(run('sqlite3', [join(m.dir, 'app.db'), 'select count(*) from t;'], m.dir).trim(), '6');
    await assertJournaled(m.dir, 'sqlite3');
  });

  test('rsync into the mount', async () => {
    run('rsync', ['-a', `${src.path}/`, join(m.mnt, 'synced')], m.mnt);
    run('diff', ['-r', '--no-dereference', join(src.path, 'a'), join(m.dir, 'synced/a')], m.mnt);
    await assertJournaled(m.dir, 'rsync');
  });

  test('an editor-style save: write a temp file, fsync, rename over', async () => {
    const target = join(m.mnt, 'doc.txt');
    writeFileSync(target, 'version 1\n');
    const tmp = join(m.mnt, '.doc.txt.swp');
    const fd = openSync(tmp, 'w', 0o644);
    writeSync(fd, 'version 2\n');
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, target);
    assert.equal(readFileSync(join(m.dir, 'doc.txt'), 'utf8'), 'version 2\n');
    const shapes = kmlShapes(m.dir);
    assert.ok(shapes.includes('rename .doc.txt.swp -> doc.txt'), `the save is one rename over the old name: ${shapes.slice(-4).join('; ')}`);
    await assertJournaled(m.dir, 'editor save');
  });

  test('hard link, symlink, chmod, truncate, rename of a directory, rmdir, unlink', async () => {
    const w = join(m.mnt, 'ops');
    mkdirSync(join(w, 'd1/sub'), { recursive: true });
    writeFileSync(join(w, 'd1/sub/f'), 'data data data\n');
    run('ln', [join(w, 'd1/sub/f'), join(w, 'hard')], w);
    run('ln', ['-s', 'd1/sub/f', join(w, 'soft')], w);
    run('chmod', ['600', join(w, 'hard')], w);
    run('truncate', ['-s', '4', join(w, 'd1/sub/f')], w);
    run('mv', [join(w, 'd1'), join(w, 'd2')], w);
    mkdirSync(join(w, 'gone'));
    run('rmdir', [join(w, 'gone')], w);
    run('rm', [join(w, 'soft')], w);
    assert.equal(readFileSync(join(m.dir, 'ops/hard'), 'utf8'), 'data');
    // One record for the move of a directory: through syncPaths (pending hints journaled first, one of them
    // naming d1 alone) it was journaled as d1's tree removed and d2's made again.
    const shapes = kmlShapes(m.dir);
    assert.ok(shapes.includes('rename ops/d1 -> ops/d2'), `mv of a directory is one rename: ${shapes.filter((x) => x.includes('ops/d')).join('; ')}`);
    assert.ok(!shapes.includes('rmdir ops/d1'));
    assert.equal(statSync(join(m.dir, 'ops/d2/sub/f')).mode & 0o777, 0o600);
    await assertJournaled(m.dir, 'file operations');
  });

  test('a file removed while open stays usable until closed, and is never journaled under its hidden name', async () => {
    // With hard_remove, libfuse 2 failed the write below with ENOENT; without it, the file lives on as
    // .fuse_hidden*, which the mount's daemon ignores: the removal is one unlink record.
    const p = join(m.mnt, 'scratch');
    const fd = openSync(p, 'w+');
    writeSync(fd, 'abc');
    rmSync(p);
    writeSync(fd, 'def');
    const buf = Buffer.alloc(6);
    assert.equal(readSync(fd, buf, 0, 6, 0), 6);
    assert.equal(buf.toString(), 'abcdef');
    closeSync(fd);
    const shapes = kmlShapes(m.dir);
    assert.ok(shapes.includes('unlink scratch'), shapes.slice(-3).join('; '));
    assert.ok(!shapes.some((x) => x.includes('.fuse_hidden')), 'no record names a hidden file');
    await assertJournaled(m.dir, 'removed while open');
  });

  test('large writes arrive in calls larger than 4 KiB, and make one record at close', async () => {
    run('dd', ['if=/dev/zero', `of=${join(m.mnt, 'big')}`, 'bs=1M', 'count=16', 'status=none'], m.mnt);
    const big = kmlShapes(m.dir).filter((s) => s.endsWith(' big'));
    assert.deepEqual(big, ['create big', 'write big'], 'a file written in many calls is one create and one write');
    await assertJournaled(m.dir, 'dd');
    await stopMount(m);
    const line = readLogs(m.logs).split('\n').find((l) => l.includes('"msg":"unmounted"'));
    assert.ok(line !== undefined, 'the daemon logged its unmount');
    const largest = (JSON.parse(line) as { largestWrite: number }).largestWrite;
    assert.ok(largest > 4096, `writes of more than 4 KiB a call (largest ${largest})`);
    forceUnmount(m.mnt);
  });
});
