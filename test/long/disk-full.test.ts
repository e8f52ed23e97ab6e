// Invariant: a full disk is a state of a node, not a fault of the data. A client or a server whose disk
// fills says so (log code DISK_FULL, `intersync status` and `--json` `diskFull`), keeps trying by itself,
// and once space comes back goes on without a restart: the trees converge and nothing written on either
// side is lost (issue 19, item 3).
//
// Real daemons on 127.0.0.1, one node's backing directory on a small tmpfs (root only; skipped otherwise)
// filled up to ENOSPC by a file beside the tree, then freed. Every daemon is stopped by its PID and the
// tmpfs unmounted in a finally, whatever failed.
//
// FAILS without the fix (checked by reverting src/ to the commit before it): the client's status has no
// `diskFull` while its disk is full ("the client's status says its disk is full: not so after 30000 ms"),
// and its log labels the failure CONFLICT ("the object changed on the server"); the server's status has none
// either, and it answers its own ENOSPC as a CONFLICT refusal of the client's change ("reintegration stopped",
// CONFLICT, which counts toward a resync on the client). Without the fix both nodes did still converge
// in these two scenarios once space came back: the stall of issue 19 ("resync failed; retrying", then idle)
// was not reproduced here; the retries the fix adds (a failed resync asked again, a full disk retried every
// 2 s at most, never counted toward a resync) are what this test then checks.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, rmdirSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState, sleep } from '../helpers.js';
import { Farm, assertSettled, conflictCopies, disconnect, eventually, pastRetention, reconnect, statusJson } from '../farm.js';

function canMountTmpfs(): boolean {
  if (process.getuid?.() !== 0) return false;
  const d = mkdtempSync(join(tmpdir(), 'intersync-tmpfs-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', d], { stdio: 'ignore' });
    execFileSync('umount', [d], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    rmdirSync(d);
  }
}

const SKIP = canMountTmpfs() ? false : 'needs root and mount -t tmpfs';

/** Run `fn` with a tmpfs of `mb` megabytes mounted on a new directory; unmounted and removed after, even on failure. */
async function withTmpfs(mb: number, fn: (mnt: string) => Promise<void>): Promise<void> {
  const mnt = mkdtempSync(join(tmpdir(), 'intersync-small-disk-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${mb}m`, 'tmpfs', mnt]);
  try {
    await fn(mnt);
  } finally {
    try {
      execFileSync('umount', [mnt], { stdio: 'ignore' });
    } catch {
      execFileSync('umount', ['-l', mnt], { stdio: 'ignore' }); // something still holds it open: detach it
    }
    rmdirSync(mnt);
  }
}

/** Fill the file system of `dir` up to ENOSPC with one file beside the tree; returns its path (remove it to free the space). */
function fill(dir: string): string {
  const file = join(dir, 'filler');
  const fd = openSync(file, 'a');
  try {
    for (const size of [256 * 1024, 4096, 512]) {
      const buf = Buffer.alloc(size, 0x61);
      for (;;) {
        try {
          writeSync(fd, buf);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOSPC') break;
          throw e;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return file;
}

function content(tag: string, i: number): string {
  return `${tag} ${i} `.repeat(6000); // about 50 KB: a few of them need more than a full disk has
}

interface DiskFullView { since?: unknown; what?: unknown; code?: unknown }

function diskFullOf(s: Record<string, unknown>): DiskFullView | null {
  return (s.diskFull ?? null) as DiskFullView | null;
}

function daemonPid(dir: string): number {
  return Number((statusJson(dir).daemon as { pid?: number } | null)?.pid);
}

/** Log lines (parsed) of a node that carry `code`. */
function codes(log: string): string[] {
  const out: string[] = [];
  for (const line of log.split('\n')) {
    if (line === '') continue;
    try {
      const o = JSON.parse(line) as { code?: unknown; msg?: unknown };
      if (typeof o.code === 'string') out.push(`${o.code}: ${String(o.msg)}`);
    } catch {
      // a line cut short: not ours to judge
    }
  }
  return out;
}

test('a client whose disk filled says so, and recovers by itself once space returns: converged, nothing lost, no restart', { timeout: 180_000, skip: SKIP }, async (t) => {
  await withTmpfs(8, async (mnt) => {
    const farm = await Farm.start(t, { clients: 0 });
    try {
      const c = join(mnt, 'tree');
      mkdirSync(c);
      await farm.addClient(c);
      writeFileSync(join(farm.server, 'before'), 'before\n');
      await assertSettled(farm.all);
      const pid = daemonPid(c);

      // Written on the client, then its disk fills at once: whatever of it is journaled or not, it must reach the server.
      for (let i = 0; i < 10; i++) writeFileSync(join(c, `c-${i}`), content('client', i));
      const filler = fill(mnt);
      // The server's changes meanwhile: the client has no room to apply them.
      for (let i = 0; i < 40; i++) writeFileSync(join(farm.server, `s-${i}`), content('server', i));

      const full = await eventually('the client\'s status says its disk is full', () => diskFullOf(statusJson(c)), (d) => d !== null, 30_000,
        () => farm.log(c).split('\n').slice(-15).join('\n'));
      assert.equal(full!.code, 'DISK_FULL');
      // Long enough for the retries, the "does not apply" count and a resync attempt to happen on the full disk.
      await sleep(8000);
      assert.ok(diskFullOf(statusJson(c)) !== null, 'still full: the status says so while it lasts');
      const human = farm.log(c);
      assert.ok(codes(human).some((x) => x.startsWith('DISK_FULL')), `the client logs DISK_FULL:\n${codes(human).join('\n')}`);
      assert.ok(!codes(human).some((x) => x.startsWith('CONFLICT')), `a full disk is no conflict:\n${codes(human).join('\n')}`);

      rmSync(filler);
      await assertSettled(farm.all, 90_000);
      assert.equal(daemonPid(c), pid, 'the same daemon: no restart');
      await eventually('the client\'s status no longer says its disk is full', () => diskFullOf(statusJson(c)), (d) => d === null, 10_000);
      for (let i = 0; i < 10; i++) assert.equal(readFileSync(join(farm.server, `c-${i}`), 'utf8'), content('client', i), `c-${i} reached the server`);
      for (let i = 0; i < 40; i++) assert.equal(readFileSync(join(c, `s-${i}`), 'utf8'), content('server', i), `s-${i} reached the client`);
      assert.deepEqual(farm.all.flatMap((d) => conflictCopies(d)), [], 'a full disk makes no conflict copies');
    } finally {
      await farm.stopAll();
    }
  });
});

test('a server whose disk filled says so once, and recovers by itself once space returns: converged, nothing lost, no restart', { timeout: 180_000, skip: SKIP }, async (t) => {
  await withTmpfs(8, async (mnt) => {
    const s = join(mnt, 'tree');
    mkdirSync(s);
    const farm = await Farm.start(t, { clients: 1, serverDir: s });
    try {
      const [c] = farm.clients as [string];
      writeFileSync(join(c, 'before'), 'before\n');
      await assertSettled(farm.all);
      const pid = daemonPid(s);

      const filler = fill(mnt);
      // The client's changes meanwhile: the server has no room to take them.
      for (let i = 0; i < 30; i++) writeFileSync(join(c, `c-${i}`), content('client', i));

      const full = await eventually('the server\'s status says its disk is full', () => diskFullOf(statusJson(s)), (d) => d !== null, 30_000,
        () => farm.log(s).split('\n').slice(-15).join('\n'));
      assert.equal(full!.code, 'DISK_FULL');
      await sleep(8000);
      assert.ok(diskFullOf(statusJson(s)) !== null, 'still full: the status says so while it lasts');
      const log = farm.log(s);
      assert.ok(codes(log).some((x) => x.startsWith('DISK_FULL')), `the server logs DISK_FULL:\n${codes(log).join('\n')}`);
      assert.doesNotMatch(log, /request cut by the peer/, 'its own full disk is not the peer\'s doing');
      assert.ok(!codes(farm.log(c)).some((x) => x.startsWith('CONFLICT')), `the client is told DISK_FULL, not CONFLICT:\n${codes(farm.log(c)).join('\n')}`);

      rmSync(filler);
      await assertSettled(farm.all, 90_000);
      assert.equal(daemonPid(s), pid, 'the same daemon: no restart');
      await eventually('the server\'s status no longer says its disk is full', () => diskFullOf(statusJson(s)), (d) => d === null, 10_000);
      for (let i = 0; i < 30; i++) assert.equal(readFileSync(join(s, `c-${i}`), 'utf8'), content('client', i), `c-${i} reached the server`);
      assert.deepEqual(farm.all.flatMap((d) => conflictCopies(d)), [], 'a full disk makes no conflict copies');
      const said = farm.logMessages(s, /status file/);
      assert.ok(said.filter((m) => /cannot write/.test(m)).length <= 1, `"cannot write status file" at most once:\n${said.join('\n')}`);
    } finally {
      await farm.stopAll();
    }
  });
});

// The acknowledgement of applied records makes them durable first: a checkpoint of the journal's WAL into
// the database file, which grows that file. A client whose WAL held many records not checkpointed yet when
// its disk filled had that checkpoint fail (SQLITE_FULL) in the ack's timer, and the throw there ended the
// daemon (exit 1, "database or disk is full" on stderr, nothing in its log): no retry, no recovery.
// FAILS without the fix in daemon/client-acks.ts, 3 runs of 3: the daemon is gone before its status says
// anything ("the client's status says its disk is full: not so after 30000 ms"). With that fix and without
// the one in presto/reconciler.ts (a failed batch's names tried again) it failed too: the nodes never settled,
// 558 of the client's files on its disk and in no journal (test/capture-journal-fails.test.ts holds that).
test('a client whose disk fills while its journal holds records not checkpointed stays up, and converges once space returns', { timeout: 300_000, skip: SKIP }, async (t) => {
  await withTmpfs(64, async (mnt) => {
    const farm = await Farm.start(t, { clients: 0 });
    try {
      const c = join(mnt, 'tree');
      mkdirSync(c);
      await farm.addClient(c);
      writeFileSync(join(farm.server, 'before'), 'before\n');
      await assertSettled(farm.all);
      const pid = daemonPid(c);

      // Both sides busy at once: the client journals its own burst (its WAL grows) while it applies and
      // acknowledges the server's records; the disk fills in the middle of it.
      mkdirSync(join(c, 'cd'));
      mkdirSync(join(farm.server, 'sd'));
      for (let i = 0; i < 3000; i++) writeFileSync(join(c, 'cd', `c-${i}`), `client ${i}\n`.repeat(50));
      let filler = '';
      for (let i = 0; i < 2000; i++) {
        writeFileSync(join(farm.server, 'sd', `s-${i}`), `server ${i}\n`.repeat(200));
        if (i === 300) filler = fill(mnt);
      }
      await eventually('the client\'s status says its disk is full', () => diskFullOf(statusJson(c)), (d) => d !== null, 30_000,
        () => farm.log(c).split('\n').slice(-15).join('\n'));
      await sleep(5000); // the acks, retries and reconnections of a full disk
      assert.equal(daemonPid(c), pid, 'the daemon is still running on the full disk');

      rmSync(filler);
      await assertSettled(farm.all, 120_000);
      assert.equal(daemonPid(c), pid, 'the same daemon: no restart');
      const log = farm.log(c);
      assert.ok(codes(log).some((x) => x.startsWith('DISK_FULL')), `the client logs DISK_FULL:\n${codes(log).join('\n')}`);
      assert.ok(!codes(log).some((x) => x.startsWith('CONFLICT')), `a full disk is no conflict:\n${codes(log).join('\n')}`);
      for (const i of [0, 1234, 2999]) assert.equal(readFileSync(join(farm.server, 'cd', `c-${i}`), 'utf8'), `client ${i}\n`.repeat(50));
      for (const i of [0, 300, 1999]) assert.equal(readFileSync(join(c, 'sd', `s-${i}`), 'utf8'), `server ${i}\n`.repeat(200));
      assert.deepEqual(farm.all.flatMap((d) => conflictCopies(d)), [], 'a full disk makes no conflict copies');
    } finally {
      await farm.stopAll();
    }
  });
});

// A resync on a full disk (issue 19: "resync failed; retrying", then nothing, a restart fixed it): a client
// back past the server's retention must resync, its disk has no room for the server's files, the resync fails
// DISK_FULL and is asked again until it goes through; once space returns, the same daemon resyncs, keeps the
// changes it made while away, and converges. A guard: it passes without this session's fixes too (the resync
// retry came with the first fix of the item); it holds the path the report describes.
test('a client that must resync on a full disk retries the resync by itself and converges once space returns, keeping its changes', { timeout: 300_000, skip: SKIP }, async (t) => {
  await withTmpfs(16, async (mnt) => {
    const farm = await Farm.start(t, { clients: 0, serverArgs: ['--retain-records', '5'] });
    try {
      const c = join(mnt, 'tree');
      mkdirSync(c);
      await farm.addClient(c);
      writeFileSync(join(farm.server, 'before'), 'before\n');
      await assertSettled(farm.all);
      const pid = daemonPid(c);

      await disconnect(farm, c);
      for (let i = 0; i < 5; i++) writeFileSync(join(c, `c-${i}`), content('client', i));
      await eventually('the client journals its changes while away', () => journalState(c).lml, (n) => n >= 5);
      for (let i = 0; i < 20; i++) writeFileSync(join(farm.server, `s-${i}`), content('server', i));
      await pastRetention(farm);
      const filler = fill(mnt);
      reconnect(c);

      await eventually('the client\'s resync fails for want of space', () => codes(farm.log(c)), (l) => l.some((x) => x === 'DISK_FULL: resync failed; retrying'), 60_000,
        () => codes(farm.log(c)).slice(-15).join('\n'));
      assert.ok(diskFullOf(statusJson(c)) !== null, 'the status says the disk is full');
      assert.equal(daemonPid(c), pid, 'the daemon runs on');

      rmSync(filler);
      await assertSettled(farm.all, 120_000);
      assert.equal(daemonPid(c), pid, 'the same daemon: no restart');
      for (let i = 0; i < 5; i++) assert.equal(readFileSync(join(farm.server, `c-${i}`), 'utf8'), content('client', i), `c-${i} reached the server`);
      for (let i = 0; i < 20; i++) assert.equal(readFileSync(join(c, `s-${i}`), 'utf8'), content('server', i), `s-${i} reached the client`);
      assert.ok(!codes(farm.log(c)).some((x) => x.startsWith('CONFLICT')), `a full disk is no conflict:\n${codes(farm.log(c)).join('\n')}`);
    } finally {
      await farm.stopAll();
    }
  });
});
