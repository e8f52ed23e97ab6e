// A helper process for apply-run.test.ts (not a test itself): applies a run of a client's new names to the
// fileset at argv[2] through applyRun and kills itself (SIGKILL) at the third record's turn, after the run's
// notes are committed and the first two changes are on disk, inside the run's open transaction.
import { createHash } from 'node:crypto';
import pino from 'pino';
import { ApplyPath } from '#apply/apply-path.js';
import { applyRun, type RunItem } from '#apply/record-applier.js';
import type { Fid, NodeId, Tid } from '#core/ids.js';
import type { KmlRecord, LmlRecord } from '#core/record.js';
import { EchoGuard } from '#fsio/echo-guard.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { findFileset } from '#journal/layout.js';
import { ReintJournaler } from '#net/reint-journaler.js';

const [dir, client] = process.argv.slice(2) as [string, NodeId];
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
const items: Array<RunItem<LmlRecord, KmlRecord>> = run.map((d) => ({
  d, staged: d.kind === 'create' ? apply.stageBytes(d, Buffer.from(`${d.path.slice(-6, -5)}\n`)) : null, j: new ReintJournaler({ db, apply, root: dir, log }, { node: client, seen: null }),
}));
let turn = 0;
applyRun(apply, items, () => {
  if (++turn === 3) process.kill(process.pid, 'SIGKILL');
  return true;
});
