// Invariant: mirror-stream brings a slave to the master's state at a TID of the master, through the first copy and
// then the master's records, comparing the state digest after each record; `synced` names the TID reached. A
// slave whose state differs from the master's at a TID stops there, loudly, naming the first differing path, and
// exits non-zero (and refuses to go on at the next start).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { digestAdd, digestSub, formatDigest, parseDigest } from '#core/digest.js';
import { findFileset } from '#journal/layout.js';
import { cli, diskDigest, NODE_ARGS, ROOT, settle, sleep, stopChild } from './helpers.js';
import { journalOf, lastJson, makeSlave, masterBox, syncedOf } from './mirror-fixture.js';

const hex = (t: bigint): string => `0x${t.toString(16).padStart(16, '0')}`;

test('--once: a first copy, then the master\'s records of every kind, each checked; synced names the master\'s TID', async (t) => {
  const b = await masterBox(t, 'intersync-mirror-once-');
  mkdirSync(join(b.master, 'docs/old'), { recursive: true });
  for (let i = 0; i < 30; i++) writeFileSync(join(b.master, 'docs', `f${i}.txt`), `file ${i}\n`.repeat(i + 1));
  writeFileSync(join(b.master, 'docs/old/keep.txt'), 'keep\n');
  writeFileSync(join(b.master, 'big.bin'), Buffer.alloc(2 << 20, 3));
  await settle(b.node);
  makeSlave(b.slave, b.node.db.meta.uuid);

  const r1 = cli(['mirror-stream', '--once', '--json', b.master, b.slave]);
  assert.equal(r1.code, 0, r1.stderr);
  const j1 = lastJson(r1.stdout);
  const m1 = journalOf(b.master);
  assert.equal(j1.syncedTid, hex(m1.tid));
  assert.deepEqual(j1.copied, { files: m1.objects, bytes: m1.fileBytes });
  assert.equal(journalOf(b.slave).digest, m1.digest);
  assert.equal(syncedOf(b.slave), hex(m1.tid));

  // Every kind of record: write, truncate, chmod, a directory rename, unlink, rmdir, symlink, link, a large write.
  writeFileSync(join(b.master, 'docs/f1.txt'), 'changed\n');
  writeFileSync(join(b.master, 'docs/f2.txt'), '');
  chmodSync(join(b.master, 'docs/f3.txt'), 0o600);
  renameSync(join(b.master, 'docs/old'), join(b.master, 'docs/new'));
  rmSync(join(b.master, 'docs/f4.txt'));
  mkdirSync(join(b.master, 'gone'));
  await settle(b.node);
  rmSync(join(b.master, 'gone'), { recursive: true });
  symlinkSync('docs/f5.txt', join(b.master, 'ln'));
  const big = Buffer.alloc(2 << 20, 3);
  big.fill(9, 1 << 20, (1 << 20) + 5000);
  writeFileSync(join(b.master, 'big.bin'), big);
  await settle(b.node);
  const before = m1.tid;
  const m2 = journalOf(b.master);
  assert.ok(m2.tid > before);

  const r2 = cli(['mirror-stream', '--once', '--json', b.master, b.slave]);
  assert.equal(r2.code, 0, r2.stderr);
  const j2 = lastJson(r2.stdout);
  assert.equal(j2.syncedTid, hex(m2.tid));
  assert.equal(j2.copied, null);
  assert.equal(j2.records, Number(m2.tid - before));
  assert.equal(j2.verified, j2.records); // every record's digest compared
  assert.equal(journalOf(b.slave).digest, m2.digest);
  assert.equal(await diskDigest(b.slave), await diskDigest(b.master));
  assert.equal(syncedOf(b.slave), hex(m2.tid));
  const st = lastJson(cli(['pfs-status', '--json', b.slave]).stdout) as { slave: { syncedTid: string; master: string } };
  assert.equal(st.slave.syncedTid, hex(m2.tid));
  assert.equal(st.slave.master, b.node.db.meta.nodeId);
});

test('streaming: -v reports TID, rates and lag; the slave follows the master as it changes; SIGTERM ends it with 0', async (t) => {
  const b = await masterBox(t, 'intersync-mirror-follow-');
  writeFileSync(join(b.master, 'a.txt'), 'a\n');
  await settle(b.node);
  makeSlave(b.slave, b.node.db.meta.uuid);
  const child = spawn(process.execPath, [...NODE_ARGS, 'mirror-stream', '-v', b.master, b.slave], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => stopChild(child, 'SIGKILL'));
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const caughtUp = async (): Promise<void> => {
    for (let i = 0; i < 600; i++) {
      if (syncedOf(b.slave) === hex(journalOf(b.master).tid)) return;
      await sleep(100);
    }
    throw new Error(`the slave did not catch up: ${out}${err}`);
  };
  await caughtUp();
  for (let round = 0; round < 3; round++) {
    mkdirSync(join(b.master, `d${round}`));
    for (let i = 0; i < 20; i++) writeFileSync(join(b.master, `d${round}`, `f${i}`), `${round} ${i}\n`);
    if (round > 0) renameSync(join(b.master, `d${round - 1}`), join(b.master, `moved${round - 1}`));
    await settle(b.node);
    await caughtUp();
    assert.equal(journalOf(b.slave).digest, journalOf(b.master).digest);
  }
  assert.equal(await diskDigest(b.slave), await diskDigest(b.master));
  await sleep(1200); // at least one report line after the last records
  const exit = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  child.kill('SIGTERM');
  assert.equal(await exit, 0, err);
  const lines = out.split('\n').filter((l) => l.startsWith('tid '));
  assert.ok(lines.length > 0, out);
  assert.match(lines[lines.length - 1]!, /^tid 0x[0-9a-f]{16} {2}\d+ records\/s {2}[0-9.]+ (B|KiB|MiB)\/s {2}lag \d+ records [0-9.]+ s {2}verified \d+$/);
  assert.match(out, /^synced .* to 0x[0-9a-f]{16} /m);
});

test('a slave whose state differs from the master\'s stops at the next record, naming the path, and stays stopped', async (t) => {
  const b = await masterBox(t, 'intersync-mirror-diverge-');
  writeFileSync(join(b.master, 'a.txt'), 'a\n');
  writeFileSync(join(b.master, 'b.txt'), 'b\n');
  await settle(b.node);
  makeSlave(b.slave, b.node.db.meta.uuid);
  assert.equal(cli(['mirror-stream', '--once', b.master, b.slave]).code, 0);
  const synced = syncedOf(b.slave);

  // Behind the slave's back: its journal says b.txt has another mode (its digest moved with it, as a commit would).
  const sdb = new Database(findFileset(b.slave).db);
  const row = sdb.prepare("SELECT path, type, mode, hash, target FROM objects WHERE path = 'b.txt'").get() as { path: string; type: 'file'; mode: number; hash: string; target: null };
  const old = parseDigest((sdb.prepare("SELECT value FROM meta WHERE key = 'digest'").get() as { value: string }).value);
  const next = digestAdd(digestSub(old, row), { ...row, mode: 0o640 });
  sdb.prepare("UPDATE objects SET mode = 416 WHERE path = 'b.txt'").run();
  sdb.prepare("UPDATE meta SET value = ? WHERE key = 'digest'").run(formatDigest(next));
  sdb.close();

  writeFileSync(join(b.master, 'c.txt'), 'c\n');
  await settle(b.node);
  const r = cli(['mirror-stream', '--once', b.master, b.slave]);
  assert.equal(r.code, 1, r.stdout);
  assert.match(r.stderr, /\[MIRROR_DIVERGED\]/);
  assert.match(r.stderr, /first differing path: b\.txt/);
  assert.equal(syncedOf(b.slave), synced); // the differing TID is never named synchronized
  const again = cli(['mirror-stream', '--once', b.master, b.slave]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /stopped for good: .*first differing path: b\.txt \[MIRROR_DIVERGED\]/);
});

test('cascade: a slave is the master of another slave', async (t) => {
  const b = await masterBox(t, 'intersync-mirror-cascade-');
  mkdirSync(join(b.master, 'd'));
  for (let i = 0; i < 10; i++) writeFileSync(join(b.master, 'd', `f${i}`), `${i}\n`);
  await settle(b.node);
  const s2 = join(b.root, 'slave2');
  mkdirSync(s2);
  makeSlave(b.slave, b.node.db.meta.uuid);
  makeSlave(s2, b.node.db.meta.uuid);
  assert.equal(cli(['mirror-stream', '--once', b.master, b.slave]).code, 0);
  assert.equal(cli(['mirror-stream', '--once', b.slave, s2]).code, 0);
  renameSync(join(b.master, 'd'), join(b.master, 'e'));
  writeFileSync(join(b.master, 'e/f1'), 'changed\n');
  await settle(b.node);
  assert.equal(cli(['mirror-stream', '--once', b.master, b.slave]).code, 0);
  const r = cli(['mirror-stream', '--once', '--json', b.slave, s2]);
  assert.equal(r.code, 0, r.stderr);
  const m = journalOf(b.master);
  assert.equal(lastJson(r.stdout).syncedTid, hex(m.tid));
  assert.equal(lastJson(r.stdout).verified, lastJson(r.stdout).records);
  assert.equal(journalOf(s2).digest, m.digest);
  assert.equal(await diskDigest(s2), await diskDigest(b.master));
});
