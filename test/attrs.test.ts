// Invariant: modes, owners and symlinks from peers are a fileset policy, safe by default. A peer that
// holds the secret (a client, or the server itself) can never make a node create a set-uid or set-gid
// object, give an object to another owner, or write a file or a symlink outside the tree; set-id bits
// and owners are kept only when the fileset says preserve-setid=true / preserve-owner=true (and on a
// client only when its own setting agrees); safe-links=true refuses escaping symlinks. What a node
// applies is what it journals: `intersync digest DIR` equals `intersync digest DIR --scan` on each.
//
// Every test here fails on the code before the fix (bcdd7f3, checked by reverting src/): peers' modes
// and owners were applied as sent, the first copy took entries unchecked (a malformed or confined-out
// entry ended the copy), and the mkfs/daemon options did not exist.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { request } from 'undici';
import { PROTOCOL_VERSION } from '#core/format.js';
import { formatTid } from '#core/ids.js';
import { encodeFrame, helloFrame } from '#net/protocol/frames.js';
import { eventually } from './farm.js';
import { cli, enrolNode, freePort, sleep, spawnClient, spawnServer, stopChild, tmpDir } from './helpers.js';

const FAKE = 'f0f0f0f0f0f0f0f0';
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const SCRIPT = Buffer.from('#!/bin/sh\nid\n');

/** Temp dirs and daemons of one test, removed and stopped (by PID) after it. */
function scope(t: TestContext): { dir: (prefix: string) => string; spawn: (p: Promise<ChildProcess>) => Promise<ChildProcess> } {
  const procs: ChildProcess[] = [];
  const dirs: Array<() => void> = [];
  t.after(async () => {
    for (const p of procs.reverse()) await stopChild(p);
    for (const c of dirs) c();
  });
  return {
    dir: (prefix) => {
      const d = tmpDir(prefix);
      dirs.push(d.cleanup);
      return d.path;
    },
    spawn: async (p) => {
      const child = await p;
      procs.push(child);
      return child;
    },
  };
}

const modeOf = (abs: string): number => lstatSync(abs).mode & 0o7777;

/** `intersync digest DIR` and `intersync digest DIR --scan` agree: the journal says what the disk holds. */
async function assertDigestIsDisk(dir: string): Promise<void> {
  const digest = (scan: boolean): string => {
    const r = cli(['digest', dir, '--json', ...(scan ? ['--scan'] : [])]);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { digest: string }).digest;
  };
  await eventually(`${dir}: journal digest equals the disk's`, () => [digest(false), digest(true)], ([j, d]) => j === d, 15_000);
}

/** A node with the fileset secret that reintegrates records of its own making (FAKE), as a client would. */
class FakePeer {
  #seq = 0;
  constructor(readonly base: string, readonly secret: string, readonly uuid: string) {}

  async hello(): Promise<void> {
    const r = await request(`${this.base}/v1/hello`, {
      method: 'POST', headers: { authorization: `Bearer ${this.secret}`, 'content-type': 'application/json' },
      body: JSON.stringify({ node: FAKE, proto: PROTOCOL_VERSION }),
    });
    assert.equal(r.statusCode, 200, await r.body.text());
    await r.body.dump();
  }

  /** Send one record (fields over a plain create); its answer. */
  async send(over: Record<string, unknown>, payload: Buffer | null = null): Promise<{ status: string; r?: Record<string, string>; error?: { code: string } }> {
    const seq = ++this.#seq;
    const rec = {
      seq: String(seq), kind: 'create', fid: `${FAKE}-${seq.toString(16)}`, path: `f${seq}`, newPath: null, target: null,
      preVersion: formatTid(0n), mode: 0o644, uid: 0, gid: 0, mtimeMs: Date.now(), size: null, hash: null, origin: FAKE, time: Date.now(), ...over,
    };
    const body = Buffer.concat([helloFrame({ uuid: this.uuid, node: FAKE }), encodeFrame('record', { r: rec }, payload), encodeFrame('end')]);
    const r = await request(`${this.base}/v1/filesets/${this.uuid}/reint?node=${FAKE}`, {
      method: 'POST', headers: { authorization: `Bearer ${this.secret}`, 'content-type': 'application/octet-stream' }, body,
    });
    const text = await r.body.text();
    assert.equal(r.statusCode, 200, text);
    return (JSON.parse(text) as { results: Array<{ status: string; r?: Record<string, string>; error?: { code: string } }> }).results[0]!;
  }

  async create(path: string, content: Buffer, over: Record<string, unknown> = {}): Promise<Record<string, string>> {
    const a = await this.send({ path, size: content.length, hash: sha(content), ...over }, content);
    assert.equal(a.status, 'accepted', JSON.stringify(a));
    return a.r!;
  }
}

/** A server (mkfs with `mkfsArgs`, then its daemon) and a peer holding its secret. */
async function serverWith(t: TestContext, s: ReturnType<typeof scope>, mkfsArgs: string[]): Promise<{ dir: string; port: number; secretFile: string; peer: FakePeer }> {
  const dir = s.dir('intersync-attrs-srv-');
  const made = cli(['mkfs', dir, '--json', ...mkfsArgs]);
  assert.equal(made.code, 0, made.stderr);
  const { uuid, secretFile } = JSON.parse(made.stdout) as { uuid: string; secretFile: string };
  const port = await freePort();
  await s.spawn(spawnServer(dir, s.dir('intersync-attrs-log-'), port));
  const base = `http://127.0.0.1:${port}`;
  const peer = new FakePeer(base, await enrolNode(base, dir, FAKE), uuid); // FAKE's own credential: it acts for itself
  await peer.hello();
  return { dir, port, secretFile, peer };
}

const exists = (abs: string): boolean => {
  try {
    lstatSync(abs);
    return true;
  } catch {
    return false;
  }
};

test('by default a set-uid, root-owned or foreign-owned record is applied unprivileged on the server and a client; setattr to 04777 is stripped', async (t) => {
  const s = scope(t);
  const srv = await serverWith(t, s, []);
  const client = s.dir('intersync-attrs-cli-');
  await s.spawn(spawnClient(client, s.dir('intersync-attrs-log-'), srv.port, srv.secretFile));
  const suid = await srv.peer.create('suid', SCRIPT, { mode: 0o4755, uid: 0, gid: 0 });
  await srv.peer.create('given', SCRIPT, { mode: 0o644, uid: 4321, gid: 4321 });
  assert.equal((await srv.peer.send({ kind: 'mkdir', path: 'sgid', mode: 0o2775 })).status, 'accepted');
  assert.equal((await srv.peer.send({ kind: 'mkdir', path: 'tmp', mode: 0o1777 })).status, 'accepted');
  const setattr = await srv.peer.send({
    kind: 'setattr', fid: suid.fid, path: 'suid', preVersion: suid.postVersion, mode: 0o6777, size: SCRIPT.length, hash: sha(SCRIPT),
  });
  assert.equal(setattr.status, 'accepted', JSON.stringify(setattr));
  assert.equal(Number(setattr.r!.mode), 0o777, 'the server journals the mode it applied');
  for (const dir of [srv.dir, client]) {
    await eventually(`${dir}: the setattr arrived`, () => exists(join(dir, 'tmp')) && modeOf(join(dir, 'suid')), (m) => m === 0o777);
    assert.equal(modeOf(join(dir, 'suid')), 0o777, `${dir}: suid keeps its permission bits, not its set-id bits`);
    assert.equal(lstatSync(join(dir, 'suid')).uid, process.getuid!(), `${dir}: suid belongs to the daemon`);
    assert.equal(lstatSync(join(dir, 'given')).uid, process.getuid!(), `${dir}: not given to uid 4321`);
    assert.equal(lstatSync(join(dir, 'given')).gid, process.getgid!(), `${dir}: not given to gid 4321`);
    assert.equal(modeOf(join(dir, 'sgid')), 0o775, `${dir}: no set-gid directory`);
    assert.equal(modeOf(join(dir, 'tmp')), 0o1777, `${dir}: the sticky bit of a directory is kept`);
    await assertDigestIsDisk(dir);
  }
});

test('preserve-setid / preserve-owner keep set-id bits and owners (on a client only with its consent); safe-links refuses an escaping symlink', async (t) => {
  const s = scope(t);
  const srv = await serverWith(t, s, ['--preserve-setid', '--preserve-owner', '--safe-links']);
  const trusting = s.dir('intersync-attrs-cli-');
  await s.spawn(spawnClient(trusting, s.dir('intersync-attrs-log-'), srv.port, srv.secretFile, ['--preserve-setid', '--preserve-owner']));
  const wary = s.dir('intersync-attrs-cli-');
  const waryLog = s.dir('intersync-attrs-log-');
  await s.spawn(spawnClient(wary, waryLog, srv.port, srv.secretFile));
  const suid = await srv.peer.create('suid', SCRIPT, { mode: 0o4755, uid: 0, gid: 0 });
  await srv.peer.create('given', SCRIPT, { mode: 0o644, uid: 4321, gid: 4321 });
  for (const [target, why] of [['/etc/passwd', 'absolute'], ['../outside', 'leaves the tree'], ['a/../../x', 'climbs out']] as const) {
    const a = await srv.peer.send({ kind: 'symlink', path: 'esc', target });
    assert.equal(a.status, 'conflict', `${why}: refused (${JSON.stringify(a)})`);
    assert.equal(a.error?.code, 'UNSAFE_LINK', why);
  }
  assert.equal((await srv.peer.send({ kind: 'symlink', path: 'inside', target: 'a/../suid' })).status, 'accepted');
  const setattr = await srv.peer.send({
    kind: 'setattr', fid: suid.fid, path: 'suid', preVersion: suid.postVersion, mode: 0o4777, size: SCRIPT.length, hash: sha(SCRIPT),
  });
  assert.equal(setattr.status, 'accepted', JSON.stringify(setattr));
  for (const dir of [srv.dir, trusting]) {
    await eventually(`${dir}: the setattr arrived`, () => exists(join(dir, 'inside')) && modeOf(join(dir, 'suid')), (m) => m === 0o4777);
    assert.equal(lstatSync(join(dir, 'given')).uid, 4321, `${dir}: the owner is kept`);
    assert.equal(lstatSync(join(dir, 'given')).gid, 4321, `${dir}: the group is kept`);
    assert.equal(exists(join(dir, 'esc')), false, `${dir}: no escaping symlink`);
    await assertDigestIsDisk(dir);
  }
  // A client that did not agree takes neither from the server.
  await eventually('the wary client got the setattr', () => exists(join(wary, 'inside')) && modeOf(join(wary, 'suid')), (m) => m === 0o777);
  assert.equal(lstatSync(join(wary, 'given')).uid, process.getuid!(), 'the wary client keeps its own owner');
  await assertDigestIsDisk(wary);
  // Its state differs from the server's by design (0777 where the server has 04777): the digest check must not
  // take that for a client gone astray and resync it (again and again: a resync cannot change it). Fails
  // without the fix: "state differs from the server's …" within a few pings.
  await sleep(14_000); // two pings of the stream (every 10 s when idle) with a difference: enough for the check to fire
  const log = readdirSync(waryLog).map((f) => readFileSync(join(waryLog, f), 'utf8')).join('');
  assert.equal(/state differs from the server/.test(log), false, 'the wary client did not resync for a difference of policy');
});

/**
 * A server that lies: it says its fileset preserves set-id bits and owners, and its copy stream holds
 * set-id and foreign-owned files, a set-gid directory, symlinks out of the tree, a file below such a
 * symlink and entries whose paths leave the tree. Other requests fail (the client retries them).
 */
async function maliciousServer(t: TestContext, outside: string, only: 'attrs' | 'all' = 'all'): Promise<number> {
  const uuid = '11111111-2222-4333-8444-555555555555';
  const node = 'e5e5e5e5e5e5e5e5';
  let n = 0;
  const entry = (e: Record<string, unknown>, content?: Buffer): Buffer => {
    n++;
    const base = { fid: `${node}-${n.toString(16)}`, version: formatTid(BigInt(n)), mode: 0o644, uid: 0, gid: 0, mtimeMs: Date.now(), size: null, hash: null, target: null, linkOf: null };
    const full = { ...base, ...(content === undefined ? {} : { type: 'file', size: content.length, hash: sha(content) }), ...e };
    return encodeFrame('entry', content === undefined ? { e: full } : { e: full, hash: sha(content), ok: true }, content ?? null);
  };
  const all = [
    entry({ path: '../escape', type: 'dir', mode: 0o755 }),
    entry({ path: '.intermezzo/default/passwd' }, SCRIPT),
    entry({ path: 'd', type: 'dir', mode: 0o2755 }),
    entry({ path: 'd/owned', uid: 4321, gid: 4321 }, SCRIPT),
    entry({ path: 'inside', type: 'symlink', target: 'd/owned' }),
    entry({ path: 'out', type: 'symlink', target: outside }),
    entry({ path: 'out/planted' }, SCRIPT),
    entry({ path: 'rel', type: 'symlink', target: '../../escape' }),
    entry({ path: 'suid', mode: 0o6755 }, SCRIPT),
    entry({ path: 'weird', mode: 0o4755, uid: 0 }, Buffer.alloc(0)),
  ];
  // Set-id bits and owners alone (the old code placed them as sent), or every trap at once.
  const entries = only === 'all' ? all : [all[2]!, all[3]!, all[8]!, all[9]!];
  const server: Server = createServer((req, res) => {
    const url = (req.url ?? '').split('?')[0]!; // the copy names the client's last TID (?since=)
    if (req.method === 'POST' && url === '/v1/hello') {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({
        proto: PROTOCOL_VERSION, fileset: 'default', uuid, node, lastTid: formatTid(BigInt(n)), digest: '0'.repeat(64),
        tokenScope: 'fileset', leaseMs: 30_000, conflictPolicy: 'keep-both', attrs: { preserveSetid: true, preserveOwner: true, safeLinks: false },
      }));
      return;
    }
    if (req.method === 'POST' && url === '/v1/enrol') {
      // Any node is welcome here: the client gets a credential and goes on to its first copy.
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ credential: 'c'.repeat(43), node: 'client', replicate: false, uuid, fileset: 'default', server: node }));
      return;
    }
    if (req.method === 'GET' && url === `/v1/filesets/${uuid}/copy`) {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(Buffer.concat([helloFrame({ node, uuid, tid: formatTid(BigInt(n)), digest: '0'.repeat(64), entries: n, bytes: 0 }), ...entries, encodeFrame('end')]));
      return;
    }
    req.resume();
    res.writeHead(503, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { code: 'IO', message: 'not here', hint: null, retriable: true } }));
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  t.after(() => new Promise<void>((res) => {
    server.closeAllConnections();
    server.close(() => res());
  }));
  const a = server.address();
  return typeof a === 'object' && a !== null ? a.port : 0;
}

test('a malicious server that claims preserve-setid/preserve-owner cannot plant set-id or foreign-owned files in a first copy', async (t) => {
  const s = scope(t);
  const box = s.dir('intersync-attrs-box-');
  const port = await maliciousServer(t, join(box, 'outside'), 'attrs');
  const secretFile = join(box, 'secret');
  writeFileSync(secretFile, 'x'.repeat(64));
  const dir = join(box, 'client');
  mkdirSync(dir);
  await s.spawn(spawnClient(dir, s.dir('intersync-attrs-log-'), port, secretFile));
  assert.equal(modeOf(join(dir, 'suid')), 0o755, 'no set-id bits although the server says preserve-setid');
  assert.equal(modeOf(join(dir, 'weird')), 0o755, 'an empty set-uid file is no exception');
  assert.equal(modeOf(join(dir, 'd')), 0o755, 'no set-gid directory');
  assert.equal(lstatSync(join(dir, 'd/owned')).uid, process.getuid!(), 'not given to uid 4321');
  await assertDigestIsDisk(dir);
});

test('a malicious server cannot plant files or symlinks outside the tree (nor set-id files) in a first copy', async (t) => {
  const s = scope(t);
  const box = s.dir('intersync-attrs-box-');
  const outside = join(box, 'outside');
  mkdirSync(outside);
  const port = await maliciousServer(t, outside);
  const secretDir = s.dir('intersync-attrs-secret-');
  const secretFile = join(secretDir, 'secret');
  writeFileSync(secretFile, 'x'.repeat(64));
  // One client takes symlinks as they are (as rsync does without --safe-links), one refuses escaping ones.
  const plain = join(box, 'plain');
  const safe = join(box, 'safe');
  mkdirSync(plain);
  mkdirSync(safe);
  await s.spawn(spawnClient(plain, s.dir('intersync-attrs-log-'), port, secretFile));
  await s.spawn(spawnClient(safe, s.dir('intersync-attrs-log-'), port, secretFile, ['--safe-links']));
  for (const dir of [plain, safe]) {
    assert.equal(modeOf(join(dir, 'suid')), 0o755, `${dir}: no set-id bits although the server says preserve-setid`);
    assert.equal(modeOf(join(dir, 'weird')), 0o755, `${dir}: an empty set-uid file is no exception`);
    assert.equal(modeOf(join(dir, 'd')), 0o755, `${dir}: no set-gid directory`);
    assert.equal(lstatSync(join(dir, 'd/owned')).uid, process.getuid!(), `${dir}: not given to uid 4321`);
    assert.equal(readlinkSync(join(dir, 'inside')), 'd/owned', `${dir}: a symlink inside the tree is placed`);
    assert.equal(existsSync(join(box, 'escape')), false, `${dir}: nothing placed outside the tree`);
    assert.deepEqual(readdirSync(join(dir, '.intermezzo/default')).filter((x) => x === 'passwd'), [], `${dir}: nothing placed in the metadata folder`);
    await assertDigestIsDisk(dir);
  }
  assert.deepEqual(readdirSync(outside), [], 'nothing written through a symlink out of the tree');
  assert.equal(readlinkSync(join(plain, 'out')), outside, 'without safe-links an absolute symlink is placed');
  assert.equal(exists(join(safe, 'out')), false, 'with safe-links an absolute symlink is skipped');
  assert.equal(exists(join(safe, 'rel')), false, 'with safe-links a symlink climbing out is skipped');
});

test('a setattr of a symlink that claims file content is journaled without it, and clients keep the symlink', async (t) => {
  // Fails without the fix (net/server.ts): the server journaled the setattr with the size and hash its origin
  // gave (an empty file's), and a client that had removed the symlink "restored" the object as an empty
  // file at its name: chaos seed 9212, "delta/sub/b.txt: a file here, other content, other symlink target"
  // on two clients, then a resync of each.
  const s = scope(t);
  const srv = await serverWith(t, s, []);
  const client = s.dir('intersync-attrs-cli-');
  await s.spawn(spawnClient(client, s.dir('intersync-attrs-log-'), srv.port, srv.secretFile));
  const link = await srv.peer.send({ kind: 'symlink', path: 'l', target: 'nowhere', mode: 0o777 });
  assert.equal(link.status, 'accepted', JSON.stringify(link));
  await eventually(`${client}: the symlink arrived`, () => exists(join(client, 'l')) && lstatSync(join(client, 'l')).isSymbolicLink(), (v) => v);
  const setattr = await srv.peer.send({
    kind: 'setattr', fid: link.r!.fid, path: 'l', preVersion: link.r!.postVersion, mode: 0o777, size: 0, hash: sha(Buffer.alloc(0)),
  });
  assert.equal(setattr.status, 'accepted', JSON.stringify(setattr));
  assert.equal(setattr.r!.size, null, 'the server journals no size for a symlink');
  assert.equal(setattr.r!.hash, null, 'the server journals no content hash for a symlink');
  await eventually(`${client}: the setattr arrived`, () => cli(['kml', client, '--json']).stdout.includes('"setattr"'), (v) => v);
  await assertDigestIsDisk(client);
  await assertDigestIsDisk(srv.dir);
  assert.ok(lstatSync(join(client, 'l')).isSymbolicLink(), 'still a symlink on the client');
  assert.equal(readlinkSync(join(client, 'l')), 'nowhere');
});
