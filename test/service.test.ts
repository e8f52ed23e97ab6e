// Invariant: a site can run intersync as a service: the unit template passes `systemd-analyze verify`
// without a warning, `intersync stop` ends the daemon cleanly (exit 0, pid file gone) and waits for it,
// and `intersync backup` copies the journal while the daemon runs into one file (nothing beside it) that opens and is whole.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { FilesetDb } from '#journal/fileset-db.js';
import { cli, journalState, sleep, spawnDaemon, tmpDir } from './helpers.js';

test('install-service writes a unit that systemd-analyze verify accepts without a warning', (t) => {
  const d = tmpDir();
  t.after(d.cleanup);
  const units = join(d.path, 'units');
  const site = join(d.path, 'web site', 'docs');
  const r = cli(['install-service', '--unit-dir', units, site, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { unit: string; instance: string };
  const esc = spawnSync('systemd-escape', ['--path', site], { encoding: 'utf8' });
  assert.equal(esc.status, 0, 'systemd-escape (the systemd package) is installed: .ci/run installs it');
  assert.equal(out.instance, `intersync@${esc.stdout.trim()}.service`, 'the instance name is systemd\'s escaping of the path');
  const unit = readFileSync(out.unit, 'utf8');
  assert.match(unit, /^Type=simple$/m);
  assert.match(unit, /^ProtectSystem=strict$/m);
  assert.match(unit, /^ReadWritePaths=\/%I$/m);
  assert.match(unit, new RegExp(`^ExecStart=${process.execPath} \\S+/dist/cli/main\\.js /%I$`, 'm'));
  const v = spawnSync('systemd-analyze', ['verify', join(units, out.instance)], { encoding: 'utf8' });
  assert.equal(v.status, 0, v.stderr);
  assert.equal(`${v.stdout}${v.stderr}`.trim(), '', 'no warning');
  // The check can fail: a unit with a bad value is reported.
  const bad = join(d.path, 'bad');
  mkdirSync(bad);
  writeFileSync(join(bad, 'intersync@.service'), unit.replace('ProtectSystem=strict', 'ProtectSystem=sometimes'));
  const vb = spawnSync('systemd-analyze', ['verify', join(bad, out.instance)], { encoding: 'utf8' });
  assert.match(vb.stderr, /protect system/i);
});

test('stop ends the running daemon cleanly and waits; backup copies the journal online', async (t) => {
  const d = tmpDir();
  t.after(d.cleanup);
  const [dir, logs] = ['srv', 'logs'].map((x) => join(d.path, x)) as [string, string];
  mkdirSync(dir);
  const child = await spawnDaemon(dir, logs, ['--listen', '127.0.0.1:0']);
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  t.after(() => child.kill('SIGKILL'));
  for (let i = 0; i < 20; i++) writeFileSync(join(dir, `f${i}`), `content ${i}\n`);
  for (let i = 0; i < 100 && journalState(dir).records < 20; i++) await sleep(100);
  assert.equal(journalState(dir).records, 20);

  const out = join(d.path, 'backup', 'fileset.db');
  const b = cli(['backup', dir, out, '--json']);
  assert.equal(b.code, 0, b.stderr);
  const info = JSON.parse(b.stdout) as { records: number; lastTid: string };
  assert.equal(info.records, 20);
  const copy = FilesetDb.open(out, { readonly: true });
  try {
    assert.equal(copy.recordCount(), 20);
    assert.equal(copy.readKml(0n as never, 100).length, 20);
  } finally {
    copy.close();
  }
  // The backup is one file: fails without the change to cmdBackup (it left `fileset.db.<pid>.partial-wal` and
  // `-shm` beside it, from checking the copy, which kept the store's WAL mode).
  assert.deepEqual(readdirSync(join(d.path, 'backup')), ['fileset.db']);
  const again = cli(['backup', dir, out]);
  assert.equal(again.code, 2, 'an existing file is not replaced without --force');

  const s = cli(['stop', dir, '--json']);
  assert.equal(s.code, 0, s.stderr);
  assert.deepEqual((JSON.parse(s.stdout) as { stopped: boolean }).stopped, true);
  // stop returned only once the process was gone: exit code 0, no pid file, the log's last word is "stopped".
  assert.equal(await exited, 0);
  assert.equal(existsSync(join(dir, '.intermezzo/default/daemon.pid')), false);
  const none = cli(['stop', dir, '--json']);
  assert.equal(none.code, 0);
  assert.equal((JSON.parse(none.stdout) as { running: boolean }).running, false);
});
