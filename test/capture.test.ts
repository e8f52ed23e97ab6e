// Invariant: every change made to the backing directory is journaled exactly once, in order, with the
// right pre- and post-versions; renames are one record; what the daemon itself applies never echoes back.
import assert from 'node:assert/strict';
import {
  appendFileSync, chmodSync, linkSync, mkdirSync, openSync, closeSync, writeSync, renameSync, rmSync, rmdirSync,
  symlinkSync, truncateSync, unlinkSync, writeFileSync, utimesSync, readFileSync, futimesSync,
} from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { formatDigest } from '#core/digest.js';
import { NO_VERSION, asTid } from '#core/ids.js';
import { lstatOrNull, identityOf, nowNs, type DiskStat } from '#fsio/disk.js';
import { digestOfDisk, startupScan, unchanged } from '#presto/scan.js';
import { FsThread } from '#apply/fs-thread.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { findFileset } from '#journal/layout.js';
import type { WatchFn } from '#presto/dir-watcher.js';
import { watch } from 'node:fs';
import { records, settle, shapes, sleep, startNode, tmpDir, withNode } from './helpers.js';


/**
 * Start a node on `dir`, make files with `make`, journal them, stop; then start and stop once more, so that
 * nothing is left racy (files journaled within the racy window of their write are read again at the next
 * start; after it, stat data alone decides). Returns the stopped node.
 */
async function journaledAtRest(dir: string, logs: string, make: () => void): Promise<Awaited<ReturnType<typeof startNode>>> {
  let node = await startNode(dir, logs);
  make();
  await settle(node);
  await node.stop();
  await sleep(60);
  node = await startNode(dir, logs);
  await settle(node);
  await node.stop();
  return node;
}

async function diskAgrees(dir: string, node: Awaited<ReturnType<typeof startNode>>): Promise<void> {
  const disk = await digestOfDisk(dir);
  assert.equal(formatDigest(node.db.digest), formatDigest(disk.digest), 'journal digest equals the digest of the disk');
}

test('every record kind is journaled through the real watcher, with pre/post versions', async (t) => {
  await withNode(t, async (dir, node) => {
    const p = (s: string) => join(dir, s);
    writeFileSync(p('a.txt'), 'hello');
    await settle(node);
    mkdirSync(p('d'));
    await settle(node);
    writeFileSync(p('a.txt'), 'hello world');
    await settle(node);
    truncateSync(p('a.txt'), 0);
    await settle(node);
    chmodSync(p('a.txt'), 0o600);
    await settle(node);
    renameSync(p('a.txt'), p('d/b.txt'));
    await settle(node);
    linkSync(p('d/b.txt'), p('hard'));
    await settle(node);
    symlinkSync('d/b.txt', p('sym'));
    await settle(node);
    unlinkSync(p('hard'));
    await settle(node);
    unlinkSync(p('d/b.txt'));
    await settle(node);
    rmdirSync(p('d'));
    await settle(node);

    const recs = records(node);
    assert.deepEqual(shapes(recs), [
      'create a.txt', 'mkdir d', 'write a.txt', 'truncate a.txt', 'setattr a.txt', 'rename a.txt -> d/b.txt',
      'link hard', 'symlink sym', 'unlink hard', 'unlink d/b.txt', 'rmdir d',
    ]);
    // TIDs strictly increase and each record's post-version is its TID.
    recs.forEach((r, i) => {
      assert.equal(r.tid, BigInt(i + 1));
      assert.equal(r.postVersion, r.tid);
    });
    const byKind = (k: string, path: string) => recs.find((r) => r.kind === k && r.path === path)!;
    const create = byKind('create', 'a.txt');
    assert.equal(create.preVersion, NO_VERSION);
    assert.equal(create.size, 5);
    assert.equal(create.hash, '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824');
    assert.equal(byKind('write', 'a.txt').preVersion, create.tid);
    assert.equal(byKind('truncate', 'a.txt').preVersion, byKind('write', 'a.txt').tid);
    assert.equal(byKind('setattr', 'a.txt').mode, 0o600);
    assert.equal(byKind('rename', 'a.txt').preVersion, byKind('setattr', 'a.txt').tid);
    assert.equal(byKind('rename', 'a.txt').fid, create.fid, 'the fid survives the rename');
    assert.equal(byKind('link', 'hard').target, 'd/b.txt');
    assert.equal(byKind('symlink', 'sym').target, 'd/b.txt');
    assert.equal(byKind('unlink', 'd/b.txt').preVersion, byKind('rename', 'a.txt').tid);
    assert.equal(byKind('rmdir', 'd').preVersion, byKind('mkdir', 'd').tid);
    for (const r of recs) assert.equal(r.origin, node.db.meta.nodeId);
    await diskAgrees(dir, node);
  });
});

test('renaming a directory holding 1,000 files is one record', async (t) => {
  await withNode(t, async (dir, node) => {
    mkdirSync(join(dir, 'big/sub'), { recursive: true });
    for (let i = 0; i < 1000; i++) writeFileSync(join(dir, 'big', i % 10 === 0 ? `sub/f${i}` : `f${i}`), `content ${i}`);
    await settle(node);
    const before = node.db.lastTid;
    assert.equal(records(node).length, 1002);
    renameSync(join(dir, 'big'), join(dir, 'moved'));
    await settle(node);
    const after = records(node, before);
    assert.deepEqual(shapes(after), ['rename big -> moved']);
    assert.equal(node.db.objectByPath('moved/sub/f10')?.type, 'file');
    // The watches moved with the directories: a change deep inside is still seen.
    writeFileSync(join(dir, 'moved/sub/f10'), 'changed after the move');
    writeFileSync(join(dir, 'moved/sub/new'), 'new after the move');
    await settle(node);
    assert.deepEqual(shapes(records(node, asTid(node.db.lastTid - 2n))), ['write moved/sub/f10', 'create moved/sub/new']);
    await diskAgrees(dir, node);
  });
});

test('a file written in many pieces is journaled once when it is quiet', async (t) => {
  await withNode(t, async (dir, node) => {
    const fd = openSync(join(dir, 'log.bin'), 'w');
    for (let i = 0; i < 50; i++) {
      writeSync(fd, Buffer.alloc(4096, i));
      if (i % 10 === 0) await sleep(2);
    }
    closeSync(fd);
    await settle(node);
    const recs = records(node);
    assert.deepEqual(shapes(recs), ['create log.bin']);
    assert.equal(recs[0]!.size, 50 * 4096);
  });
});

test('a file emptied to be rewritten is not journaled empty; one that stays empty is', async (t) => {
  await withNode(t, async (dir, node) => {
    writeFileSync(join(dir, 'page.html'), '<p>v1</p>');
    writeFileSync(join(dir, 'gone.txt'), 'soon empty');
    await settle(node);
    const before = node.db.lastTid;
    // Emptied (O_TRUNC) with its mtime still "now" to capture (set ahead, so a slow machine cannot age it),
    // the new content written long after the quiet time: capture waits for it instead of journaling the empty file.
    const fd = openSync(join(dir, 'page.html'), 'w');
    const ahead = Date.now() / 1000 + 3;
    futimesSync(fd, ahead, ahead);
    await sleep(300);
    writeSync(fd, '<p>v2</p>');
    closeSync(fd);
    truncateSync(join(dir, 'gone.txt'), 0);
    await settle(node);
    for (let i = 0; i < 100 && records(node, before).length < 2; i++) await sleep(50);
    assert.deepEqual(shapes(records(node, before)).sort(), ['truncate gone.txt', 'write page.html']);
    await diskAgrees(dir, node);
  });
});

test('trees created faster than watches can be added are journaled whole (mkdir -p, cp -r)', async (t) => {
  await withNode(t, async (dir, node) => {
    mkdirSync(join(dir, 'x/y/z'), { recursive: true });
    writeFileSync(join(dir, 'x/y/z/deep.txt'), 'deep');
    writeFileSync(join(dir, 'x/top.txt'), 'top');
    await settle(node);
    assert.deepEqual(shapes(records(node)).sort(), ['create x/top.txt', 'create x/y/z/deep.txt', 'mkdir x', 'mkdir x/y', 'mkdir x/y/z']);
    // The innermost directory is watched too.
    writeFileSync(join(dir, 'x/y/z/later.txt'), 'later');
    await settle(node);
    assert.deepEqual(shapes(records(node, asTid(node.db.lastTid - 1n))), ['create x/y/z/later.txt']);
    await diskAgrees(dir, node);
  });
});

test('replacing a file by rename over it, and swapping names, keep the journal equal to the disk', async (t) => {
  await withNode(t, async (dir, node) => {
    const p = (s: string) => join(dir, s);
    writeFileSync(p('a'), 'A');
    writeFileSync(p('b'), 'B');
    await settle(node);
    renameSync(p('a'), p('b')); // b is replaced
    await settle(node);
    assert.deepEqual(shapes(records(node, asTid(2n))), ['unlink b', 'rename a -> b']);
    writeFileSync(p('c'), 'C');
    await settle(node);
    renameSync(p('b'), p('tmp'));
    renameSync(p('c'), p('b'));
    renameSync(p('tmp'), p('c'));
    await settle(node);
    assert.equal(readFileSync(p('b'), 'utf8'), 'C');
    await diskAgrees(dir, node);
  });
});

test('.intermezzo is never journaled and symlinks are never followed', async (t) => {
  await withNode(t, async (dir, node) => {
    const outside = tmpDir();
    t.after(outside.cleanup);
    writeFileSync(join(outside.path, 'secret'), 'outside');
    writeFileSync(join(dir, '.intermezzo/default/scratch'), 'metadata');
    symlinkSync(outside.path, join(dir, 'out'));
    await settle(node);
    writeFileSync(join(outside.path, 'secret'), 'changed outside');
    await settle(node);
    assert.deepEqual(shapes(records(node)), ['symlink out']);
    assert.equal(records(node)[0]!.target, outside.path);
  });
});

test('changes made while the daemon was stopped are journaled at the next start, reading only changed files', async (t) => {
  const dir = tmpDir();
  const logs = tmpDir('intersync-logs-');
  t.after(() => {
    dir.cleanup();
    logs.cleanup();
  });
  const p = (s: string) => join(dir.path, s);
  let node = await journaledAtRest(dir.path, logs.path, () => {
    mkdirSync(p('keep'));
    for (let i = 0; i < 50; i++) writeFileSync(p(`keep/f${i}`), `v1 ${i}`);
    writeFileSync(p('gone'), 'bye');
    mkdirSync(p('olddir'));
    writeFileSync(p('olddir/inner'), 'inner');
  });
  const before = node.db.lastTid;
  assert.equal(before, 54n, 'nothing changed: the restart journaled nothing');
  writeFileSync(p('keep/f3'), 'v2 changed');
  // Created before the unlink: ext4 may give a new file the inode just freed, and then the disk shows a rename.
  writeFileSync(p('fresh'), 'new while down');
  unlinkSync(p('gone'));
  renameSync(p('olddir'), p('newdir'));
  chmodSync(p('keep/f4'), 0o600);

  node = await startNode(dir.path, logs.path);
  t.after(() => node.stop());
  await settle(node);
  assert.deepEqual(shapes(records(node, before)).sort(), [
    'create fresh', 'rename olddir -> newdir', 'setattr keep/f4', 'unlink gone', 'write keep/f3',
  ]);
  const scan = node.capture.status().lastScan!;
  // keep/f3, keep/f4, gone, fresh, the moved directory under both names and its file under the new one (the scan
  // compares one directory at a time: what was journaled below a directory gone from its name goes with its move):
  // nothing else is read.
  assert.equal(scan.dirty, 7);
  await diskAgrees(dir.path, node);

  // A restart with nothing changed journals nothing.
  const tid = node.db.lastTid;
  await node.stop();
  node = await startNode(dir.path, logs.path);
  await settle(node);
  assert.equal(node.db.lastTid, tid);
});

test('what the apply path writes under the echo guard does not come back as a local change', async (t) => {
  await withNode(t, async (dir, node) => {
    writeFileSync(join(dir, 'f'), 'local');
    await settle(node);
    const tid = node.db.lastTid;
    const obj = node.db.objectByPath('f')!;
    // Stand-in for the apply path: hold the path, write, commit the record with the new stat identity, release.
    await node.guard.around(['f'], async () => {
      writeFileSync(join(dir, 'f'), 'from a peer');
      await sleep(40); // let the watcher report the write while the path is held
      const st = lstatOrNull(join(dir, 'f'))!;
      node.db.commit([{
        draft: {
          kind: 'write', fid: obj.fid, path: 'f', newPath: null, target: null, preVersion: obj.version,
          size: st.size, hash: 'b8d2d2d0b1dd1d84d0d2e2d2c5fbc9b9a0e1f6c4c28a8a7a0d25d6c3d3d6f0f5', mode: st.mode, uid: st.uid, gid: st.gid,
          mtimeMs: st.mtimeMs, origin: 'feedfacefeedface' as never, time: Date.now(),
        },
        identity: { ...identityOf(st, nowNs()), racy: false },
      }]);
    });
    await settle(node);
    const after = records(node, tid);
    assert.equal(after.length, 1, 'only the applied record, no echo');
    assert.equal(after[0]!.origin, 'feedfacefeedface');
  });
});

test('when the inotify limit is reached it says so, and unwatched directories are still journaled by rescans', async (t) => {
  const dir = tmpDir();
  const logs = tmpDir('intersync-logs-');
  t.after(() => {
    dir.cleanup();
    logs.cleanup();
  });
  let watches = 0;
  const limited: WatchFn = (path, listener) => {
    if (++watches > 2) throw Object.assign(new Error('ENOSPC: System limit for number of file watchers reached'), { code: 'ENOSPC' });
    return watch(path, { persistent: true, encoding: 'utf8' }, listener);
  };
  const warnings: string[] = [];
  const node = await startNode(dir.path, logs.path, { watchFn: limited, pollMs: 100, onWarning: (e) => warnings.push(e.code) });
  t.after(() => node.stop());
  mkdirSync(join(dir.path, 'a'));
  await settle(node);
  mkdirSync(join(dir.path, 'b')); // watches: root, a, then b fails
  await settle(node);
  assert.deepEqual(warnings, ['WATCH_LIMIT']);
  const st = node.capture.status();
  assert.ok(st.watchLimit !== null);
  assert.match(st.watchLimit.hint, /sysctl -w fs\.inotify\.max_user_watches=/);
  writeFileSync(join(dir.path, 'b/inside'), 'seen by the rescan');
  await sleep(300);
  await settle(node);
  assert.ok(shapes(records(node)).includes('create b/inside'));
  const log = readFileSync(node.logFile, 'utf8');
  assert.match(log, /inotify watch limit reached/);
});

test('appends, utimes and chmod on directories', async (t) => {
  await withNode(t, async (dir, node) => {
    mkdirSync(join(dir, 'd'));
    writeFileSync(join(dir, 'd/f'), 'x');
    await settle(node);
    const tid = node.db.lastTid;
    appendFileSync(join(dir, 'd/f'), 'y');
    await settle(node);
    utimesSync(join(dir, 'd/f'), new Date(1_000_000_000_000), new Date(1_000_000_000_000));
    await settle(node);
    chmodSync(join(dir, 'd'), 0o700);
    await settle(node);
    rmSync(join(dir, 'd'), { recursive: true });
    await settle(node);
    assert.deepEqual(shapes(records(node, tid)), ['write d/f', 'setattr d/f', 'setattr d', 'unlink d/f', 'rmdir d']);
    assert.equal(records(node, tid)[1]!.mtimeMs, 1_000_000_000_000);
    await diskAgrees(dir, node);
  });
});

test('a same-size rewrite followed by a rename in one batch journals the new content (bench finding)', async (t) => {
  const dir = tmpDir();
  const logs = tmpDir('intersync-logs-');
  const node = await startNode(dir.path, logs.path, { settleMs: 300 });
  t.after(async () => {
    await node.stop();
    dir.cleanup();
    logs.cleanup();
  });
  writeFileSync(join(dir.path, 'a.txt'), 'aaaa');
  await settle(node, 400);
  await sleep(60);
  writeFileSync(join(dir.path, 'a.txt'), 'bbbb');
  renameSync(join(dir.path, 'a.txt'), join(dir.path, 'a2.txt'));
  await settle(node, 400);
  await diskAgrees(dir.path, node);
  assert.ok(shapes(records(node)).includes('write a2.txt'));
});

test('the start-up scan split with the file-system thread finds what the one-thread scan finds', async (t) => {
  const dir = tmpDir();
  const logs = tmpDir('intersync-logs-');
  const fs = new FsThread();
  t.after(async () => {
    await fs.close();
    dir.cleanup();
    logs.cleanup();
  });
  const p = (s: string) => join(dir.path, s);
  await journaledAtRest(dir.path, logs.path, () => {
    for (const d of ['a', 'b', 'c/d']) {
      mkdirSync(p(d), { recursive: true });
      for (let i = 0; i < 30; i++) writeFileSync(p(`${d}/f${i}`), `${d} ${i}`);
    }
    symlinkSync('f1', p('a/link'));
  });
  writeFileSync(p('a/f3'), 'changed');
  chmodSync(p('a/f4'), 0o600);
  unlinkSync(p('b/f5'));
  writeFileSync(p('b/new'), 'new');
  renameSync(p('c/d'), p('c/moved'));
  unlinkSync(p('a/f6'));
  mkdirSync(p('a/f6')); // a file became a directory
  writeFileSync(p('a/f6/inside'), 'inside');
  rmSync(p('a/link'));
  symlinkSync('f2', p('a/link')); // a symlink replaced
  // The journal as the stopped daemon left it, scanned both ways.
  const db = FilesetDb.open(findFileset(dir.path).db, { readonly: true, check: false });
  t.after(() => db.close());
  const one = await startupScan(dir.path, db, null);
  const split = await startupScan(dir.path, db, null, (abs) => fs.lstat(abs));
  assert.equal(split.entries, one.entries);
  assert.deepEqual([...split.dirty].sort(), [...one.dirty].sort());
  for (const x of ['a/f3', 'a/f4', 'b/f5', 'b/new', 'c/d', 'c/moved', 'a/f6', 'a/f6/inside', 'a/link']) assert.ok(split.dirty.includes(x), `${x} is dirty`);
  assert.ok(!split.dirty.includes('a/f7') && !split.dirty.includes('b/f0'), 'unchanged files are not');
});

test('a symlink replaced by another that got the freed inode back is a change: its ctime differs', () => {
  const row = { type: 'symlink' as const, ino: '77', mode: 0o777, uid: 0, gid: 0, size: 4, mtimeNs: 1_000n, ctimeNs: 1_000n, racy: false };
  const same: DiskStat = { type: 'symlink', ino: '77', mode: 0o777, uid: 0, gid: 0, size: 4, nlink: 1, mtimeMs: 0.001, mtimeNs: 1_000n, ctimeNs: 1_000n };
  assert.equal(unchanged(row, same), true);
  assert.equal(unchanged(row, { ...same, ctimeNs: 2_000n, mtimeNs: 2_000n }), false, 'recreated on the same inode');
  assert.equal(unchanged({ ...row, racy: true }, same), false, 'a racy stat is looked at again');
  assert.equal(unchanged({ ...row, ctimeNs: null }, same), true, 'no identity recorded: by inode and owner only');
});

test('a symlink made again with another target is journaled, while watching and while stopped, even on its old inode', async (t) => {
  const dir = tmpDir();
  const logs = tmpDir('intersync-logs-');
  t.after(() => {
    dir.cleanup();
    logs.cleanup();
  });
  const link = join(dir.path, 'link');
  let node = await startNode(dir.path, logs.path);
  let reused = 0;
  const remake = (target: string): void => {
    const before = lstatOrNull(link)?.ino;
    rmSync(link);
    symlinkSync(target, link); // ext4 often hands the freed inode straight back
    if (lstatOrNull(link)?.ino === before) reused++;
  };
  try {
    symlinkSync('t0', link);
    await settle(node);
    for (let i = 1; i <= 4; i++) {
      remake(`t${i}`);
      await settle(node);
      assert.equal(node.db.objectByPath('link')?.target, `t${i}`, `watching, round ${i}`);
    }
    await diskAgrees(dir.path, node);
    await node.stop();
    await sleep(60);
    remake('while-stopped');
    node = await startNode(dir.path, logs.path);
    await settle(node);
    assert.equal(node.db.objectByPath('link')?.target, 'while-stopped', 'journaled by the start-up scan');
    await diskAgrees(dir.path, node);
  } finally {
    await node.stop();
  }
  t.diagnostic(`${reused} of 5 remade links got their old inode back`);
});
