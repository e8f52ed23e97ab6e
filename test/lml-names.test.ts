// Invariant: a pending LML record names things as they were when it was made. Moving an object aside (a
// conflict step, a server rename) rewrites the records that name it or what is below it since it arrived
// at that name, not older records of another object that held the name before. Found by the widened chaos
// run (issue 11, seed 2001): "mkdir beta/sub/sub" (made in the directory then at beta, moved away since)
// was rewritten to "beta.conflict-…/sub/sub" when the directory renamed onto beta later was kept aside, so
// it named a directory that the server could not have yet ("parent … does not exist here", then a resync).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { systemClock } from '#core/clock.js';
import { NO_VERSION, asTid, type Fid, type NodeId } from '#core/ids.js';
import type { RecordDraft } from '#core/record.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { mkfs } from '#journal/mkfs.js';
import { tmpDir } from './helpers.js';

function fresh(t: { after: (fn: () => void) => void }): FilesetDb {
  const dir = tmpDir('intersync-lmlnames-');
  const made = mkfs(dir.path, { fileset: 'default', force: false, clock: systemClock });
  const db = FilesetDb.open(made.paths.db);
  t.after(() => {
    db.close();
    dir.cleanup();
  });
  return db;
}

function local(db: FilesetDb, kind: RecordDraft['kind'], fid: Fid, path: string, newPath: string | null = null, preVersion = NO_VERSION): void {
  db.commitLocal([{
    draft: {
      kind, fid, path, newPath, target: null, preVersion, mode: kind === 'mkdir' ? 0o755 : 0o644, uid: 0, gid: 0,
      mtimeMs: 1000, size: null, hash: null, origin: db.meta.nodeId as NodeId, time: 1,
    },
    identity: null,
  }]);
}

/** A server's record of TID `tid`, applied here. */
function server(db: FilesetDb, tid: bigint, kind: RecordDraft['kind'], fid: Fid, path: string, newPath: string | null = null, pre = NO_VERSION): void {
  db.commitRemote([{ record: {
    tid: asTid(tid), kind, fid, path, newPath, target: null, preVersion: pre, postVersion: asTid(tid), mode: 0o755, uid: 0, gid: 0,
    mtimeMs: 1000, size: null, hash: null, origin: 'feedfacefeedface' as NodeId, time: 1, digest: '00'.repeat(32), originSeq: null,
  }, identity: null }], 'feedfacefeedface', 1);
}

/** A directory the server has, at `path`, applied here as its first record. */
function serverDir(db: FilesetDb, fid: Fid, path: string): void {
  server(db, 1n, 'mkdir', fid, path);
}

const pending = (db: FilesetDb): string[] => db.readLml(0n, 100).map((r) => `${r.kind} ${r.path}${r.newPath === null ? '' : ` -> ${r.newPath}`}`);

test('moving aside a directory renamed onto a name leaves the records of the directory that held the name before', (t) => {
  // Fails without the fix: "mkdir d/sub" becomes "mkdir d.aside/sub" (and "rename d -> e" stays), so the
  // LML makes d.aside/sub before anything puts a directory at d.aside.
  const db = fresh(t);
  // G: a directory the server has, at g.
  const g = db.newFid();
  serverDir(db, g, 'g');
  const d = db.newFid();
  const sub = db.newFid();
  local(db, 'mkdir', d, 'd'); // D made here at d ...
  local(db, 'mkdir', sub, 'd/sub'); // ... with sub inside
  local(db, 'rename', d, 'd', 'e'); // D moves to e
  local(db, 'rename', g, 'g', 'd', asTid(1n)); // G moves onto the free name d
  assert.deepEqual(pending(db), ['mkdir d', 'mkdir d/sub', 'rename d -> e', 'rename g -> d']);
  db.relocateLocal(g, 'd.aside'); // a conflict step keeps G beside the name
  assert.deepEqual(pending(db), ['mkdir d', 'mkdir d/sub', 'rename d -> e', 'rename g -> d.aside']);
  assert.equal(db.objectByFid(sub)?.path, 'e/sub', 'sub is in D, at e');
  assert.equal(db.objectByFid(g)?.path, 'd.aside');
});

test('moving aside a directory that was at its name all along rewrites every record below it', (t) => {
  const db = fresh(t);
  const d = db.newFid();
  const f = db.newFid();
  local(db, 'mkdir', d, 'd');
  local(db, 'create', f, 'd/f');
  local(db, 'setattr', f, 'd/f');
  db.relocateLocal(d, 'd.aside');
  assert.deepEqual(pending(db), ['mkdir d.aside', 'create d.aside/f', 'setattr d.aside/f']);
});

test('a directory the server no longer has is made again ahead of the pending records that need it', (t) => {
  // recreateDir is the answer to "parent d does not exist here" from the server while this client, caught
  // up, still has d (a conflict step kept it for what it gained): without it the client resynced.
  const db = fresh(t);
  const d = db.newFid();
  db.commitRemote([{ record: {
    tid: asTid(1n), kind: 'mkdir', fid: d, path: 'd', newPath: null, target: null, preVersion: NO_VERSION, postVersion: asTid(1n),
    mode: 0o750, uid: 0, gid: 0, mtimeMs: 1000, size: null, hash: null, origin: 'feedfacefeedface' as NodeId, time: 1, digest: '00'.repeat(32), originSeq: null,
  }, identity: null }], 'feedfacefeedface', 1);
  const f = db.newFid();
  local(db, 'create', f, 'd/f');
  local(db, 'setattr', d, 'd', null, asTid(1n));
  local(db, 'rename', d, 'd', 'e', asTid(1n));
  const before = db.readLml(0n, 100).map((r) => r.seq);
  const made = db.recreateDir(d, 'd', 5); // the name the first pending record knows it by
  assert.notEqual(made, d, 'a new fid');
  assert.equal(db.objectByFid(d), undefined, 'the old fid is gone here');
  assert.equal(db.objectByFid(made)?.version, NO_VERSION, 'the directory is not on the server yet');
  const after = db.readLml(0n, 100);
  assert.deepEqual(after.map((r) => `${r.kind} ${r.path}${r.newPath === null ? '' : ` -> ${r.newPath}`}`), ['mkdir d', 'create d/f', 'setattr d', 'rename d -> e']);
  assert.ok(after[0]!.seq > before.at(-1)!, 'new sequence numbers, above every one used');
  assert.equal(after[0]!.mode, db.objectByFid(made)?.mode, 'made with its mode here');
  for (const r of after.slice(2)) {
    assert.equal(r.fid, made, `${r.kind}: the directory's own records follow its new fid`);
    assert.equal(r.preVersion, NO_VERSION, `${r.kind}: made on the new object`);
  }
  assert.equal(after[1]!.fid, f);
});

test('a create that ships under another name takes along the records made below it and the hard links made to it', (t) => {
  // Fails without the fix: renameInLml rewrote only the object's own records: "create d/x" went to the
  // server's d, and "link c -> h" linked c to the server's h (another inode: hard-link groups diverged,
  // seed 777 of the widened chaos run).
  const db = fresh(t);
  const h = db.newFid();
  const c = db.newFid();
  const d = db.newFid();
  const x = db.newFid();
  local(db, 'create', h, 'h');
  db.commitLocal([{
    draft: {
      kind: 'link', fid: c, path: 'c', newPath: null, target: 'h', preVersion: NO_VERSION, mode: 0o644, uid: 0, gid: 0,
      mtimeMs: 1000, size: null, hash: null, origin: db.meta.nodeId as NodeId, time: 1,
    },
    identity: null,
  }]);
  local(db, 'mkdir', d, 'd');
  local(db, 'create', x, 'd/x');
  local(db, 'rename', d, 'd', 'e');
  local(db, 'mkdir', db.newFid(), 'd'); // another d, made after: not ours
  local(db, 'create', db.newFid(), 'd/z');
  const seqOf = (fid: Fid): bigint => db.localRecordsOf(fid)[0]!.seq;
  db.renameInLml(h, seqOf(h), 'h', 'h.conflict');
  db.renameInLml(d, seqOf(d), 'd', 'd.conflict');
  assert.deepEqual(db.readLml(0n, 100).map((r) => `${r.kind} ${r.path}${r.newPath === null ? '' : ` -> ${r.newPath}`}${r.target === null ? '' : ` => ${r.target}`}`), [
    'create h.conflict', 'link c => h.conflict', 'mkdir d.conflict', 'create d.conflict/x', 'rename d.conflict -> e', 'mkdir d', 'create d/z',
  ]);
});

test('a create shipped under another name takes along only the records that still name it: not those after its directory moved on', (t) => {
  // Fails without the fix: the entries made later at the old name, in another directory made there after
  // the first one moved, followed the first object too (seed 3101 of the widened chaos run: "mkdir
  // epsilon/sub" of a directory that lived elsewhere, refused for ever as "the name is taken").
  const db = fresh(t);
  const p = db.newFid();
  const n = db.newFid();
  const p2 = db.newFid();
  const n2 = db.newFid();
  local(db, 'mkdir', p, 'p');
  local(db, 'mkdir', n, 'p/n');
  local(db, 'rename', p, 'p', 'q'); // n is at q/n now
  local(db, 'mkdir', p2, 'p');
  local(db, 'mkdir', n2, 'p/n');
  local(db, 'create', db.newFid(), 'p/n/f');
  db.renameInLml(n, db.localRecordsOf(n)[0]!.seq, 'p/n', 'p/n.c');
  assert.deepEqual(pending(db), ['mkdir p', 'mkdir p/n.c', 'rename p -> q', 'mkdir p', 'mkdir p/n', 'create p/n/f']);
});

test('moving aside an entry of a directory renamed here rewrites its records made before that rename, at the names of then', (t) => {
  // Fails without the fix: "mkdir alpha/sub" (made before alpha was renamed here) kept its name when the
  // directory, now at g/sub, was kept aside as g/sub.c; the server then refused it for ever, the name being
  // taken there (seed 4001 of the widened chaos run: 69 resyncs).
  const db = fresh(t);
  const alpha = db.newFid();
  serverDir(db, alpha, 'alpha');
  const sub = db.newFid();
  local(db, 'mkdir', sub, 'alpha/sub');
  local(db, 'create', db.newFid(), 'alpha/sub/d.md');
  local(db, 'rename', alpha, 'alpha', 'g', asTid(1n));
  local(db, 'create', db.newFid(), 'g/sub/h');
  assert.equal(db.objectByFid(sub)?.path, 'g/sub');
  db.relocateLocal(sub, 'g/sub.c');
  assert.deepEqual(pending(db), ['mkdir alpha/sub.c', 'create alpha/sub.c/d.md', 'rename alpha -> g', 'create g/sub.c/h']);
});

test('moving a file aside into another directory rewrites its records older than a pending rename above both, and the directory they name it in', (t) => {
  // Fails without the fix: "create d/sub/a" (made before d moved to e) stayed, naming d/sub, which the server
  // removed: refused for ever ("parent d/sub does not exist here") and a resync (chaos seeds 9203, 9212).
  const db = fresh(t);
  const d = db.newFid();
  const sub = db.newFid();
  const a = db.newFid();
  const b = db.newFid();
  local(db, 'mkdir', d, 'd');
  local(db, 'mkdir', sub, 'd/sub');
  local(db, 'create', a, 'd/sub/a');
  local(db, 'create', b, 'd/sub/b');
  local(db, 'rename', d, 'd', 'e'); // d moves to e, with sub and its files
  local(db, 'rename', b, 'e/sub/b', 'e/sub/c'); // b moves within sub after that
  db.relocateLocal(a, 'e/a.aside'); // a conflict step sets a beside sub, in e
  db.relocateLocal(b, 'e/c.aside'); // and c
  const recs = db.readLml(0n, 100);
  assert.deepEqual(recs.map((r) => `${r.kind} ${r.path}${r.newPath === null ? '' : ` -> ${r.newPath}`}`), [
    'mkdir d', 'mkdir d/sub', 'create d/a.aside', 'create d/sub/b', 'rename d -> e', 'rename e/sub/b -> e/c.aside',
  ]);
  assert.equal(recs[2]!.parent, d, 'a is made in d (at e now), by fid');
  assert.equal(recs[3]!.parent, sub, 'b is made in sub: its last move gives it its name now');
  assert.equal(recs[5]!.parent, d, 'b moves into d (at e)');
  assert.equal(db.objectByFid(a)?.path, 'e/a.aside');
});

test('moving aside a directory back at its name by a conflict step rewrites its own older records, not those made in the directory that had the name meanwhile', (t) => {
  // Fails without the fix (#moveLmlEra: its own records naming the name follow it, before `since` too): L's
  // own "mkdir gamma" stayed, older than S's departure from gamma, and shipped at a name L no longer had. A
  // conflict step's moves (set aside, back at the name) are journaled nowhere, so the records cannot tell
  // when L came back (chaos s53 seed 9242, c3, where such names went astray and the server set an object aside
  // under another name than this node's: a resync).
  const db = fresh(t);
  // S: a directory the server has, at gamma.
  const s = db.newFid();
  serverDir(db, s, 'gamma');
  const l = db.newFid();
  const deep = db.newFid();
  local(db, 'mkdir', l, 'gamma.x'); // L made here (kept beside gamma by an earlier conflict step, say)
  local(db, 'mkdir', deep, 'gamma/deep'); // deep made in S, at gamma
  local(db, 'rename', s, 'gamma', 'moved', asTid(1n)); // S moves away: the name gamma is free here
  db.relocateLocal(l, 'gamma'); // L back at the name (ConflictResolver#reclaim)
  assert.deepEqual(pending(db), ['mkdir gamma', 'mkdir gamma/deep', 'rename gamma -> moved']);
  db.relocateLocal(l, 'gamma.c'); // and beside it again, for another server record
  assert.deepEqual(pending(db), ['mkdir gamma.c', 'mkdir gamma/deep', 'rename gamma -> moved'], 'deep is made in S, which was at gamma then');
  assert.equal(db.readLml(0n, 100)[1]!.parent, s, 'the record names its directory S by fid');
  assert.equal(db.objectByFid(deep)?.path, 'moved/deep');
});

test('moving a directory aside leaves a name its records give in another directory, found elsewhere by fid, whatever their path says', (t) => {
  // Fails without the fix (#moveLmlEra's `elsewhere`): "mkdir gamma/deep", whose directory by fid is S (at
  // moved here), became "mkdir gamma.c/deep" because its path still began with gamma, and the next move of
  // deep itself no longer found it. The stale path is set by hand here; in chaos s53 seed 9242 (c3) a conflict
  // step's moves, which no record shows, left it so.
  const db = fresh(t);
  const s = db.newFid();
  serverDir(db, s, 'moved');
  const l = db.newFid();
  const deep = db.newFid();
  local(db, 'mkdir', l, 'gamma');
  local(db, 'mkdir', deep, 'moved/deep');
  const made = db.readLml(0n, 100)[1]!;
  assert.equal(made.parent, s, 'journaled with its directory S');
  db.rewriteLml([{ ...made, path: 'gamma/deep' }], []);
  db.relocateLocal(l, 'gamma.c');
  assert.deepEqual(pending(db), ['mkdir gamma.c', 'mkdir gamma/deep'], 'deep is in S, not in L');
});

test("a server's move above a directory moved on here since rewrites what was made in the directory before that move", (t) => {
  // Fails without taking the directory's name at the record's time (LmlRewriter#moveLmlEra, `thenOf`): "create
  // beta/sub/f" stayed (sub was at alpha/deep here, away from gamma/deep) while the server had sub at
  // gamma/deep/sub; the conflict step's later move of f aside missed the record, which then shipped and was
  // set aside under another name than this node's: a resync (chaos s89 seed 9301, c2).
  const db = fresh(t);
  const beta = db.newFid();
  const sub = db.newFid();
  const gamma = db.newFid();
  const alpha = db.newFid();
  server(db, 1n, 'mkdir', beta, 'beta');
  server(db, 2n, 'mkdir', sub, 'beta/sub');
  server(db, 3n, 'mkdir', gamma, 'gamma');
  server(db, 4n, 'mkdir', alpha, 'alpha');
  const f = db.newFid();
  local(db, 'create', f, 'beta/sub/f');
  local(db, 'rename', sub, 'beta/sub', 'alpha/deep', asTid(2n));
  server(db, 5n, 'rename', beta, 'beta', 'gamma/deep', asTid(1n));
  assert.deepEqual(pending(db), ['create gamma/deep/sub/f', 'rename gamma/deep/sub -> alpha/deep']);
  db.relocateLocal(f, 'alpha/deep/f.aside'); // a conflict step keeps f beside a name the server made
  assert.deepEqual(pending(db), ['create gamma/deep/sub/f.aside', 'rename gamma/deep/sub -> alpha/deep']);
});

test('an object set beside within its directory takes its new name in the record that names it there by fid, whatever that record says of the directory', (t) => {
  // Fails without LmlRewriter#renamedInItsDir: the create, whose path still named the directory by an older name
  // (a conflict step had moved the directory, no record shows it), kept b.txt; the server made the file there
  // (by the directory's fid) under b.txt, or set it beside under a conflict name of its own, while this node
  // held it under the one the step gave it: "here at …", a resync (chaos s98 seed 9387, s97 9400).
  const db = fresh(t);
  const x = db.newFid();
  serverDir(db, x, 'x');
  const f = db.newFid();
  local(db, 'create', f, 'x/b.txt');
  local(db, 'write', f, 'x/b.txt');
  const [made] = db.readLml(0n, 10);
  assert.equal(made!.parent, x, 'the create names its directory by fid');
  // The record's path names the directory as it was before a move no record shows.
  db.rewriteLml([{ ...made!, path: 'old/b.txt' }], []);
  db.relocateLocal(f, 'x/b.conflict-1.txt');
  assert.deepEqual(pending(db), ['create old/b.conflict-1.txt', 'write x/b.conflict-1.txt'], 'the name within the directory follows');
  assert.equal(db.readLml(0n, 10)[0]!.parent, x, 'in the same directory by fid');
});
