// Invariant: when a client that was disconnected comes back, every change made on both sides is either
// merged or handled by the fileset's conflict policy; no data is lost (the losing version is kept beside the
// name or in the conflicts folder), deletes never come back, and at the end every node agrees.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, linkSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import { cli, diskDigest, freePort, journalState, readLogs, secretFile, sleep, spawnClient, spawnServer, stopChild, tmpDir, waitConverged } from './helpers.js';

interface Pair { server: string; client: string; logs: string }

async function pair(t: import('node:test').TestContext, setup: (server: string) => void, policy?: string): Promise<Pair> {
  const s = tmpDir('intersync-srv-');
  const c = tmpDir('intersync-cli-');
  const logs = tmpDir('intersync-logs-');
  const procs: ChildProcess[] = [];
  t.after(async () => {
    for (const p of procs) await stopChild(p, 'SIGKILL');
    for (const d of [s, c, logs]) d.cleanup();
  });
  setup(s.path);
  const port = await freePort();
  procs.push(await spawnServer(s.path, logs.path, port));
  if (policy !== undefined) assert.equal(cli(['config', s.path, `conflict-policy=${policy}`]).code, 0);
  procs.push(await spawnClient(c.path, logs.path, port, secretFile(s.path)));
  await converged(s.path, c.path);
  return { server: s.path, client: c.path, logs: logs.path };
}

async function converged(a: string, b: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    await waitConverged([a, b], 60_000);
    const want = journalState(a).digest;
    if ((await diskDigest(a)) === want && (await diskDigest(b)) === want) {
      await sleep(150); // redo steps after a conflict are captured a moment later: look once more
      await waitConverged([a, b], 60_000);
      if ((await diskDigest(b)) === journalState(a).digest && journalState(b).digest === journalState(a).digest) return;
    }
    await sleep(100);
  }
  assert.fail('the two nodes did not converge');
}

/** Offline on the client, `local` and `remote` made, then back; returns what `reconnect --json` printed. */
async function offline(p: Pair, local: () => void, remote: () => void): Promise<{ outcome: string; reintegrated: number; conflicts: number; pending: number }> {
  assert.equal(cli(['disconnect', p.client]).code, 0);
  await sleep(400);
  local();
  remote();
  await sleep(300); // both captures journal their side
  const r = cli(['reconnect', p.client, '--json']); // waits for the outcome
  assert.equal(r.code, 0, r.stderr);
  await converged(p.server, p.client);
  return JSON.parse(r.stdout) as { outcome: string; reintegrated: number; conflicts: number; pending: number };
}

const read = (d: string, f: string): string => readFileSync(join(d, f), 'utf8');
const conflictCopies = (d: string, dir = ''): string[] =>
  readdirSync(join(d, dir)).filter((n) => n.includes('.conflict-')).map((n) => (dir === '' ? n : `${dir}/${n}`));
const conflicts = (d: string, all = false): Array<{ kind: string; decision: string; status: string; kept: string | null }> =>
  cli(['conflicts', '--json', ...(all ? ['--all'] : []), d]).stdout.trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));

test('write/write: keep-both keeps the server\'s version at the name and the client\'s beside it', { timeout: 120_000 }, async (t) => {
  const p = await pair(t, (s) => writeFileSync(join(s, 'page.html'), 'v0'));
  const back = await offline(p, () => writeFileSync(join(p.client, 'page.html'), 'client v1'), () => writeFileSync(join(p.server, 'page.html'), 'server v1'));
  // reconnect waited for the outcome and said what it was (before it returned at once, saying nothing).
  assert.equal(back.outcome, 'done');
  assert.equal(back.conflicts, 1);
  assert.equal(back.pending, 0);
  assert.ok(back.reintegrated >= 1, `reintegrated ${back.reintegrated}`);
  for (const d of [p.server, p.client]) {
    assert.equal(read(d, 'page.html'), 'server v1');
    const copies = conflictCopies(d);
    assert.equal(copies.length, 1);
    assert.match(copies[0]!, /^page\.conflict-[0-9a-f]{16}-[0-9a-f]+\.html$/);
    assert.equal(read(d, copies[0]!), 'client v1');
  }
  const open = conflicts(p.client);
  assert.deepEqual(open.map((c) => [c.kind, c.decision, c.status]), [['write/write', 'keep-both', 'open']]);
  // Resolve by hand: the client's version wins.
  const listed = cli(['conflicts', p.client]).stdout;
  assert.match(listed, /mine \(this node's version\) kept at page\.conflict-[0-9a-f]+-[0-9a-f]+\.html, theirs \(the server's\) at the name/);
  assert.equal(cli(['resolve', p.client, 'page.html', '--keep', 'mine']).code, 0);
  await converged(p.server, p.client);
  assert.equal(read(p.server, 'page.html'), 'client v1');
  assert.deepEqual(conflictCopies(p.server), []);
  assert.deepEqual(conflicts(p.client), []);
});

test('write/unlink: the client\'s write survives a delete on the server, as a conflict copy', { timeout: 120_000 }, async (t) => {
  const p = await pair(t, (s) => writeFileSync(join(s, 'order.json'), '{}'));
  await offline(p, () => writeFileSync(join(p.client, 'order.json'), '{"paid":true}'), () => unlinkSync(join(p.server, 'order.json')));
  for (const d of [p.server, p.client]) {
    assert.equal(existsSync(join(d, 'order.json')), false);
    assert.deepEqual(conflictCopies(d).map((c) => read(d, c)), ['{"paid":true}']);
  }
});

test('unlink/write: a delete on the client loses to a write on the server; no data lost', { timeout: 120_000 }, async (t) => {
  const p = await pair(t, (s) => writeFileSync(join(s, 'a.txt'), 'v0'));
  await offline(p, () => unlinkSync(join(p.client, 'a.txt')), () => writeFileSync(join(p.server, 'a.txt'), 'server v1'));
  for (const d of [p.server, p.client]) assert.equal(read(d, 'a.txt'), 'server v1');
});

test('rename/rename: one object renamed to two names ends at the server\'s name', { timeout: 120_000 }, async (t) => {
  const p = await pair(t, (s) => writeFileSync(join(s, 'f'), 'content'));
  await offline(p, () => renameSync(join(p.client, 'f'), join(p.client, 'by-client')), () => renameSync(join(p.server, 'f'), join(p.server, 'by-server')));
  for (const d of [p.server, p.client]) {
    assert.equal(read(d, 'by-server'), 'content');
    assert.equal(existsSync(join(d, 'by-client')), false);
  }
  assert.deepEqual(conflicts(p.client, true).map((c) => c.kind), ['rename/rename']);
});

test('name/name: two objects created on one name: both kept', { timeout: 120_000 }, async (t) => {
  const p = await pair(t, () => {});
  await offline(p, () => writeFileSync(join(p.client, 'new.txt'), 'from client'), () => writeFileSync(join(p.server, 'new.txt'), 'from server'));
  for (const d of [p.server, p.client]) {
    assert.equal(read(d, 'new.txt'), 'from server');
    assert.deepEqual(conflictCopies(d).map((c) => read(d, c)), ['from client']);
  }
});

test('rmdir/gained: a directory removed on the client but filled on the server is kept', { timeout: 120_000 }, async (t) => {
  const p = await pair(t, (s) => {
    mkdirSync(join(s, 'uploads'));
    writeFileSync(join(s, 'uploads/old.jpg'), 'old');
  });
  await offline(p, () => rmSync(join(p.client, 'uploads'), { recursive: true }), () => writeFileSync(join(p.server, 'uploads/new.jpg'), 'new'));
  for (const d of [p.server, p.client]) {
    assert.equal(read(d, 'uploads/new.jpg'), 'new');
    assert.equal(existsSync(join(d, 'uploads/old.jpg')), false, 'the client\'s delete of the old file still applies');
  }
});

test('gained/rmdir: entries made on the client in a directory the server removed are kept beside it', { timeout: 120_000 }, async (t) => {
  const p = await pair(t, (s) => mkdirSync(join(s, 'tmp')));
  await offline(p, () => writeFileSync(join(p.client, 'tmp/report.txt'), 'work'), () => rmSync(join(p.server, 'tmp'), { recursive: true }));
  for (const d of [p.server, p.client]) {
    assert.equal(existsSync(join(d, 'tmp')), false);
    assert.deepEqual(conflictCopies(d).map((c) => read(d, c)), ['work']);
  }
});

test('setattr/write: a chmod on the client and a write on the server both survive', { timeout: 120_000 }, async (t) => {
  const p = await pair(t, (s) => writeFileSync(join(s, 'run.sh'), 'echo 0'));
  await offline(p, () => chmodSync(join(p.client, 'run.sh'), 0o700), () => writeFileSync(join(p.server, 'run.sh'), 'echo 1'));
  for (const d of [p.server, p.client]) {
    assert.equal(read(d, 'run.sh'), 'echo 1');
    assert.equal(statSync(join(d, 'run.sh')).mode & 0o777, 0o700);
  }
});

test('write/setattr: a write on the client and a chmod on the server both survive', { timeout: 120_000 }, async (t) => {
  const p = await pair(t, (s) => writeFileSync(join(s, 'run.sh'), 'echo 0'));
  await offline(p, () => writeFileSync(join(p.client, 'run.sh'), 'echo local'), () => chmodSync(join(p.server, 'run.sh'), 0o700));
  for (const d of [p.server, p.client]) {
    assert.equal(read(d, 'run.sh'), 'echo local');
    assert.equal(statSync(join(d, 'run.sh')).mode & 0o777, 0o700, `mode on ${d === p.server ? 'the server' : 'the client'}`);
  }
  assert.deepEqual(conflictCopies(p.client), [], 'merged: no conflict copy');
});

test('write/rename: a write on the client and a move on the server both survive, merged at the new name', { timeout: 120_000 }, async (t) => {
  // Fails without the merge (the conflict step's objectStep, kind 'write/rename'): the step took it for an overlap, an
  // open keep-both conflict, and left a second copy of the client's write as docs/notes.conflict-….txt.
  const p = await pair(t, (s) => {
    mkdirSync(join(s, 'docs'));
    writeFileSync(join(s, 'docs/notes.txt'), 'v0');
  });
  await offline(p, () => writeFileSync(join(p.client, 'docs/notes.txt'), 'written off line'), () => {
    mkdirSync(join(p.server, 'archive'));
    renameSync(join(p.server, 'docs/notes.txt'), join(p.server, 'archive/notes.txt'));
  });
  for (const d of [p.server, p.client]) {
    assert.equal(read(d, 'archive/notes.txt'), 'written off line', `archive/notes.txt on ${d === p.server ? 'the server' : 'the client'}`);
    assert.equal(existsSync(join(d, 'docs/notes.txt')), false);
    const copies = [...conflictCopies(d, 'archive'), ...conflictCopies(d, 'docs')];
    assert.deepEqual(copies, [], `merged: no conflict copy (${copies.map((c) => read(d, c)).join(', ')}; ${readLogs(p.logs).split('\n').filter((l) => /conflict/.test(l)).join(' ')})`);
  }
});

test('a create made offline on a name the server used and freed meanwhile ends at that name', { timeout: 180_000 }, async (t) => {
  const p = await pair(t, (s) => {
    mkdirSync(join(s, 'd'));
    writeFileSync(join(s, 'seed.txt'), 'seed');
  });
  assert.equal(cli(['disconnect', p.client]).code, 0);
  await sleep(400);
  for (let i = 0; i < 600; i++) writeFileSync(join(p.server, 'd', `f${i}`), `server ${i}`); // a stream that takes a while
  await sleep(800);
  writeFileSync(join(p.server, 'N'), 'server G');
  await sleep(300);
  renameSync(join(p.server, 'N'), join(p.server, 'N2')); // N is free on the server again
  await sleep(300);
  writeFileSync(join(p.client, 'N'), 'client F');
  await sleep(400);
  assert.equal(cli(['reconnect', p.client]).code, 0);
  await converged(p.server, p.client);
  for (const d of [p.server, p.client]) {
    assert.equal(read(d, 'N'), 'client F');
    assert.equal(read(d, 'N2'), 'server G');
    assert.deepEqual(conflictCopies(d), []);
  }
});

test('a create made offline and renamed on over a known file, while the server took its first name', { timeout: 180_000 }, async (t) => {
  const p = await pair(t, (s) => writeFileSync(join(s, 'M'), 'server H'));
  assert.equal(cli(['disconnect', p.client]).code, 0);
  await sleep(400);
  writeFileSync(join(p.client, 'N'), 'client F');
  await sleep(300);
  writeFileSync(join(p.client, 'M'), 'client H v2');
  await sleep(300);
  renameSync(join(p.client, 'N'), join(p.client, 'M')); // F moves on, over H: the create and the rename do not fold
  await sleep(300);
  writeFileSync(join(p.server, 'N'), 'server G'); // the server gives N to another object
  await sleep(400);
  assert.equal(cli(['reconnect', p.client]).code, 0);
  await converged(p.server, p.client);
  for (const d of [p.server, p.client]) {
    assert.equal(read(d, 'M'), 'client F', 'the client\'s rename over M stands');
    assert.equal(read(d, 'N'), 'server G');
  }
  const log = readdirSync(p.logs).map((f) => readFileSync(join(p.logs, f), 'utf8')).join('');
  assert.doesNotMatch(log, /resyncing the whole fileset|local change refused by the server/, 'settled by the conflict step, not by a resync');
});

test('a hard link made on the client to a file the server deleted keeps the content', { timeout: 120_000 }, async (t) => {
  const p = await pair(t, (s) => writeFileSync(join(s, 'target'), 'shared bytes'));
  await offline(p, () => linkSync(join(p.client, 'target'), join(p.client, 'alias')), () => unlinkSync(join(p.server, 'target')));
  for (const d of [p.server, p.client]) {
    assert.equal(read(d, 'alias'), 'shared bytes');
    assert.equal(existsSync(join(d, 'target')), false);
  }
});

test('deletes made while a client was away never come back', { timeout: 120_000 }, async (t) => {
  const p = await pair(t, (s) => {
    for (let i = 0; i < 20; i++) writeFileSync(join(s, `old${i}`), `${i}`);
  });
  await offline(p, () => writeFileSync(join(p.client, 'unrelated'), 'x'), () => {
    for (let i = 0; i < 20; i++) unlinkSync(join(p.server, `old${i}`));
  });
  for (const d of [p.server, p.client]) {
    assert.deepEqual(readdirSync(d).filter((n) => n.startsWith('old')), []);
    assert.equal(read(d, 'unrelated'), 'x');
  }
});

test('policies: server-wins keeps the losing copy in the conflicts folder; client-wins ships the client\'s', { timeout: 180_000 }, async (t) => {
  const sw = await pair(t, (s) => writeFileSync(join(s, 'x.css'), 'v0'), 'server-wins');
  await offline(sw, () => writeFileSync(join(sw.client, 'x.css'), 'client'), () => writeFileSync(join(sw.server, 'x.css'), 'server'));
  for (const d of [sw.server, sw.client]) {
    assert.equal(read(d, 'x.css'), 'server');
    assert.deepEqual(conflictCopies(d), []);
  }
  const [c] = conflicts(sw.client, true);
  assert.equal(c!.decision, 'remote');
  assert.equal(readFileSync(c!.kept!, 'utf8'), 'client', 'the losing version is recoverable');

  const cw = await pair(t, (s) => writeFileSync(join(s, 'y.css'), 'v0'), 'client-wins');
  await offline(cw, () => writeFileSync(join(cw.client, 'y.css'), 'client'), () => writeFileSync(join(cw.server, 'y.css'), 'server'));
  for (const d of [cw.server, cw.client]) assert.equal(read(d, 'y.css'), 'client');
  assert.equal(conflicts(cw.client, true)[0]!.decision, 'local');
});

test('a replicator away past the server\'s retention resyncs in full, keeping its own changes', { timeout: 180_000 }, async (t) => {
  const s = tmpDir('intersync-srv-');
  const c = tmpDir('intersync-cli-');
  const logs = tmpDir('intersync-logs-');
  const procs: ChildProcess[] = [];
  t.after(async () => {
    for (const p of procs) await stopChild(p, 'SIGKILL');
    for (const d of [s, c, logs]) d.cleanup();
  });
  for (const n of ['a.txt', 'b.txt', 'c.txt']) writeFileSync(join(s.path, n), `${n} v0`);
  const port = await freePort();
  procs.push(await spawnServer(s.path, logs.path, port, ['--retain-records', '3']));
  procs.push(await spawnClient(c.path, logs.path, port, secretFile(s.path), ['--replicate']));
  await converged(s.path, c.path);
  const p = { server: s.path, client: c.path, logs: logs.path };
  assert.equal(cli(['disconnect', c.path]).code, 0);
  await sleep(400);
  writeFileSync(join(c.path, 'a.txt'), 'a by the client');
  writeFileSync(join(c.path, 'b.txt'), 'b by the client');
  writeFileSync(join(s.path, 'b.txt'), 'b by the server');
  unlinkSync(join(s.path, 'c.txt'));
  for (let i = 0; i < 10; i++) writeFileSync(join(s.path, `new${i}`), `${i}`);
  await sleep(2500); // the server prunes its journal past the retention
  const st = JSON.parse(cli(['status', '--json', s.path]).stdout) as { server: { peers: Array<{ lagRecords: number }> } };
  assert.ok(st.server.peers[0]!.lagRecords > 3, 'the replicator is behind by more than the retention');
  assert.equal(cli(['reconnect', c.path]).code, 0);
  await converged(p.server, p.client);
  for (const d of [s.path, c.path]) {
    assert.equal(read(d, 'a.txt'), 'a by the client', 'a change the server did not contradict survives');
    assert.equal(read(d, 'b.txt'), 'b by the server');
    assert.deepEqual(conflictCopies(d).map((x) => read(d, x)), ['b by the client'], 'the contradicted change is kept beside');
    assert.equal(existsSync(join(d, 'c.txt')), false, 'a delete made while away does not come back');
    assert.equal(read(d, 'new9'), '9');
  }
  assert.match(readLogs(logs.path), /past retention/);
});
