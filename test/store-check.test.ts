// Invariant: the check made before a store is opened never refuses a healthy store (issue 19, item 2).
// A checkpoint copies the WAL's pages into the main file page 1 first, so while one runs (or after a
// kill or a full disk stopped it half-way) the main file is shorter than its header's page count while
// the WAL still holds every page: SQLite reads such a store whole. The check used to compare the size
// with the header alone and refused it with DB_CORRUPT, from the daemon's start and from `status`.
// A truly truncated store (no WAL to hold the pages) is still refused, untouched; and the hint of a
// refusal says how to check the store before anything that throws the journal away.
//
// The first two FAIL without the fix (journal/store-check.ts, the DB_CORRUPT hint; checked with the old
// size-only check and hint put back): DB_CORRUPT "file holds … bytes, its header says …" from status and
// open; a hint that offered mkfs --force and no way to check. The third guards the other side (a WAL is
// no free pass: SQLite still refuses a damaged store, and a refusal checkpoints nothing into it).
import assert from 'node:assert/strict';
import { closeSync, copyFileSync, existsSync, openSync, readFileSync, rmSync, statSync, truncateSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { systemClock } from '#core/clock.js';
import { IntersyncError } from '#core/errors.js';
import { NO_VERSION, type NodeId } from '#core/ids.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { mkfs } from '#journal/mkfs.js';
import { cli, tmpDir } from './helpers.js';

const isCode = (code: string) => (e: unknown) => e instanceof IntersyncError && e.code === code;

/** `n` new files in one transaction (few WAL frames: no automatic checkpoint runs meanwhile). */
function commitFiles(db: FilesetDb, from: number, n: number): void {
  db.commit(Array.from({ length: n }, (_, k) => ({
    draft: {
      kind: 'create' as const, fid: db.newFid(), path: `f${from + k}`, newPath: null, target: null, preVersion: NO_VERSION, size: 1,
      hash: 'ab'.repeat(32), mode: 0o644, uid: 0, gid: 0, mtimeMs: 1000, origin: db.meta.nodeId as NodeId, time: 1,
    },
    identity: null,
  })));
}

test('a store whose main file is shorter than its header says, with the pages in its WAL, opens with every record', (t) => {
  const d = tmpDir();
  t.after(d.cleanup);
  const r = mkfs(d.path, { fileset: 'default', force: false, clock: systemClock });
  const file = r.paths.db;
  const first = FilesetDb.open(file);
  commitFiles(first, 0, 20);
  first.close(); // checkpointed on close: the main file holds 20 records, and there is no WAL
  const pageSize = Number(new Database(file, { readonly: true }).pragma('page_size', { simple: true }));

  // A second connection (opened first) keeps the WAL from being checkpointed when the store closes.
  const holder = new Database(file);
  holder.pragma('wal_autocheckpoint = 0');
  holder.prepare('SELECT count(*) FROM kml').get();
  const grow = FilesetDb.open(file);
  commitFiles(grow, 20, 400);
  // The files as a kill would leave them: the main file of 20 records, the WAL with 420.
  const cut = join(d.path, 'cut');
  copyFileSync(file, `${cut}.db`);
  copyFileSync(`${file}-wal`, `${cut}.db-wal`);
  grow.close();
  holder.close(); // the last connection: checkpoints everything into `file`
  const whole = readFileSync(file);
  const header = whole.subarray(0, pageSize);
  // The checkpoint had copied page 1 (the new header) and nothing after it.
  const fd = openSync(`${cut}.db`, 'r+');
  writeSync(fd, header, 0, pageSize, 0);
  closeSync(fd);
  const size = statSync(`${cut}.db`).size;
  const pages = header.readUInt32BE(28);
  assert.ok(size < pages * pageSize, `the main file (${size} bytes) is shorter than its header says (${pages} pages, ${whole.length} bytes when whole)`);

  // That store is the fileset's now: `status` (read-only) and the daemon's open both read it whole.
  for (const ext of ['', '-wal']) copyFileSync(`${cut}.db${ext}`, `${file}${ext}`);
  rmSync(`${file}-shm`, { force: true });
  const st = cli(['status', d.path, '--json']);
  assert.equal(st.code, 0, st.stderr);
  const db = FilesetDb.open(file);
  try {
    assert.equal(db.recordCount(), 420, 'every record is there');
    assert.equal(db.objectCount(), 420, 'every object');
    assert.equal(db.lastTid, 420n, 'the last TID of the WAL');
  } finally {
    db.close();
  }
});

test('a truncated store without a WAL is still refused, untouched, with a hint that says how to check it first', (t) => {
  const d = tmpDir();
  t.after(d.cleanup);
  const r = mkfs(d.path, { fileset: 'default', force: false, clock: systemClock });
  const db = FilesetDb.open(r.paths.db);
  commitFiles(db, 0, 200);
  db.close();
  truncateSync(r.paths.db, Math.floor(statSync(r.paths.db).size / 2));
  const before = readFileSync(r.paths.db);
  let err: unknown;
  try {
    FilesetDb.open(r.paths.db);
  } catch (e) {
    err = e;
  }
  assert.ok(isCode('DB_CORRUPT')(err));
  assert.deepEqual(readFileSync(r.paths.db), before, 'left as it was');
  assert.equal(existsSync(`${r.paths.db}-wal`), false, 'no WAL made');
  const hint = (err as IntersyncError).hint ?? '';
  assert.match(hint, /integrity_check/, 'the hint says how to check the store');
  assert.ok(hint.indexOf('integrity_check') < (hint.indexOf('--force') === -1 ? Infinity : hint.indexOf('--force')), 'checking comes before any step that throws the journal away');
});

test('a short main file whose WAL does not hold the missing pages is refused, main file and WAL left as they were', (t) => {
  const d = tmpDir();
  t.after(d.cleanup);
  const r = mkfs(d.path, { fileset: 'default', force: false, clock: systemClock });
  const file = r.paths.db;
  const first = FilesetDb.open(file);
  commitFiles(first, 0, 300);
  first.close();
  const holder = new Database(file);
  holder.pragma('wal_autocheckpoint = 0');
  holder.prepare('SELECT count(*) FROM kml').get();
  const more = FilesetDb.open(file);
  commitFiles(more, 300, 1); // a WAL of a few pages
  const cut = join(d.path, 'cut.db');
  copyFileSync(file, cut);
  copyFileSync(`${file}-wal`, `${cut}-wal`);
  more.close();
  holder.close();
  truncateSync(cut, Math.floor(statSync(cut).size / 2));
  const main = readFileSync(cut);
  const wal = readFileSync(`${cut}-wal`);
  assert.throws(() => FilesetDb.open(cut), isCode('DB_CORRUPT'));
  assert.deepEqual(readFileSync(cut), main, 'main file untouched');
  assert.deepEqual(readFileSync(`${cut}-wal`), wal, 'WAL untouched (no checkpoint into a damaged store)');
});
