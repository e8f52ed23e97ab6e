// Invariant: a run of peer records that make new names (applyRun, apply/record-applier.ts) is applied in one
// transaction after its in-flight notes, each record checked once the ones before it are applied; a refusal ends
// the run there with what came before journaled; a failure of the journal takes back every change of the run
// (nothing on disk that no journal holds); a process killed in the middle of a run leaves notes that the next
// start recovers as the peer's records (what reached the disk), never as local changes, and drops the rest.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { applyRun, type RunItem } from '#apply/record-applier.js';
import type { Fid, NodeId, Tid } from '#core/ids.js';
import type { KmlRecord, LmlRecord } from '#core/record.js';
import { ReintJournaler } from '#net/reint-journaler.js';
import { applyFixture } from './apply-fixture.js';
import { ROOT, records, settle, startNode, tmpDir } from './helpers.js';

const CLIENT = 'c1c1c1c1c1c1c1c1' as NodeId;
const listen = { host: '127.0.0.1', port: 0, tokenScope: 'fileset' as const, leaseMs: 30_000, retainRecords: 1_000_000 };

function rec(seq: number, kind: 'mkdir' | 'create', path: string, content?: string): LmlRecord {
  return {
    seq: BigInt(seq), kind, fid: `${CLIENT}-${seq}` as Fid, path, newPath: null, target: null, preVersion: 0n as Tid,
    mode: kind === 'mkdir' ? 0o755 : 0o644, uid: process.getuid!(), gid: process.getgid!(), mtimeMs: 1_700_000_000_000,
    size: content === undefined ? null : Buffer.byteLength(content), hash: content === undefined ? null : createHash('sha256').update(content).digest('hex'),
    origin: CLIENT, time: Date.now(),
  };
}

/** A deploy's run: a new directory and `n` files in it. */
function deploy(n: number, dir = 'deploy'): Array<{ d: LmlRecord; content: string | null }> {
  const out: Array<{ d: LmlRecord; content: string | null }> = [{ d: rec(1, 'mkdir', dir), content: null }];
  for (let i = 0; i < n; i++) {
    const content = `file ${i}\n`;
    out.push({ d: rec(i + 2, 'create', `${dir}/f${i}.html`, content), content });
  }
  return out;
}

test('a run of new names: journaled in one transaction after its notes, each record checked after the ones before it', (t) => {
  const { root, db, apply } = applyFixture(t, 'intersync-run-');
  const log = pino({ level: 'silent' });
  const items: Array<RunItem<LmlRecord, KmlRecord>> = deploy(3).map(({ d, content }) => ({
    d, staged: content === null ? null : apply.stageBytes(d, Buffer.from(content)), j: new ReintJournaler({ db, apply, root, log }, { node: CLIENT, seen: null }),
  }));
  let commits = 0;
  db.onCommit(() => commits++);
  const before = db.lastTid;
  const { applied, refused } = applyRun(apply, items);
  assert.equal(refused, null);
  assert.deepEqual(applied.map((r) => `${r.kind} ${r.path} ${r.originSeq}`), ['mkdir deploy 1', 'create deploy/f0.html 2', 'create deploy/f1.html 3', 'create deploy/f2.html 4']);
  assert.deepEqual(applied.map((r) => r.tid), [before + 1n, before + 2n, before + 3n, before + 4n], 'consecutive TIDs, in the run\'s order');
  // One commit for the notes, one for the run (record by record it was one per record, notes besides).
  assert.equal(commits, 2, 'the notes in one transaction, the run\'s records in another');
  assert.deepEqual(db.inflight(), [], 'every note cleared');
  assert.equal(readFileSync(join(root, 'deploy/f2.html'), 'utf8'), 'file 2\n');
  assert.deepEqual(readdirSync(join(root, '.intermezzo/default/tmp')), [], 'nothing left staged');
});

test('a run refused in the middle: what came before stands, the rest is not applied, its staged content and notes go', (t) => {
  const { root, db, apply } = applyFixture(t, 'intersync-run-');
  const log = pino({ level: 'silent' });
  const run = deploy(3);
  // The third record's directory is not here: the check refuses it ("parent … does not exist here").
  const orphan = rec(9, 'create', 'elsewhere/x.html', 'x\n');
  const ds = [run[0]!, run[1]!, { d: orphan, content: 'x\n' }, run[2]!];
  const items: Array<RunItem<LmlRecord, KmlRecord>> = ds.map(({ d, content }) => ({
    d, staged: content === null ? null : apply.stageBytes(d, Buffer.from(content)), j: new ReintJournaler({ db, apply, root, log }, { node: CLIENT, seen: null }),
  }));
  const { applied, refused } = applyRun(apply, items);
  assert.deepEqual(applied.map((r) => r.path), ['deploy', 'deploy/f0.html']);
  assert.ok(refused !== null, 'the refusal is said');
  assert.equal(db.objectByPath('deploy/f1.html'), undefined, 'nothing after the refusal is journaled');
  assert.equal(existsSync(join(root, 'deploy/f1.html')), false, 'nor on disk');
  assert.deepEqual(db.inflight(), [], 'every note cleared');
  assert.deepEqual(readdirSync(join(root, '.intermezzo/default/tmp')), [], 'nothing left staged');
});

test('a run whose journal fails in the middle: every change of the run is taken back, nothing journaled', (t) => {
  const { root, db, apply } = applyFixture(t, 'intersync-run-');
  const log = pino({ level: 'silent' });
  let n = 0;
  const items: Array<RunItem<LmlRecord, KmlRecord>> = deploy(3).map(({ d, content }) => {
    const j = new ReintJournaler({ db, apply, root, log }, { node: CLIENT, seen: null });
    const commit = j.commit.bind(j);
    // The third commit fails as a full disk would make it fail.
    j.commit = (x, identity) => {
      if (++n === 3) throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
      return commit(x, identity);
    };
    return { d, staged: content === null ? null : apply.stageBytes(d, Buffer.from(content)), j };
  });
  const before = db.lastTid;
  assert.throws(() => applyRun(apply, items), /disk is full/);
  assert.equal(db.lastTid, before, 'nothing journaled');
  assert.equal(db.objectByPath('deploy'), undefined);
  assert.equal(existsSync(join(root, 'deploy')), false, 'the directory and the files the run made are gone from the disk');
  assert.deepEqual(db.inflight(), [], 'every note cleared');
  assert.deepEqual(readdirSync(join(root, '.intermezzo/default/tmp')), [], 'nothing left staged');
});

test('killed in the middle of a run (notes committed, two changes on disk, the run\'s transaction open): the next start journals those as the client\'s, drops the rest', async (t) => {
  const dir = tmpDir();
  const logs = tmpDir('intersync-logs-');
  t.after(() => {
    dir.cleanup();
    logs.cleanup();
  });
  let node = await startNode(dir.path, logs.path, { listen });
  await node.stop();
  const r = spawnSync(process.execPath, ['--conditions=development', '--import', 'tsx', join(ROOT, 'test/apply-run-kill.ts'), dir.path, CLIENT], { encoding: 'utf8' });
  assert.equal(r.signal, 'SIGKILL', `the helper was killed in the run: ${r.stderr}`);
  assert.ok(existsSync(join(dir.path, 'deploy/a.html')) && !existsSync(join(dir.path, 'deploy/b.html')), 'the crash point: two changes on disk, the third not');

  node = await startNode(dir.path, logs.path, { listen });
  t.after(() => node.stop());
  await settle(node);
  assert.deepEqual(records(node).map((x) => [x.kind, x.path, x.origin, x.originSeq]), [['mkdir', 'deploy', CLIENT, 1n], ['create', 'deploy/a.html', CLIENT, 2n]],
    'what reached the disk is journaled as the client\'s records, once, and not as local changes');
  assert.deepEqual(node.db.inflight(), [], 'every note cleared');
  assert.equal(node.db.kmlByOrigin(CLIENT, 3n), undefined, 'what did not reach the disk is left for the client to send again');
  assert.equal(readFileSync(join(dir.path, 'deploy/a.html'), 'utf8'), 'a\n');
  mkdirSync(join(dir.path, 'probe')); // capture still runs: a local change after the recovery is journaled as this node's
  await settle(node);
  assert.equal(records(node).at(-1)?.path, 'probe');
});

// Fails without the direct write of a run's new files (ApplyPath#createInRun): each went through a temp file.
test('a run of new files written straight at their names: each with its content and mode, no temp file, every note cleared', (t) => {
  const { root, db, apply } = applyFixture(t, 'intersync-run-');
  const log = pino({ level: 'silent' });
  const items: Array<RunItem<LmlRecord, KmlRecord>> = deploy(3).map(({ d, content }) => ({
    d, staged: null, ...(content === null ? {} : { bytes: Buffer.from(content) }), j: new ReintJournaler({ db, apply, root, log }, { node: CLIENT, seen: null }),
  }));
  const tmpNames: string[] = [];
  const tmp = join(root, '.intermezzo/default/tmp');
  const { applied, refused } = applyRun(apply, items, () => {
    tmpNames.push(...readdirSync(tmp));
    return true;
  });
  assert.equal(refused, null);
  assert.equal(applied.length, 4);
  assert.deepEqual(tmpNames, [], 'nothing staged in the temp folder at any record\'s turn');
  for (let i = 0; i < 3; i++) {
    const abs = join(root, `deploy/f${i}.html`);
    assert.equal(readFileSync(abs, 'utf8'), `file ${i}\n`);
    const st = lstatSync(abs);
    assert.equal(st.mode & 0o7777, 0o644, 'the record\'s mode, not the unfinished mark');
    assert.equal(db.objectByPath(`deploy/f${i}.html`)?.ino, String(st.ino), 'journaled with the identity of the file at its name');
  }
  assert.deepEqual(db.inflight(), [], 'every note cleared');
});

// Fails without the recovery of a direct create (recovery.ts): the half-written file stayed at its name, and
// capture journaled it as a local new file ("create deploy/b.html" of this node), which met the client's own.
test('killed half-way through a new file written straight at its name: the next start removes it, journals what came before as the client\'s', async (t) => {
  const dir = tmpDir();
  const logs = tmpDir('intersync-logs-');
  t.after(() => {
    dir.cleanup();
    logs.cleanup();
  });
  let node = await startNode(dir.path, logs.path, { listen });
  await node.stop();
  const r = spawnSync(process.execPath, ['--conditions=development', '--import', 'tsx', join(ROOT, 'test/apply-run-kill.ts'), dir.path, CLIENT, 'direct'], { encoding: 'utf8' });
  assert.equal(r.signal, 'SIGKILL', `the helper was killed in the run: ${r.stderr}`);
  assert.equal(lstatSync(join(dir.path, 'deploy/b.html')).mode & 0o7777, 0, 'the crash point: the third file half-written, unfinished');

  node = await startNode(dir.path, logs.path, { listen });
  t.after(() => node.stop());
  await settle(node);
  assert.deepEqual(records(node).map((x) => [x.kind, x.path, x.origin, x.originSeq]), [['mkdir', 'deploy', CLIENT, 1n], ['create', 'deploy/a.html', CLIENT, 2n]],
    'what reached the disk is journaled as the client\'s records, and the half-written file as nothing');
  assert.equal(existsSync(join(dir.path, 'deploy/b.html')), false, 'the half-written file is gone: the client sends its record again');
  assert.deepEqual(node.db.inflight(), [], 'every note cleared');
  assert.equal(readFileSync(join(dir.path, 'deploy/a.html'), 'utf8'), 'a\n');
  assert.equal(lstatSync(join(dir.path, 'deploy/a.html')).mode & 0o7777, 0o644);
});
