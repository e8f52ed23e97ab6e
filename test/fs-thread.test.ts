// The file-system thread of the apply path: a first copy's new files are written on it (createDirectMany)
// while the main thread reads and journals, and a large start-up scan shares its lstats with it.
// Invariants: each file either is written whole with its record's content, mtime and mode, or leaves
// nothing at its name (and a local file there is never touched); a commit that fails takes the job's
// files back; no path leaves the backing directory; its lstat is capture's.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { IntersyncError } from '#core/errors.js';
import type { Fid, NodeId, Tid } from '#core/ids.js';
import type { RecordDraft } from '#core/record.js';
import { ApplyPath } from '#apply/apply-path.js';
import type { FilesetDb, StatIdentity } from '#journal/fileset-db.js';
import { EchoGuard } from '#fsio/echo-guard.js';
import { lstatOrNull } from '#fsio/disk.js';
import { execFileSync } from 'node:child_process';
import { tmpDir } from './helpers.js';

const NODE = 'a0a0a0a0a0a0a0a0' as NodeId;
const MTIME = Date.UTC(2024, 0, 2, 3, 4, 5, 678);

function newFile(n: number, path: string, content: string, mode = 0o644, hash?: string): { d: RecordDraft; buf: Buffer } {
  const buf = Buffer.from(content);
  return {
    d: {
      kind: 'create', fid: `${NODE}-${n}` as Fid, path, newPath: null, target: null, preVersion: 0n as Tid, mode, uid: 0, gid: 0,
      mtimeMs: MTIME, size: buf.length, hash: hash ?? createHash('sha256').update(buf).digest('hex'), origin: NODE, time: MTIME,
    },
    buf,
  };
}

function setup(t: { after: (fn: () => Promise<void> | void) => void }): { root: string; apply: ApplyPath; guard: EchoGuard } {
  const dir = tmpDir();
  const root = join(dir.path, 'root');
  mkdirSync(join(root, 'd'), { recursive: true });
  const guard = new EchoGuard();
  // createDirectMany never reads the journal: the caller's commit does.
  const apply = new ApplyPath({ root, tmpDir: join(dir.path, 'tmp'), db: {} as FilesetDb, guard, log: pino({ level: 'silent' }) });
  t.after(async () => {
    await apply.releaseThread();
    dir.cleanup();
  });
  return { root, apply, guard };
}

test('the file-system thread writes each new file whole with its mtime and mode, or leaves nothing; a local file is never touched', async (t) => {
  const { root, apply, guard } = setup(t);
  writeFileSync(join(root, 'd/mine.txt'), 'local, not journaled');
  const files = [
    newFile(1, 'd/a.txt', 'alpha'),
    newFile(2, 'd/bad.txt', 'these bytes are not the ones hashed', 0o644, createHash('sha256').update('other').digest('hex')),
    newFile(3, 'd/mine.txt', 'from the server'),
    newFile(4, 'd/setuid', '#!/bin/sh\n', 0o4755),
    newFile(5, 'empty', ''),
  ];
  apply.acquireThread();
  let got: Array<StatIdentity | Error> = [];
  let heldDuringCommit = 0;
  await apply.createDirectMany(files, (done) => {
    got = done;
    heldDuringCommit = guard.size;
  });
  assert.equal(got.length, 5);
  assert.equal(heldDuringCommit, 5, 'every name is held in the echo guard until journaled');
  assert.equal(guard.size, 0, 'and released after');

  for (const [i, path, mode] of [[0, 'd/a.txt', 0o644], [3, 'd/setuid', 0o4755], [4, 'empty', 0o644]] as const) {
    const id = got[i] as StatIdentity;
    assert.ok(!(id instanceof Error), `${path} written`);
    const st = lstatSync(join(root, path), { bigint: true });
    assert.equal(id.ino, st.ino.toString(), `${path}: the identity is the file's`);
    assert.equal(id.mtimeNs, st.mtimeNs);
    assert.equal(id.ctimeNs, st.ctimeNs);
    assert.equal(Number(st.mode & 0o7777n), mode, `${path}: mode`);
    assert.ok(Math.abs(Number(st.mtimeNs) / 1e6 - MTIME) < 1, `${path}: mtime ${st.mtimeNs} for ${MTIME} ms`);
    assert.equal(readFileSync(join(root, path), 'utf8'), files[i]!.buf.toString());
  }
  const bad = got[1];
  assert.ok(bad instanceof IntersyncError && bad.code === 'BAD_REQUEST', `content not matching its hash: ${String(bad)}`);
  assert.equal(existsSync(join(root, 'd/bad.txt')), false, 'nothing is left at its name');
  const taken = got[2];
  assert.ok(taken instanceof IntersyncError && taken.code === 'CONFLICT', `a name taken locally: ${String(taken)}`);
  assert.equal(readFileSync(join(root, 'd/mine.txt'), 'utf8'), 'local, not journaled');
});

test('a commit that fails takes back the files its job wrote, and only those', async (t) => {
  const { root, apply, guard } = setup(t);
  writeFileSync(join(root, 'd/mine.txt'), 'local');
  apply.acquireThread();
  const files = [newFile(1, 'd/one.txt', 'one'), newFile(2, 'd/mine.txt', 'server'), newFile(3, 'two.txt', 'two')];
  await assert.rejects(apply.createDirectMany(files, () => {
    throw new Error('disk full in the journal');
  }), /disk full in the journal/);
  assert.equal(existsSync(join(root, 'd/one.txt')), false);
  assert.equal(existsSync(join(root, 'two.txt')), false);
  assert.equal(readFileSync(join(root, 'd/mine.txt'), 'utf8'), 'local');
  assert.equal(guard.size, 0);
});

test('a path through a symlink out of the tree is refused before any file of the job is written', async (t) => {
  const { root, apply } = setup(t);
  const outside = tmpDir();
  t.after(() => outside.cleanup());
  symlinkSync(outside.path, join(root, 'out'));
  apply.acquireThread();
  let committed = false;
  await assert.rejects(apply.createDirectMany([newFile(1, 'd/first.txt', 'x'), newFile(2, 'out/escape.txt', 'y')], () => {
    committed = true;
  }), (e: unknown) => e instanceof IntersyncError && e.code === 'BAD_PATH');
  assert.equal(committed, false);
  assert.equal(existsSync(join(outside.path, 'escape.txt')), false);
  assert.equal(existsSync(join(root, 'd/first.txt')), false);
});

test('the thread is started by its first user and stopped by its last; it works again once started again', async (t) => {
  const { root, apply } = setup(t);
  apply.acquireThread();
  apply.acquireThread();
  await apply.releaseThread();
  await apply.createDirectMany([newFile(9, 'kept.txt', 'k')], () => undefined); // one user left: still running
  await apply.releaseThread();
  await assert.rejects(apply.createDirectMany([newFile(1, 'a.txt', 'a')], () => undefined), /acquireThread/);
  apply.acquireThread();
  await apply.createDirectMany([newFile(1, 'a.txt', 'a')], () => undefined);
  await apply.releaseThread();
  apply.acquireThread();
  await apply.createDirectMany([newFile(2, 'b.txt', 'b')], () => undefined);
  assert.equal(readFileSync(join(root, 'a.txt'), 'utf8') + readFileSync(join(root, 'b.txt'), 'utf8'), 'ab');
});

test('the thread\'s lstat is capture\'s lstatOrNull: files, directories, symlinks, fifos, and null where nothing is', async (t) => {
  const { root, apply } = setup(t);
  writeFileSync(join(root, 'd/file'), 'some bytes');
  symlinkSync('file', join(root, 'd/link'));
  execFileSync('mkfifo', [join(root, 'd/fifo')]);
  const paths = ['d', 'd/file', 'd/link', 'd/fifo', 'd/missing', 'd/file/below-a-file'].map((p) => join(root, p));
  apply.acquireThread();
  const got = await apply.lstatMany(paths);
  assert.deepEqual(got, paths.map((p) => lstatOrNull(p)));
  assert.deepEqual(got.map((s) => s?.type ?? null), ['dir', 'file', 'symlink', 'other', null, null]);
});
