// Issue 19, item 5: a daemon killed (SIGKILL) half-way through its first journaling of a tree restarts, journals
// the rest, and ends with the journal's digest equal to the disk's (`digest` == `digest --scan`), every object
// once. The first journaling commits in runs (bulk-journal.ts): what a killed one committed stays, the restart's
// scan finds the directories it had not come to still fresh and journals them. INTERSYNC_TEST_JOURNAL_RUN_MS holds
// each run a moment so the kill lands half-way on any machine (no timing is asserted).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { NODE_ARGS, ROOT, STATE_DIR, cli, journalState, sleep, spawnDaemon, stopChild, tmpDir } from './helpers.js';

interface Progress {
  phase: string;
  done: number;
  about: number | null;
}

test('a first journaling killed half-way restarts and finishes with digest == digest --scan', async (t) => {
  const dir = tmpDir('intersync-bigkill-');
  const logs = tmpDir('intersync-bigkill-logs-');
  t.after(() => {
    dir.cleanup();
    logs.cleanup();
  });
  for (let d = 0; d < 40; d++) {
    mkdirSync(join(dir.path, `d${d}`, 'sub'), { recursive: true });
    for (let f = 0; f < 60; f++) writeFileSync(join(dir.path, `d${d}`, f % 2 === 0 ? `f${f}` : `sub/f${f}`), `file ${d}/${f}\n`);
    symlinkSync(`../d${(d + 1) % 40}`, join(dir.path, `d${d}`, 'next'));
  }
  const child = spawn(process.execPath, [...NODE_ARGS, '--log-dir', logs.path, '--state-dir', STATE_DIR, '--listen', 'none', dir.path], {
    cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, INTERSYNC_TEST_JOURNAL_RUN_MS: '1000' },
  });
  t.after(() => stopChild(child, 'SIGKILL'));
  const statusFile = join(dir.path, '.intermezzo', 'default', 'status.json');
  let seen: Progress | null = null;
  for (let i = 0; i < 1200 && seen === null; i++) {
    await sleep(50);
    try {
      const s = JSON.parse(readFileSync(statusFile, 'utf8')) as { pid: number; capture: { progress: Progress | null } };
      const p = s.capture.progress;
      if (s.pid === child.pid && p?.phase === 'journaling' && p.done > 0) seen = p;
    } catch {
      // not written yet, or being replaced
    }
  }
  assert.ok(seen !== null, 'the first journaling was seen under way');
  await stopChild(child, 'SIGKILL');
  const half = journalState(dir.path);
  assert.ok(half.records > 0 && half.records < 40 * 62 + 40, `killed half-way: ${half.records} records`);

  const again = await spawnDaemon(dir.path, logs.path, ['--listen', 'none']);
  try {
    const journal = cli(['digest', dir.path]).stdout.trim();
    const disk = cli(['digest', '--scan', dir.path]).stdout.trim();
    assert.match(journal, /^[0-9a-f]{64}$/);
    assert.equal(journal, disk, 'digest == digest --scan after the restart');
    const objects = (JSON.parse(cli(['status', dir.path, '--json']).stdout) as { objects: number }).objects;
    assert.equal(objects, 40 * 2 + 40 * 60 + 40, 'every directory, file and symlink journaled once');
  } finally {
    await stopChild(again);
  }
});
