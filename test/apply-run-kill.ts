// A helper process for apply-run.test.ts (not a test itself): applies a run of a client's new names to the
// fileset at argv[2] through applyRun and kills itself (SIGKILL) at the third record's turn, after the run's
// notes are committed and the first two changes are on disk, inside the run's open transaction. With argv[4]
// `direct`, the files are written straight at their names (RunItem.bytes), and the kill comes half-way through
// the third file's write: its name holds what writeNewFile's `marked` write has made of it by then (no
// permission bits, half the content).
import { createHash } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { ApplyPath } from '#apply/apply-path.js';
import { UNFINISHED_MODE } from '#apply/new-file.js';
import { applyRun, type RunItem } from '#apply/record-applier.js';
import type { Fid, NodeId, Tid } from '#core/ids.js';
import type { KmlRecord, LmlRecord } from '#core/record.js';
import { EchoGuard } from '#fsio/echo-guard.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { findFileset } from '#journal/layout.js';
import { ReintJournaler } from '#net/reint-journaler.js';

const [dir, client, how] = process.argv.slice(2) as [string, NodeId, string | undefined];
const direct = how === 'direct';
const paths = findFileset(dir);
const db = FilesetDb.open(paths.db);
const log = pino({ level: 'silent' });
const apply = new ApplyPath({ root: dir, tmpDir: paths.tmp, db, guard: new EchoGuard(), log });
const rec = (seq: number, kind: 'mkdir' | 'create', path: string, content?: string): LmlRecord => ({
  seq: BigInt(seq), kind, fid: `${client}-${seq}` as Fid, path, newPath: null, target: null, preVersion: 0n as Tid,
  mode: kind === 'mkdir' ? 0o755 : 0o644, uid: process.getuid!(), gid: process.getgid!(), mtimeMs: 1_700_000_000_000,
  size: content === undefined ? null : Buffer.byteLength(content), hash: content === undefined ? null : createHash('sha256').update(content).digest('hex'),
  origin: client, time: Date.now(),
});
const run = [rec(1, 'mkdir', 'deploy'), rec(2, 'create', 'deploy/a.html', 'a\n'), rec(3, 'create', 'deploy/b.html', 'b\n'), rec(4, 'create', 'deploy/c.html', 'c\n')];
const bytesOf = (d: LmlRecord): Buffer => Buffer.from(`${d.path.slice(-6, -5)}\n`);
const items: Array<RunItem<LmlRecord, KmlRecord>> = run.map((d) => ({
  d, staged: d.kind === 'create' && !direct ? apply.stageBytes(d, bytesOf(d)) : null,
  ...(d.kind === 'create' && direct ? { bytes: bytesOf(d) } : {}),
  j: new ReintJournaler({ db, apply, root: dir, log }, { node: client, seen: null }),
}));
let turn = 0;
applyRun(apply, items, (d) => {
  if (++turn === 3) {
    if (direct) {
      const fd = openSync(join(dir, d.path), 'wx', UNFINISHED_MODE);
      writeSync(fd, bytesOf(d).subarray(0, 1));
      closeSync(fd);
    }
    process.kill(process.pid, 'SIGKILL');
  }
  return true;
});
