// Invariant: a change made by hand in a slave's directory (or a byte changed behind its back) is never taken for
// the master's: mirror-stream finds it (at start, every --hand-check seconds, at the end), reports it (its log,
// its result, pfs-status) and undoes it from the journal: the slave's disk is the master's state again, what was
// made there kept aside under .intermezzo/<fs>/conflicts/.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { findFileset } from '#journal/layout.js';
import { cli, diskDigest, NODE_ARGS, ROOT, settle, sleep, stopChild } from './helpers.js';
import { lastJson, makeSlave, masterBox } from './mirror-fixture.js';

/** One byte of `file` changed in place, its size kept. */
function flipByte(file: string, at: number): void {
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, Buffer.from('#'), 0, 1, at);
  } finally {
    closeSync(fd);
  }
}

test('hand changes in a slave (content, a byte, mode, a new file and directory, a removal) are reported and undone', async (t) => {
  const b = await masterBox(t, 'intersync-mirror-hand-');
  mkdirSync(join(b.master, 'd'));
  writeFileSync(join(b.master, 'a.txt'), 'alpha alpha alpha\n');
  writeFileSync(join(b.master, 'd/f.txt'), 'in d\n');
  writeFileSync(join(b.master, 'big.bin'), Buffer.alloc(2 << 20, 4));
  symlinkSync('a.txt', join(b.master, 'l'));
  await settle(b.node);
  makeSlave(b.slave, b.node.db.meta.uuid);
  assert.equal(cli(['mirror-stream', '--once', b.master, b.slave]).code, 0);

  flipByte(join(b.slave, 'a.txt'), 3);
  flipByte(join(b.slave, 'big.bin'), 1_500_000);
  chmodSync(join(b.slave, 'd/f.txt'), 0o600);
  writeFileSync(join(b.slave, 'extra.txt'), 'made by hand\n');
  mkdirSync(join(b.slave, 'x/y'), { recursive: true });
  writeFileSync(join(b.slave, 'x/y/z'), 'z\n');
  rmSync(join(b.slave, 'l'));
  assert.notEqual(await diskDigest(b.slave), await diskDigest(b.master));

  const r = cli(['mirror-stream', '--once', '--json', '--hand-check', '0', b.master, b.slave]);
  assert.equal(r.code, 0, r.stderr);
  const found = (lastJson(r.stdout).handChanges as Array<{ path: string; what: string; undone: boolean }>).map((c) => `${c.what} ${c.path} ${c.undone}`).sort();
  assert.deepEqual(found, ['added extra.txt true', 'added x true', 'content a.txt true', 'content big.bin true', 'mode d/f.txt true', 'removed l true']);
  assert.match(r.stderr, /a change made by hand in the slave/); // the log, loudly
  assert.equal(await diskDigest(b.slave), await diskDigest(b.master));
  // What was made by hand is kept aside, not destroyed.
  const conflicts = findFileset(b.slave).conflictsDir;
  const aside = readdirSync(conflicts).filter((n) => n.startsWith('hand-'));
  assert.equal(aside.length, 1);
  assert.equal(readFileSync(join(conflicts, aside[0]!, 'extra.txt'), 'utf8'), 'made by hand\n');
  assert.equal(readFileSync(join(conflicts, aside[0]!, 'x/y/z'), 'utf8'), 'z\n');
  const st = lastJson(cli(['pfs-status', '--json', b.slave]).stdout) as { slave: { handChanges: unknown[] } };
  assert.equal(st.slave.handChanges.length, 6);
  // A second run finds nothing left.
  const again = cli(['mirror-stream', '--once', '--json', '--hand-check', '0', b.master, b.slave]);
  assert.deepEqual(lastJson(again.stdout).handChanges, []);
});

test('streaming: a byte changed behind the slave\'s back is found by the periodic check and undone', async (t) => {
  const b = await masterBox(t, 'intersync-mirror-hand-live-');
  writeFileSync(join(b.master, 'a.txt'), 'alpha alpha alpha\n');
  await settle(b.node);
  makeSlave(b.slave, b.node.db.meta.uuid);
  const child = spawn(process.execPath, [...NODE_ARGS, 'mirror-stream', '--hand-check', '1', b.master, b.slave], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => stopChild(child, 'SIGKILL'));
  let err = '';
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const file = join(b.slave, 'a.txt');
  for (let i = 0; i < 300 && !existsSync(file); i++) await sleep(100);
  await sleep(500);
  flipByte(file, 0);
  assert.equal(readFileSync(file, 'utf8')[0], '#');
  for (let i = 0; i < 300 && !err.includes('"path":"a.txt"'); i++) await sleep(100);
  assert.match(err, /"path":"a\.txt","what":"content","undone":true.*a change made by hand in the slave/);
  assert.equal(readFileSync(file, 'utf8'), 'alpha alpha alpha\n');
  const exit = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  child.kill('SIGTERM');
  assert.equal(await exit, 0, err);
});
