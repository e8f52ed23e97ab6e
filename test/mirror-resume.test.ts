// Invariant: mirror-stream killed at any moment (SIGKILL) resumes where the slave's journal stands: killed in the
// middle of its first copy, the next run sends only the content the slave had not journaled (counted in bytes);
// killed while following, the next run sends only the records after its last_rcvd. -b caps the content's rate.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { asTid } from '#core/ids.js';
import { cli, diskDigest, NODE_ARGS, ROOT, settle, sleep, stopChild } from './helpers.js';
import { journalOf, lastJson, makeSlave, masterBox, syncedOf } from './mirror-fixture.js';

/** `n` files of `size` bytes, each its own content, in 10 directories. */
function writeTree(dir: string, n: number, size: number, tag: string): void {
  for (let d = 0; d < 10; d++) mkdirSync(join(dir, `${tag}${d}`), { recursive: true });
  for (let i = 0; i < n; i++) {
    const head = `${tag} file ${i}\n`;
    writeFileSync(join(dir, `${tag}${i % 10}`, `f${i}`), head + 'x'.repeat(size - head.length));
  }
}

test('SIGKILL in the middle of the first copy: the next run sends only what the slave had not journaled', async (t) => {
  const b = await masterBox(t, 'intersync-mirror-resume-');
  writeTree(b.master, 3000, 2048, 'd');
  await settle(b.node, 200);
  const m = journalOf(b.master);
  assert.equal(m.fileBytes, 3000 * 2048);
  makeSlave(b.slave, b.node.db.meta.uuid);

  // 6 MiB at 1 MiB/s: the copy journals its first runs of 1,000 entries well before it ends.
  const child = spawn(process.execPath, [...NODE_ARGS, 'mirror-stream', '--once', '-b', '1m', b.master, b.slave], { cwd: ROOT, stdio: 'ignore' });
  t.after(() => stopChild(child, 'SIGKILL'));
  let at = journalOf(b.slave);
  for (let i = 0; i < 600 && at.fileBytes === 0; i++) {
    await sleep(50);
    at = journalOf(b.slave);
  }
  await stopChild(child, 'SIGKILL');
  at = journalOf(b.slave);
  assert.ok(at.fileBytes > 0 && at.fileBytes < m.fileBytes, `killed part-way: ${at.objects} objects, ${at.fileBytes} bytes`);
  assert.equal(syncedOf(b.slave), null); // nothing fully synchronized yet

  const r = cli(['mirror-stream', '--once', '--json', b.master, b.slave]);
  assert.equal(r.code, 0, r.stderr);
  const j = lastJson(r.stdout);
  t.diagnostic(`killed with ${at.fileBytes} of ${m.fileBytes} bytes journaled; the next run sent ${String(j.bytesSent)}`);
  assert.equal(j.bytesSent, m.fileBytes - at.fileBytes, `sent ${String(j.bytesSent)}, missing ${m.fileBytes - at.fileBytes}`);
  assert.equal(journalOf(b.slave).digest, m.digest);
  assert.equal(await diskDigest(b.slave), await diskDigest(b.master));
});

test('SIGKILL while following: the next run sends only the records after the slave\'s last TID; -b holds the rate', async (t) => {
  const b = await masterBox(t, 'intersync-mirror-resume-follow-');
  writeFileSync(join(b.master, 'seed'), 'seed\n');
  await settle(b.node);
  makeSlave(b.slave, b.node.db.meta.uuid);
  assert.equal(cli(['mirror-stream', '--once', b.master, b.slave]).code, 0);
  const copied = journalOf(b.slave).tid;
  writeTree(b.master, 200, 1000, 'e');
  await settle(b.node, 200);
  const m = journalOf(b.master);

  // 200,000 bytes at 16 KiB/s: about 12 s; killed after 3.
  const t0 = performance.now();
  const child = spawn(process.execPath, [...NODE_ARGS, 'mirror-stream', '-b', '16k', b.master, b.slave], { cwd: ROOT, stdio: 'ignore' });
  t.after(() => stopChild(child, 'SIGKILL'));
  await sleep(3000);
  await stopChild(child, 'SIGKILL');
  const killed = journalOf(b.slave);
  // What the master still had to send: the new files' bytes after the slave's TID.
  const missing = b.node.db.readKml(asTid(killed.tid), 100_000).reduce((n, r) => n + (r.kind === 'create' ? r.size ?? 0 : 0), 0);

  const r = cli(['mirror-stream', '--once', '--json', '-b', '64k', b.master, b.slave]);
  const secs = (performance.now() - t0) / 1000;
  assert.equal(r.code, 0, r.stderr);
  const j = lastJson(r.stdout);
  t.diagnostic(`killed at ${killed.tid} (copy at ${copied}, master at ${m.tid}); the next run sent ${String(j.bytesSent)} bytes of ${missing} missing, ${secs.toFixed(1)} s in all`);
  assert.equal(j.bytesSent, missing);
  assert.equal(j.records, Number(m.tid - killed.tid));
  assert.equal(j.verified, j.records);
  assert.equal(j.syncedTid, `0x${m.tid.toString(16).padStart(16, '0')}`);
  assert.equal(journalOf(b.slave).digest, m.digest);
  assert.ok(killed.tid > copied && killed.tid < m.tid, `killed part-way: ${killed.tid} of ${copied}..${m.tid}`);
  // The limit can only slow a run: the second one sent `missing` bytes at 64 KiB/s at most (its burst aside).
  assert.ok(secs >= 3 + (missing - 32 * 1024) / (64 * 1024) - 0.5, `${secs} s for ${missing} bytes`);
});
