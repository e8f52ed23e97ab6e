// Issue 19, item 5: the status (and the listener) are up from the start of a daemon, with the first journaling's
// progress, while a big tree is journaled. Fails without the change: the status file was first written once the
// start-up scan and the first journaling were done, so `status` said "daemon: not running" all along, and there
// was no listener until then either. A test hook holds the first journaling before its second run (no timing).
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { cmdStatus } from '#cli/commands.js';
import type { FilesetNode } from '#daemon/fileset-node.js';
import { digestOfDisk } from '#presto/scan.js';
import { formatDigest } from '#core/digest.js';
import { sleep, startNode, tmpDir } from './helpers.js';

function tree(root: string, dirs: number, files: number): void {
  for (let d = 0; d < dirs; d++) {
    mkdirSync(join(root, `d${d}`));
    for (let f = 0; f < files; f++) writeFileSync(join(root, `d${d}`, `f${f}.txt`), `file ${d}/${f}\n`);
  }
}

interface StatusOut {
  daemon: { pid: number } | null;
  capture: { state: string; progress: { phase: string; done: number; about: number | null } | null } | null;
  server: { url: string | null } | null;
}

function status(dir: string): { json: StatusOut; text: string } {
  let json = '';
  let text = '';
  cmdStatus(dir, { json: true }, (s) => {
    json += s;
  });
  cmdStatus(dir, { json: false }, (s) => {
    text += `${s}\n`;
  });
  return { json: JSON.parse(json) as StatusOut, text };
}

/** An HTTP answer from the listener (any status: it is up). */
function reachable(url: string): Promise<boolean> {
  return new Promise((res) => {
    const req = request(`${url}/`, { method: 'GET' }, (r) => {
      r.resume();
      res(true);
    });
    req.on('error', () => res(false));
    req.end();
  });
}

test('status answers with the first journaling\'s progress while it runs, and the listener is up', async (t) => {
  const dir = tmpDir('intersync-bigstart-');
  const logs = tmpDir('intersync-bigstart-logs-');
  t.after(() => {
    dir.cleanup();
    logs.cleanup();
  });
  tree(dir.path, 30, 100); // 3,000 files: three runs of the first journaling at least
  let runs = 0;
  let release!: () => void;
  const held = new Promise<void>((r) => {
    release = r;
  });
  let reached!: () => void;
  const atSecondRun = new Promise<void>((r) => {
    reached = r;
  });
  const starting = startNode(dir.path, logs.path, {
    listen: { host: '127.0.0.1', port: 0, tokenScope: 'fileset', leaseMs: 30_000, retainRecords: 1_000_000 },
    beforeJournalRun: async () => {
      if (++runs !== 2) return;
      reached();
      await held;
    },
  });
  let node: FilesetNode | undefined;
  try {
    await atSecondRun;
    await sleep(1100); // the status file is published once a second
    const { json, text } = status(dir.path);
    assert.equal(json.daemon?.pid, process.pid, 'the daemon is running, as the status says');
    assert.equal(json.capture?.state, 'watching');
    const p = json.capture?.progress;
    assert.ok(p !== null && p !== undefined, 'progress is shown while the first journaling runs');
    assert.equal(p.phase, 'journaling');
    assert.ok(p.done > 0 && p.done < 3030, `part of the records made: ${p.done}`);
    assert.ok(p.about !== null && p.about >= p.done, `an estimate of the whole: ${p.about}`);
    assert.match(text, /daemon: running/);
    assert.match(text, /starting: journaling [\d,]+ of about [\d.]+k?/);
    assert.ok(json.server?.url !== null && json.server?.url !== undefined, 'the listener is up');
    assert.ok(await reachable(json.server.url), 'the listener answers');
  } finally {
    release();
    node = await starting;
  }
  try {
    const after = status(dir.path).json;
    assert.equal(after.capture?.progress, null, 'no progress once started');
    assert.equal(formatDigest(node.db.digest), formatDigest((await digestOfDisk(dir.path)).digest));
    assert.equal(node.db.objectCount(), 3030);
  } finally {
    await node.stop();
  }
});
