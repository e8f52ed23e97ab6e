// Invariant: however the mount stops (intersync umount, umount from outside, SIGTERM with a file still open
// and written, SIGKILL in the middle of writes), DIR and the journal agree afterwards (digest equals digest
// --scan), nothing stays mounted, and a stale mount left by a crash is cleaned at the next start. Also: a
// mount point inside DIR or taken is refused with its code, and a change made in DIR behind the mount's back
// is journaled by the watcher that stays on DIR. Fails without mount-table.ts (the restart after SIGKILL
// fails on the stale mount) or without FuseCapture#stop journaling open files (SIGTERM case).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cli, diskDigest, journalState, sleep } from './helpers.js';
import { assertJournaled, isMounted, mountDirs, spawnMount, stopMount } from './mount-fixture.js';

/** Wait for the child's exit; its exit code. */
async function exitOf(child: import('node:child_process').ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  return new Promise((res) => child.once('exit', (code) => res(code)));
}

test('intersync umount stops the daemon and unmounts; so does umount from outside', { timeout: 120_000 }, async (t) => {
  const d = mountDirs();
  t.after(d.cleanup);
  const m = d.track(await spawnMount(d.dir, d.mnt, d.logs));
  writeFileSync(join(d.mnt, 'a.txt'), 'a');
  const r = cli(['umount', '--json', d.mnt]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as { result: string }).result, 'stopped');
  assert.equal(await exitOf(m.child), 0, 'the daemon exited 0');
  assert.equal(isMounted(d.mnt), false);
  await assertJournaled(d.dir, 'after intersync umount');
  assert.equal(cli(['umount', d.mnt]).code, 1, 'nothing mounted there any more');

  const m2 = d.track(await spawnMount(d.dir, d.mnt, d.logs));
  writeFileSync(join(d.mnt, 'b.txt'), 'b');
  const u = spawn('umount', [d.mnt], { stdio: 'ignore' });
  assert.equal(await exitOf(u), 0, 'umount MOUNTPOINT');
  assert.equal(await exitOf(m2.child), 0, 'the daemon saw its mount go and exited 0');
  await assertJournaled(d.dir, 'after umount');
});

test('SIGTERM with a file open and written journals it, then unmounts', { timeout: 120_000 }, async (t) => {
  const d = mountDirs();
  t.after(d.cleanup);
  const m = d.track(await spawnMount(d.dir, d.mnt, d.logs, ['--settle-ms', '600000']));
  const writer = spawn(process.execPath, ['-e', `
    const fs = require('node:fs');
    const fd = fs.openSync(process.argv[1], 'w');
    fs.writeSync(fd, 'written, not closed\\n');
    process.stdout.write('written\\n');
    setTimeout(() => {}, 60000);`, join(d.mnt, 'open.txt')], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => {
    if (writer.exitCode === null) writer.kill('SIGKILL');
  });
  await new Promise<void>((res) => writer.stdout.once('data', () => res()));
  await stopMount(m, 'SIGTERM');
  assert.equal(m.child.exitCode, 0, m.output());
  assert.equal(isMounted(d.mnt), false, 'unmounted');
  await assertJournaled(d.dir, 'after SIGTERM');
  assert.ok(cli(['kml', d.dir]).stdout.includes('write    open.txt'), 'the open file\'s data is journaled');
});

test('SIGKILL in the middle of writes: the next start cleans the stale mount, and the journal catches up', { timeout: 180_000 }, async (t) => {
  const d = mountDirs();
  t.after(d.cleanup);
  const m = d.track(await spawnMount(d.dir, d.mnt, d.logs));
  const writer = spawn(process.execPath, ['-e', `
    const fs = require('node:fs');
    const path = require('node:path');
    const root = process.argv[1];
    try {
      for (let i = 0; ; i++) {
        if (i % 50 === 0) fs.mkdirSync(path.join(root, 'd' + i));
        fs.writeFileSync(path.join(root, 'd' + (i - i % 50), 'f' + i), 'file ' + i + ' '.repeat(i % 200));
        if (i === 300) process.stdout.write('busy\\n');
      }
    } catch (e) {
      process.stdout.write(e.code + '\\n'); // ENOTCONN once the daemon is gone
    }`, d.mnt], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => {
    if (writer.exitCode === null) writer.kill('SIGKILL');
  });
  await new Promise<void>((res) => writer.stdout.once('data', () => res()));
  await stopMount(m, 'SIGKILL');
  await exitOf(writer);
  assert.equal(isMounted(d.mnt), true, 'the kernel keeps the dead daemon\'s mount');

  const again = d.track(await spawnMount(d.dir, d.mnt, d.logs));
  assert.ok(isMounted(d.mnt));
  writeFileSync(join(d.mnt, 'after.txt'), 'the new mount works');
  await assertJournaled(d.dir, 'after the restart');
  await stopMount(again);
  assert.equal(isMounted(d.mnt), false);
});

test('refusals: a mount point inside DIR, one already mounted; a change behind the mount\'s back is still journaled', { timeout: 120_000 }, async (t) => {
  const d = mountDirs();
  t.after(d.cleanup);
  mkdirSync(join(d.dir, 'inside'));
  const inside = cli(['mount', '--listen', 'none', '--log-dir', d.logs, d.dir, join(d.dir, 'inside')]);
  assert.equal(inside.code, 1);
  assert.match(inside.stderr, /\[MOUNT_FAILED\]/);

  d.track(await spawnMount(d.dir, d.mnt, d.logs));
  const other = mountDirs();
  t.after(other.cleanup);
  const busy = cli(['mount', '--listen', 'none', '--log-dir', other.logs, other.dir, d.mnt]);
  assert.equal(busy.code, 1);
  assert.match(busy.stderr, /\[MOUNT_BUSY\]/);

  writeFileSync(join(d.dir, 'behind.txt'), 'written in DIR, not through the mount');
  for (let i = 0; journalState(d.dir).digest !== (await diskDigest(d.dir)); i++) {
    assert.ok(i < 200, 'the watcher on DIR journals the change');
    await sleep(50);
  }
  await assertJournaled(d.dir, 'behind the mount');
});
