// Invariant: killing the daemon with SIGKILL in the middle of a burst of writes loses no change: after a
// restart the journal and the disk agree (digest equals digest --scan) and no file is journaled twice.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { cli, sleep, spawnDaemon, stopChild, tmpDir } from './helpers.js';

const WRITER = `
const fs = require('node:fs');
const path = require('node:path');
const dir = process.argv[1];
for (let d = 0; d < 20; d++) fs.mkdirSync(path.join(dir, 'd' + d), { recursive: true });
for (let i = 0; i < 10000; i++) {
  fs.writeFileSync(path.join(dir, 'd' + (i % 20), 'f' + i), 'content of file ' + i + ' '.repeat(i % 300));
  if (i % 7 === 0 && i > 0) fs.appendFileSync(path.join(dir, 'd' + ((i - 7) % 20), 'f' + (i - 7)), ' appended');
  if (i === 2000) process.stdout.write('burst\\n');
}
process.stdout.write('done\\n');
`;

test('SIGKILL during a burst of 10,000 file writes loses no change', { timeout: 300_000 }, async (t) => {
  const dir = tmpDir();
  const logs = tmpDir('intersync-logs-');
  t.after(() => {
    dir.cleanup();
    logs.cleanup();
  });
  const first = await spawnDaemon(dir.path, logs.path);
  t.after(() => stopChild(first, 'SIGKILL'));
  const writer = spawn(process.execPath, ['-e', WRITER, dir.path], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const finished = new Promise<number | null>((res) => writer.on('exit', (code) => res(code)));
  await new Promise<void>((res) => writer.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.includes('burst')) res();
  }));
  await sleep(50);
  first.kill('SIGKILL');
  assert.equal(await finished, 0, 'the writer finished');

  const killedAt = cli(['status', '--json', dir.path]);
  assert.equal(killedAt.code, 0, killedAt.stderr);
  const journaledBefore = (JSON.parse(killedAt.stdout) as { records: number }).records;
  assert.ok(journaledBefore > 0, 'the daemon journaled part of the burst before it was killed');

  // The restart takes over the stale pid file, scans, and journals the rest before it says it is serving.
  const second = await spawnDaemon(dir.path, logs.path);
  await sleep(300);
  await stopChild(second);

  const journal = cli(['digest', dir.path]);
  const disk = cli(['digest', '--scan', dir.path]);
  assert.equal(journal.code, 0, journal.stderr);
  assert.equal(journal.stdout, disk.stdout, 'journal digest equals the digest of the disk');

  const kml = cli(['kml', '--json', dir.path]);
  const creates = new Map<string, number>();
  for (const line of kml.stdout.trim().split('\n')) {
    const r = JSON.parse(line) as { kind: string; path: string };
    if (r.kind === 'create') creates.set(r.path, (creates.get(r.path) ?? 0) + 1);
  }
  assert.equal(creates.size, 10_000, 'every file was journaled');
  assert.ok([...creates.values()].every((n) => n === 1), 'no file was journaled twice');
  console.log(`# journaled ${journaledBefore} records before SIGKILL; ${kml.stdout.trim().split('\n').length} in all`);
});
