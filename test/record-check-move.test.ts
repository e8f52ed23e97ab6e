// Invariant: the server takes a move made against a version of its object that only changes of content or
// attributes replaced since, through any name of its inode (a move changes the name only, and the object keeps
// what those changes gave it), and still refuses one that another change of names (a move, a link, a removal)
// replaced. Fails without the rule in baseOf (apply/record-check.ts): chaos s96 seed 9374, c3 moved a file
// (`mv beta/sub/deep/d.md alpha/h`) whose inode another client wrote through its other name meanwhile; the
// client's rebase of the pending move was missed (its object removed here since, so Reintegrator#moveRebased
// could not help), the server refused it four times ("made against version 0x4a, current is 0xcf") and the
// client resynced.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { systemClock } from '#core/clock.js';
import { NO_VERSION, type NodeId } from '#core/ids.js';
import type { RecordDraft } from '#core/record.js';
import { baseOf, checkRecord } from '#apply/record-check.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { mkfs } from '#journal/mkfs.js';
import { tmpDir } from './helpers.js';

const peer = 'feedfacefeedface' as NodeId;
const other = 'cafebabecafebabe' as NodeId;

function setUp(t: { after: (fn: () => void) => void }): { db: FilesetDb; root: string; draft: (over: Partial<RecordDraft>) => RecordDraft } {
  const dir = tmpDir();
  const made = mkfs(dir.path, { fileset: 'default', force: false, clock: systemClock });
  const db = FilesetDb.open(made.paths.db);
  t.after(() => {
    db.close();
    dir.cleanup();
  });
  const draft = (over: Partial<RecordDraft>): RecordDraft => ({
    kind: 'create', fid: db.newFid(), path: 'a', newPath: null, target: null, preVersion: NO_VERSION,
    size: 1, hash: 'ab'.repeat(32), mode: 0o644, uid: 0, gid: 0, mtimeMs: 1000, origin: other, time: 1, ...over,
  });
  return { db, root: dir.path, draft };
}

const id = { ino: '90', mtimeNs: 1n, ctimeNs: 1n, racy: false };

test('a move made against a version that only writes and chmods through the other name of its inode replaced applies', (t) => {
  const { db, root, draft } = setUp(t);
  const [a] = db.commit([{ draft: draft({ path: 'a' }), identity: id }]);
  const [b] = db.commit([{ draft: draft({ kind: 'link', path: 'b', target: 'a', targetFid: a!.fid }), identity: id }]);
  db.commit([{ draft: draft({ kind: 'write', fid: b!.fid, path: 'b', preVersion: db.objectByFid(b!.fid)!.version, hash: 'cd'.repeat(32), size: 2 }), identity: id }]);
  db.commit([{ draft: draft({ kind: 'setattr', fid: b!.fid, path: 'b', preVersion: db.objectByFid(b!.fid)!.version, hash: 'cd'.repeat(32), size: 2, mode: 0o600 }), identity: id }]);
  assert.ok(db.objectByFid(a!.fid)!.version > a!.postVersion, 'the changes through b gave a new versions');
  const move = draft({ kind: 'rename', fid: a!.fid, path: 'a', newPath: 'c', preVersion: a!.postVersion, origin: peer });
  assert.equal(checkRecord({ db, root }, move), null, 'the move applies');
  // As the server's journaler makes it ready (ReintJournaler#ready): on the version it applies on.
  const base = baseOf({ db, root }, move);
  assert.equal(base, db.objectByFid(a!.fid)!.version, 'on the current version');
  const [m] = db.commit([{ draft: { ...move, preVersion: base! }, identity: id }]);
  const moved = db.objectByFid(a!.fid)!;
  assert.equal(moved.path, 'c');
  assert.equal(moved.hash, 'cd'.repeat(32), 'the content the write gave it stays');
  assert.equal(moved.mode, 0o600, 'so does the mode the chmod gave it');
  assert.equal(m!.kind, 'rename');
});

test('a move made against a version that a change of names replaced is still refused', (t) => {
  const { db, root, draft } = setUp(t);
  const [a] = db.commit([{ draft: draft({ path: 'a' }), identity: id }]);
  db.commit([{ draft: draft({ kind: 'write', fid: a!.fid, path: 'a', preVersion: a!.postVersion, hash: 'cd'.repeat(32), size: 2 }), identity: id }]);
  db.commit([{ draft: draft({ kind: 'rename', fid: a!.fid, path: 'a', newPath: 'd', preVersion: db.objectByFid(a!.fid)!.version }), identity: id }]);
  const move = draft({ kind: 'rename', fid: a!.fid, path: 'd', newPath: 'c', preVersion: a!.postVersion, origin: peer });
  const err = checkRecord({ db, root }, move);
  assert.match(err?.message ?? '', /made against version/, 'a move another node moved since meets that move');
  // And a write made against the old version still meets the later write.
  const write = draft({ kind: 'write', fid: a!.fid, path: 'd', preVersion: a!.postVersion, origin: peer });
  assert.match(checkRecord({ db, root }, write)?.message ?? '', /made against version/);
});
