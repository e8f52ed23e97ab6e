// Invariant: write tokens serialise writers without losing a change (a recalled holder reintegrates, then
// releases), subtree tokens let writers of different folders proceed without recalls, TLS carries the same
// protocol, and an interrupted first copy resumes to the same state.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import { readStatusFile } from '#daemon/status-file.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { findFileset } from '#journal/layout.js';
import { cli, diskDigest, freePort, journalState, secretFile, sleep, spawnClient, spawnDaemon, spawnServer, stopChild, tmpDir, waitConverged } from './helpers.js';

async function start(t: import('node:test').TestContext, serverArgs: string[], nClients: number) {
  const dirs = [tmpDir('intersync-srv-'), ...Array.from({ length: nClients }, () => tmpDir('intersync-cli-'))];
  const logs = tmpDir('intersync-logs-');
  const procs: ChildProcess[] = [];
  t.after(async () => {
    for (const p of procs) await stopChild(p, 'SIGKILL');
    for (const d of dirs) d.cleanup();
    logs.cleanup();
  });
  const port = await freePort();
  procs.push(await spawnServer(dirs[0]!.path, logs.path, port, serverArgs));
  const secret = secretFile(dirs[0]!.path);
  for (const d of dirs.slice(1)) procs.push(await spawnClient(d.path, logs.path, port, secret));
  return { server: dirs[0]!.path, clients: dirs.slice(1).map((d) => d.path), port, secret, logs: logs.path, procs };
}

async function converged(dirs: string[]): Promise<void> {
  await waitConverged(dirs);
  for (let i = 0; i < 100; i++) {
    const want = journalState(dirs[0]!).digest;
    const disks = await Promise.all(dirs.map(diskDigest));
    if (disks.every((d) => d === want)) return;
    await sleep(100);
    await waitConverged(dirs);
  }
  assert.fail('disks did not converge');
}

function recalls(serverDir: string): number {
  const s = readStatusFile(join(serverDir, '.intermezzo/default/status.json'));
  return ((s?.server ?? {}) as { recalls?: number }).recalls ?? -1;
}

test('fileset tokens: writers on two clients take turns through recalls, nothing lost', { timeout: 120_000 }, async (t) => {
  const c = await start(t, ['--token-scope', 'fileset'], 2);
  const [a, b] = c.clients as [string, string];
  for (let round = 0; round < 3; round++) {
    writeFileSync(join(a, `a${round}.txt`), `a ${round}`);
    await converged([c.server, a, b]);
    writeFileSync(join(b, `b${round}.txt`), `b ${round}`);
    await converged([c.server, a, b]);
  }
  await sleep(1100); // the status file is written every second
  assert.ok(recalls(c.server) >= 2, `the token moved between the writers by recall (recalls: ${recalls(c.server)})`);
  for (const d of [c.server, a, b]) for (let r = 0; r < 3; r++) assert.equal(readFileSync(join(d, `b${r}.txt`), 'utf8'), `b ${r}`);
});

test('subtree tokens: two web servers writing different folders never contend', { timeout: 120_000 }, async (t) => {
  const c = await start(t, ['--token-scope', 'subtree'], 2);
  const [a, b] = c.clients as [string, string];
  mkdirSync(join(a, 'siteA'));
  mkdirSync(join(b, 'siteB'));
  for (let round = 0; round < 3; round++) {
    writeFileSync(join(a, 'siteA', `p${round}.html`), `A ${round}`);
    writeFileSync(join(b, 'siteB', `p${round}.html`), `B ${round}`);
    await converged([c.server, a, b]);
  }
  await sleep(1100);
  assert.equal(recalls(c.server), 0);
  const st = JSON.parse(cli(['status', '--json', c.server]).stdout) as { server: { tokens: Array<{ scope: string; holder: string; words: string }> } };
  assert.deepEqual(st.server.tokens.map((g) => g.scope).sort(), ['/siteA', '/siteB']);
  // Status names each scope in words (issue 17), on the server and on the client that holds it.
  assert.deepEqual(st.server.tokens.map((g) => g.words).sort(), ['the folder siteA/ and everything below it', 'the folder siteB/ and everything below it']);
  assert.match(cli(['status', c.server]).stdout, /^ {2}write tokens: the folder site[AB]\/ and everything below it held by \S+, the folder site[AB]\/ and everything below it held by \S+$/m);
  assert.match(cli(['status', a]).stdout, /write tokens held: the folder siteA\/ and everything below it$/m);
});

test('TLS: a client trusting the server\'s certificate replicates; one that does not is refused clearly', { timeout: 120_000 }, async (t) => {
  const keys = tmpDir('intersync-tls-');
  t.after(keys.cleanup);
  const cert = join(keys.path, 'cert.pem');
  const key = join(keys.path, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  const srv = tmpDir('intersync-srv-');
  const cl = tmpDir('intersync-cli-');
  const other = tmpDir('intersync-cli-');
  const logs = tmpDir('intersync-logs-');
  const procs: ChildProcess[] = [];
  t.after(async () => {
    for (const p of procs) await stopChild(p, 'SIGKILL');
    for (const d of [srv, cl, other, logs]) d.cleanup();
  });
  writeFileSync(join(srv.path, 'index.html'), '<h1>secure</h1>');
  const port = await freePort();
  procs.push(await spawnDaemon(srv.path, logs.path, ['--listen', `127.0.0.1:${port}`, '--tls-cert', cert, '--tls-key', key]));
  const secret = secretFile(srv.path);
  procs.push(await spawnDaemon(cl.path, logs.path, ['--server', `https://127.0.0.1:${port}`, '--secret-file', secret, '--tls-ca', cert]));
  assert.equal(readFileSync(join(cl.path, 'index.html'), 'utf8'), '<h1>secure</h1>');
  writeFileSync(join(cl.path, 'new.html'), 'over tls');
  await converged([srv.path, cl.path]);
  const refused = cli(['--server', `https://127.0.0.1:${port}`, '--secret-file', secret, '--log-dir', logs.path, other.path]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /\[PEER_UNREACHABLE\]/);
});

test('a first copy killed half-way resumes where it stopped and ends equal', { timeout: 180_000 }, async (t) => {
  const srv = tmpDir('intersync-srv-');
  const cl = tmpDir('intersync-cli-');
  const logs = tmpDir('intersync-logs-');
  const procs: ChildProcess[] = [];
  t.after(async () => {
    for (const p of procs) await stopChild(p, 'SIGKILL'); // stop every daemon before removing its directory
    for (const d of [srv, cl, logs]) d.cleanup();
  });
  for (let d = 0; d < 40; d++) {
    mkdirSync(join(srv.path, `d${d}`));
    for (let i = 0; i < 100; i++) writeFileSync(join(srv.path, `d${d}`, `f${i}`), `${d}/${i} `.repeat(200));
  }
  const port = await freePort();
  procs.push(await spawnServer(srv.path, logs.path, port));
  const secret = secretFile(srv.path);
  const { spawn } = await import('node:child_process');
  const { NODE_ARGS, ROOT } = await import('./helpers.js');
  const first = spawn(process.execPath, [...NODE_ARGS, '--log-dir', logs.path, '--server', `http://127.0.0.1:${port}`, '--secret-file', secret, cl.path], { cwd: ROOT, stdio: 'ignore' });
  procs.push(first);
  // Kill it once part of the copy is on disk.
  for (let i = 0; i < 600; i++) {
    await sleep(20);
    try {
      if (journalState(cl.path).records === 0 && readFileSync(join(cl.path, 'd3/f5'), 'utf8').length > 0) break;
    } catch {
      // not there yet
    }
  }
  first.kill('SIGKILL');
  await new Promise((r) => first.once('exit', r));
  const partial = journalState(cl.path);
  assert.equal(partial.records, 0, 'killed before the copy finished');
  // A file the copy was writing straight into place when it died: noted, not journaled, half written.
  const db = FilesetDb.open(findFileset(cl.path).db, { check: false });
  try {
    assert.equal(db.objectByPath('d9/f99'), undefined, 'the last file of the snapshot was not copied yet');
    db.setMeta('copy_writing', JSON.stringify(['d9/f99']));
  } finally {
    db.close();
  }
  mkdirSync(join(cl.path, 'd9'), { recursive: true });
  writeFileSync(join(cl.path, 'd9/f99'), 'half writ');
  writeFileSync(join(srv.path, 'd0/f0'), 'changed on the server while the client was down');
  procs.push(await spawnClient(cl.path, logs.path, port, secret));
  await converged([srv.path, cl.path]);
  assert.equal(readFileSync(join(cl.path, 'd0/f0'), 'utf8'), 'changed on the server while the client was down');
  assert.equal(readFileSync(join(cl.path, 'd9/f99'), 'utf8'), readFileSync(join(srv.path, 'd9/f99'), 'utf8'), 'the half-written file was replaced');
  assert.deepEqual(readdirSync(join(cl.path, 'd9')).filter((n) => n.includes('conflict')), [], 'and not kept as a conflict');
});
