// Invariant: with the network up, every change made on any node (server or client) reaches every node,
// through one record stream and one apply path; at the end every node's journal digest is equal and equals
// the digest of its disk. Killing a node mid-transfer loses nothing and applies nothing twice.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, chmodSync, chownSync, existsSync, linkSync, mkdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'undici';
import { FilesetDb } from '#journal/fileset-db.js';
import { hashFile, lstatOrNull } from '#fsio/disk.js';
import { findFileset } from '#journal/layout.js';
import { readFrames } from '#net/protocol/frames.js';
import { DelayProxy, NODE_ARGS, proxiedPair, ROOT, diskDigest, freePort, journalState, readLogs, secretFile, sleep, spawnClient, spawnServer, stopChild, tmpDir, waitConverged } from './helpers.js';
import { NO_VERSION } from '#core/ids.js';

interface Cluster {
  server: string;
  clients: string[];
  port: number;
  secret: string;
  logs: string;
  procs: Map<string, ChildProcess>;
}

async function cluster(
  t: import('node:test').TestContext, nClients: number, prepare?: (serverDir: string) => void, args: { server?: string[]; client?: string[] } = {},
): Promise<Cluster> {
  const dirs = [tmpDir('intersync-srv-'), ...Array.from({ length: nClients }, () => tmpDir('intersync-cli-'))];
  const logs = tmpDir('intersync-logs-');
  const procs = new Map<string, ChildProcess>();
  t.after(async () => {
    for (const p of procs.values()) await stopChild(p, 'SIGKILL');
    for (const d of dirs) d.cleanup();
    logs.cleanup();
  });
  prepare?.(dirs[0]!.path);
  const port = await freePort();
  procs.set(dirs[0]!.path, await spawnServer(dirs[0]!.path, logs.path, port, args.server));
  const secret = secretFile(dirs[0]!.path);
  for (const d of dirs.slice(1)) procs.set(d.path, await spawnClient(d.path, logs.path, port, secret, args.client));
  return { server: dirs[0]!.path, clients: dirs.slice(1).map((d) => d.path), port, secret, logs: logs.path, procs };
}

/** Where a node's object table and its disk disagree (for failure messages). */
async function differences(dir: string): Promise<string[]> {
  const db = FilesetDb.open(findFileset(dir).db, { readonly: true, check: false });
  const out: string[] = [];
  try {
    const seen = new Set<string>();
    for (const o of db.allObjects()) {
      seen.add(o.path);
      const st = lstatOrNull(join(dir, o.path));
      const h = st?.type === 'file' ? await hashFile(join(dir, o.path), st.size) : null;
      if (st === null || st.type !== o.type || (o.type !== 'symlink' && st.mode !== o.mode) || (o.type === 'file' && h !== o.hash)) {
        out.push(`${o.path}: journal ${o.type} ${o.mode.toString(8)} ${o.hash?.slice(0, 8)} v${o.version}, disk ${st?.type} ${st?.mode.toString(8)} ${h?.slice(0, 8)}`);
      }
    }
    const walk = (rel: string): void => {
      for (const n of readdirSync(join(dir, rel))) {
        const p = rel === '' ? n : `${rel}/${n}`;
        if (p === '.intermezzo') continue;
        if (!seen.has(p)) out.push(`${p}: on disk, not journaled`);
        if (lstatOrNull(join(dir, p))?.type === 'dir') walk(p);
      }
    };
    walk('');
    out.push(`lml: ${db.readLml(0n, 50).map((r) => `${r.seq}:${r.kind}:${r.path}`).join(', ')}`);
  } finally {
    db.close();
  }
  return out;
}

/** Wait until every journal agrees and every disk agrees with its journal (capture may still be settling). */
async function assertAllEqual(c: Cluster, timeoutMs = 90_000): Promise<void> {
  const all = [c.server, ...c.clients];
  const t0 = Date.now();
  for (;;) {
    await waitConverged(all, timeoutMs);
    const journal = journalState(c.server).digest;
    const disks = await Promise.all(all.map(diskDigest));
    const states = all.map(journalState);
    if (disks.every((d) => d === journal) && states.every((s) => s.digest === journal)) return;
    if (Date.now() - t0 > timeoutMs) {
      for (const d of all) console.log(d, await differences(d));
      assert.deepEqual(disks, all.map(() => journal), 'every disk digest equals the journal digest');
    }
    await sleep(150);
  }
}

test('changes of every kind on any node reach every node', { timeout: 180_000 }, async (t) => {
  const c = await cluster(t, 2, (s) => {
    writeFileSync(join(s, 'before.txt'), 'made before the clients came');
    mkdirSync(join(s, 'site/css'), { recursive: true });
    writeFileSync(join(s, 'site/css/main.css'), 'body {}');
  });
  const [a, b] = c.clients as [string, string];
  const s = c.server;
  await assertAllEqual(c);
  assert.equal(readFileSync(join(a, 'site/css/main.css'), 'utf8'), 'body {}');

  // Client A creates and writes, client B makes directories, links and symlinks, the server edits.
  writeFileSync(join(a, 'from-a.txt'), 'hello from a');
  mkdirSync(join(b, 'orders/2026'), { recursive: true });
  writeFileSync(join(b, 'orders/2026/o1.json'), '{"id":1}');
  writeFileSync(join(s, 'before.txt'), 'edited on the server');
  await assertAllEqual(c);
  linkSync(join(b, 'orders/2026/o1.json'), join(b, 'orders/latest.json'));
  symlinkSync('orders/2026/o1.json', join(b, 'current'));
  chmodSync(join(a, 'from-a.txt'), 0o600);
  utimesSync(join(s, 'site/css/main.css'), new Date(1_600_000_000_000), new Date(1_600_000_000_000));
  await assertAllEqual(c);
  renameSync(join(a, 'site'), join(a, 'www'));
  writeFileSync(join(b, 'from-a.txt'), 'b rewrote a\'s file');
  await assertAllEqual(c);
  unlinkSync(join(s, 'before.txt'));
  rmSync(join(a, 'orders/2026'), { recursive: true });
  await assertAllEqual(c);

  for (const d of [s, a, b]) {
    assert.equal(existsSync(join(d, 'before.txt')), false, `${d}: delete reached`);
    assert.equal(readFileSync(join(d, 'www/css/main.css'), 'utf8'), 'body {}', `${d}: rename reached`);
    assert.equal(statSync(join(d, 'www/css/main.css')).mtimeMs, 1_600_000_000_000, `${d}: mtime reached`);
    assert.equal(statSync(join(d, 'from-a.txt')).mode & 0o777, 0o600, `${d}: mode reached`);
    assert.equal(readFileSync(join(d, 'from-a.txt'), 'utf8'), 'b rewrote a\'s file');
    assert.equal(readlinkSync(join(d, 'current')), 'orders/2026/o1.json', `${d}: symlink reached`);
    assert.equal(readFileSync(join(d, 'orders/latest.json'), 'utf8'), '{"id":1}', `${d}: hard link kept its content`);
  }
  // The hard link is a hard link on every node.
  for (const d of [s, a]) assert.equal(statSync(join(d, 'orders/latest.json')).nlink, 1, `${d}: the other name was removed`);
});

test('the first copy gives every file its mode, owner, mtime and links, whatever the umask', { timeout: 120_000 }, async (t) => {
  // Files a first copy writes straight at their names: modes the umask would mask, read-only, set-id bits,
  // another owner (as root), old mtimes. Set-id bits and owners travel because the fileset and the client
  // both say so (attrs.test.ts: by default they do not).
  const files: Array<{ name: string; mode: number; uid: number; gid: number }> = [
    { name: 'shared.txt', mode: 0o666, uid: 0, gid: 0 },
    { name: 'tool.sh', mode: 0o777, uid: 0, gid: 0 },
    { name: 'group.txt', mode: 0o664, uid: 0, gid: 0 },
    { name: 'readonly.txt', mode: 0o444, uid: 0, gid: 0 },
    { name: 'private.txt', mode: 0o600, uid: 0, gid: 0 },
    { name: 'setuid.bin', mode: 0o4755, uid: 0, gid: 0 },
    { name: 'setgid.bin', mode: 0o2750, uid: 0, gid: 0 },
    { name: 'theirs.txt', mode: 0o640, uid: 4321, gid: 4322 },
  ];
  const root = process.getuid?.() === 0;
  const c = await cluster(t, 1, (s) => {
    mkdirSync(join(s, 'attrs'));
    for (const [i, f] of files.entries()) {
      const abs = join(s, 'attrs', f.name);
      writeFileSync(abs, `content of ${f.name}\n`);
      if (root) chownSync(abs, f.uid, f.gid);
      chmodSync(abs, f.mode);
      utimesSync(abs, new Date(1_500_000_000_000 + i * 1000), new Date(1_500_000_000_000 + i * 1000));
    }
    // A large file (a block transfer, after the stream) with a hard link to it, and a link to a small file.
    const big = Buffer.alloc(3 << 20);
    for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i, i);
    mkdirSync(join(s, 'big'));
    writeFileSync(join(s, 'big/a.bin'), big);
    linkSync(join(s, 'big/a.bin'), join(s, 'big/b.bin'));
    linkSync(join(s, 'attrs/private.txt'), join(s, 'big/private-link.txt'));
  }, { server: ['--preserve-setid', '--preserve-owner'], client: ['--preserve-setid', '--preserve-owner'] });
  await assertAllEqual(c);
  const [a] = c.clients as [string];
  assert.ok(readFileSync(join(a, 'big/a.bin')).equals(readFileSync(join(c.server, 'big/a.bin'))), 'the large file');
  assert.equal(statSync(join(a, 'big/b.bin')).ino, statSync(join(a, 'big/a.bin')).ino, 'its hard link is a link');
  assert.equal(statSync(join(a, 'big/private-link.txt')).ino, statSync(join(a, 'attrs/private.txt')).ino, 'so is the small file\'s');
  for (const [i, f] of files.entries()) {
    const st = statSync(join(a, 'attrs', f.name));
    assert.equal((st.mode & 0o7777).toString(8), f.mode.toString(8), `${f.name}: mode`);
    assert.equal(st.mtimeMs, 1_500_000_000_000 + i * 1000, `${f.name}: mtime`);
    assert.equal(readFileSync(join(a, 'attrs', f.name), 'utf8'), `content of ${f.name}\n`, `${f.name}: content`);
    if (root) assert.deepEqual([st.uid, st.gid], [f.uid, f.gid], `${f.name}: owner`);
  }
});

test('a large file changed in its middle ships only the changed blocks', { timeout: 180_000 }, async (t) => {
  const c = await cluster(t, 1);
  const [a] = c.clients as [string];
  const big = Buffer.alloc(8 << 20);
  for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i, i);
  writeFileSync(join(a, 'big.bin'), big);
  await assertAllEqual(c);
  const changed = Buffer.from(big);
  changed.fill(7, 4 << 20, (4 << 20) + 100_000);
  writeFileSync(join(c.server, 'big.bin'), changed);
  await assertAllEqual(c);
  assert.ok(readFileSync(join(a, 'big.bin')).equals(changed));
  const clientLog = readLogs(c.logs);
  const deltas = clientLog.split('\n').filter((l) => l.includes('"block delta"') || l.includes('"uploaded"'));
  assert.ok(deltas.length >= 1, 'a block delta was used');
});

test('SIGKILL of the server, then of a client, during a 5,000-file transfer: all converge, each record once', { timeout: 300_000 }, async (t) => {
  const c = await cluster(t, 2);
  const [a, b] = c.clients as [string, string];
  // Client A writes 5,000 files; the server is killed mid-way and restarted.
  const writer = (async () => {
    for (let i = 0; i < 5000; i++) {
      if (i % 100 === 0) mkdirSync(join(a, `d${i / 100}`), { recursive: true });
      writeFileSync(join(a, `d${Math.floor(i / 100)}`, `f${i}`), `file ${i} `.repeat(1 + (i % 50)));
      if (i % 250 === 0) await sleep(5);
    }
  })();
  await sleep(600);
  await stopChild(c.procs.get(c.server)!, 'SIGKILL');
  await sleep(300);
  c.procs.set(c.server, await spawnServer(c.server, c.logs, c.port));
  await sleep(800);
  await stopChild(c.procs.get(b)!, 'SIGKILL');
  await writer;
  await sleep(300);
  c.procs.set(b, await spawnClient(b, c.logs, c.port, c.secret));
  await assertAllEqual(c);

  // Each record applied once: every file has one create in each journal, and the clients' KMLs are the server's.
  const kml = (dir: string) => {
    const db = FilesetDb.open(findFileset(dir).db, { readonly: true, check: false });
    try {
      return db.readKml(0n as never, 1_000_000);
    } finally {
      db.close();
    }
  };
  const server = kml(c.server);
  const creates = server.filter((r) => r.kind === 'create').map((r) => r.path);
  assert.equal(creates.length, 5000);
  assert.equal(new Set(creates).size, 5000, 'no file was created twice');
  for (const d of [a, b]) {
    const mine = kml(d).filter((r) => r.tid > 0n);
    const theirs = server.filter((r) => mine.length === 0 || r.tid >= mine[0]!.tid);
    assert.deepEqual(mine.map((r) => `${r.tid}:${r.kind}:${r.path}`), theirs.map((r) => `${r.tid}:${r.kind}:${r.path}`), `${d}: KML equals the server's`);
  }
});

test('the copy stream is one TID of the table, each file sent as it is when read: changed since with its new hash, removed since without content', { timeout: 120_000 }, async (t) => {
  // 40 MiB of files, more than the loopback socket buffers hold: the server is still reading while the reader waits.
  const c = await cluster(t, 0, (s) => {
    const block = Buffer.alloc(40 << 10);
    for (let d = 0; d < 10; d++) {
      mkdirSync(join(s, `d${d}`));
      for (let i = 0; i < 100; i++) writeFileSync(join(s, `d${d}`, `f${i}`), block.fill(`${d}.${i} `));
    }
    mkdirSync(join(s, 'z'));
    writeFileSync(join(s, 'z/changed.txt'), 'as it was at the TID of the copy');
    writeFileSync(join(s, 'z/removed.txt'), 'removed while the copy streams');
  });
  const db = FilesetDb.open(findFileset(c.server).db, { readonly: true, check: false });
  const uuid = db.meta.uuid;
  db.close();
  const res = await request(`http://127.0.0.1:${c.port}/v1/filesets/${uuid}/copy`, { headers: { authorization: `Bearer ${readFileSync(c.secret, 'utf8').trim()}` } });
  assert.equal(res.statusCode, 200);
  const frames = readFrames(res.body)[Symbol.asyncIterator]();
  const hello = (await frames.next()).value!;
  assert.equal(hello.type, 'hello');
  assert.equal(hello.header.entries, 1_013, '10 dirs, 1,000 files, z and its 2 files');
  const before = journalState(c.server).lastTid;
  assert.equal(hello.header.tid, `0x${before.toString(16).padStart(16, '0')}`, 'the TID of the table as the stream began');
  // While the stream waits on this reader, the server's files change.
  writeFileSync(join(c.server, 'z/changed.txt'), 'changed while the copy streams');
  rmSync(join(c.server, 'z/removed.txt'));
  for (let i = 0; i < 200 && journalState(c.server).lastTid < before + 2n; i++) await sleep(50);
  assert.ok(journalState(c.server).lastTid >= before + 2n, 'the server journaled both changes');
  const entries = new Map<string, { header: Record<string, unknown>; payload: Buffer | null }>();
  let ended = false;
  for (let f = await frames.next(); f.done !== true; f = await frames.next()) {
    if (f.value.type === 'end') ended = true;
    else entries.set((f.value.header.e as { path: string }).path, f.value);
  }
  assert.ok(ended, 'the stream ends with an end frame');
  assert.equal(entries.size, 1_013, 'every object of the table at that TID');
  const changed = entries.get('z/changed.txt')!;
  assert.equal(changed.payload?.toString(), 'changed while the copy streams');
  assert.equal(changed.header.hash, createHash('sha256').update('changed while the copy streams').digest('hex'), 'with the hash of what was sent');
  assert.equal(changed.header.ok, true);
  const removed = entries.get('z/removed.txt')!;
  assert.equal(removed.header.ok, false, 'a file removed since is sent without content');
  assert.equal(removed.payload, null);
  assert.equal(entries.get('d0/f0')!.payload?.length, 40 << 10);
});

test('a file made here during the first copy, at a name the copy brings, is kept beside the server\'s: both versions reach every node', { timeout: 180_000 }, async (t) => {
  const c = await cluster(t, 0, (s) => {
    for (let d = 0; d < 40; d++) {
      mkdirSync(join(s, `d${d}`));
      for (let i = 0; i < 200; i++) writeFileSync(join(s, `d${d}`, `f${i}`), `${d}/${i}`);
    }
    writeFileSync(join(s, 'zzz.txt'), 'the server version');
  });
  const cdir = tmpDir('intersync-cli-');
  t.after(() => cdir.cleanup());
  const child = spawn(process.execPath, [...NODE_ARGS, '--log-dir', c.logs, '--server', `http://127.0.0.1:${c.port}`, '--secret-file', c.secret, cdir.path], {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'],
  });
  c.procs.set(cdir.path, child);
  let out = '';
  child.stdout!.on('data', (b: Buffer) => {
    out += b.toString();
  });
  child.stderr!.on('data', (b: Buffer) => {
    out += b.toString();
  });
  // Once the client has found its directory empty and made its fileset, a local file takes the copy's last name.
  const db = join(cdir.path, '.intermezzo/default/fileset.db');
  for (let i = 0; i < 6_000 && !existsSync(db); i++) await sleep(5);
  writeFileSync(join(cdir.path, 'zzz.txt'), 'made here during the copy', { flag: 'wx' });
  for (let i = 0; i < 1_200 && !out.includes('stop with Ctrl-C'); i++) await sleep(100);
  assert.match(out, /stop with Ctrl-C/, 'the client finished its first copy');
  c.clients.push(cdir.path);
  await assertAllEqual(c);
  for (const dir of [c.server, cdir.path]) {
    const versions = readdirSync(dir).filter((n) => n.startsWith('zzz')).map((n) => readFileSync(join(dir, n), 'utf8')).sort();
    assert.deepEqual(versions, ['made here during the copy', 'the server version'], `both versions in ${dir}`);
  }
  assert.match(readLogs(c.logs), /a local file has this name/, 'the copy met the local file');
});

test('a first copy places symlinks, empty files and nested directories between the files its file-system thread writes', { timeout: 120_000 }, async (t) => {
  // No hard link: every run goes through the file-system thread, its symlinks and directories placed beside it.
  const c = await cluster(t, 1, (s) => {
    for (let d = 0; d < 3; d++) {
      mkdirSync(join(s, `d${d}/deeper/deepest`), { recursive: true });
      for (let i = 0; i < 600; i++) {
        const dir = join(s, `d${d}`, i % 3 === 0 ? '' : i % 3 === 1 ? 'deeper' : 'deeper/deepest');
        writeFileSync(join(dir, `f${i}.txt`), i % 50 === 0 ? '' : `${d}.${i}\n`);
        if (i % 40 === 0) symlinkSync(`f${i}.txt`, join(dir, `f${i}.link`));
        if (i % 170 === 0) symlinkSync('../nowhere', join(dir, `dangling${i}`));
      }
    }
  });
  await assertAllEqual(c);
  const [a] = c.clients as [string];
  assert.equal(readlinkSync(join(a, 'd1/f0.link')), 'f0.txt');
  assert.equal(readlinkSync(join(a, 'd2/deeper/dangling340')), '../nowhere');
  assert.equal(readFileSync(join(a, 'd2/deeper/deepest/f50.txt'), 'utf8'), '', 'an empty file');
  assert.equal(readFileSync(join(a, 'd0/deeper/f1.txt'), 'utf8'), '0.1\n');
});

interface StandIn {
  readonly srv: string;
  readonly cli: string;
  readonly log: () => string;
  readonly proxy: DelayProxy;
  readonly big: Buffer;
}

/**
 * A server whose capture journals a change 2 s after it (a busy server's capture is behind) and a client whose
 * content requests arrive 1 s late. A large file made on the server is journaled and forwarded; the client asks
 * for its content at once, and the file moves (alpha/e to beta/h) before that request gets through.
 */
async function standInCluster(t: import('node:test').TestContext): Promise<StandIn> {
  const { srv, cli, proxy, log } = await proxiedPair(t, {
    match: /^(GET|POST) \/v1\/filesets\/[^/ ]+\/blocks/, delayMs: 1000, serverArgs: ['--settle-ms', '2000'],
    prepare: (s) => {
      mkdirSync(join(s, 'alpha'));
      mkdirSync(join(s, 'beta'));
    },
  });
  const big = Buffer.alloc(3 << 20);
  for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i);
  const before = journalState(srv).lastTid;
  writeFileSync(join(srv, 'alpha/e'), big);
  for (let i = 0; i < 2_000 && journalState(srv).lastTid === before; i++) await sleep(10);
  assert.ok(journalState(srv).lastTid > before, 'the server journaled the new file');
  renameSync(join(srv, 'alpha/e'), join(srv, 'beta/h'));
  return { srv, cli, log, proxy, big };
}

async function logSays(s: StandIn, what: RegExp, timeoutMs = 30_000): Promise<void> {
  for (const t0 = Date.now(); !what.test(s.log()); await sleep(20)) {
    if (Date.now() - t0 > timeoutMs) assert.fail(`the log never said ${String(what)}`);
  }
}

test('a large file moved on the server before a client fetched its content arrives whole at its new name; the client, where nothing changed, originates no record', { timeout: 180_000 }, async (t) => {
  const s = await standInCluster(t);
  await waitConverged([s.srv, s.cli], 60_000);
  await sleep(3_000); // a stand-in taken for a local change would be journaled and reintegrated by now
  await waitConverged([s.srv, s.cli], 60_000);
  assert.ok(s.proxy.delayed >= 1, 'the client asked for the content through the delaying proxy');
  assert.match(s.log(), /content of this record no longer on the server/, 'the content was gone when the client asked');
  assert.match(s.log(), /content missing from the server when its record came: fetched now/, 'the client fetched it after the rename');
  for (const dir of [s.srv, s.cli]) {
    assert.equal(lstatOrNull(join(dir, 'alpha/e')), null, `no alpha/e left in ${dir}`);
    assert.ok(readFileSync(join(dir, 'beta/h')).equals(s.big), `beta/h in ${dir} holds the whole content`);
    assert.equal(await diskDigest(dir), journalState(dir).digest, `the disk of ${dir} is what its journal says`);
  }
  const clientDb = FilesetDb.open(findFileset(s.cli).db, { readonly: true, check: false });
  const serverDb = FilesetDb.open(findFileset(s.srv).db, { readonly: true, check: false });
  try {
    const fromClient = serverDb.readKml(NO_VERSION, 1_000_000).filter((r) => r.origin === clientDb.meta.nodeId);
    assert.deepEqual(fromClient.map((r) => `${r.kind} ${r.path}`), [], 'no record came from the client');
  } finally {
    clientDb.close();
    serverDb.close();
  }
});

test('a file removed on a client while it held only a stand-in for the server\'s content: that content is kept beside before the removal reaches the server', { timeout: 180_000 }, async (t) => {
  const s = await standInCluster(t);
  await logSays(s, /content of this record no longer on the server/);
  // The fetch after the rename fails (as with a cut link): the client still holds the empty stand-in at beta/h.
  s.proxy.refuse = true;
  await logSays(s, /"path":"beta\/h"[^\n]*cannot fetch the server's content of this file yet/);
  assert.equal(lstatOrNull(join(s.cli, 'beta/h'))?.size, 0, 'the client holds the stand-in');
  // Removed while the server's content cannot be fetched: the removal waits until it is kept beside.
  const pendingBefore = journalState(s.cli).lml;
  unlinkSync(join(s.cli, 'beta/h'));
  for (let i = 0; i < 2_000 && journalState(s.cli).lml <= pendingBefore; i++) await sleep(10);
  await sleep(1_500); // the reintegrator tries (and must not send) meanwhile
  assert.ok(lstatOrNull(join(s.srv, 'beta/h')) !== null, 'the removal is not sent while the server\'s content cannot be kept');
  s.proxy.refuse = false;
  s.proxy.delayMs = 0;
  await logSays(s, /the server's content kept beside/);
  await waitConverged([s.srv, s.cli], 60_000);
  for (const dir of [s.srv, s.cli]) {
    assert.equal(lstatOrNull(join(dir, 'beta/h')), null, `the removal reached ${dir}`);
    const kept = readdirSync(join(dir, 'beta')).filter((n) => n.startsWith('h.conflict-'));
    assert.equal(kept.length, 1, `one copy kept beside in ${dir}: ${kept.join(' ')}`);
    assert.ok(readFileSync(join(dir, 'beta', kept[0]!)).equals(s.big), `the copy in ${dir} holds the server's whole content`);
    assert.equal(await diskDigest(dir), journalState(dir).digest, `the disk of ${dir} is what its journal says`);
  }
});

test('a stand-in whose fetch failed while the stream stayed up gets the server\'s content once the server answers again, without a new connection', { timeout: 180_000 }, async (t) => {
  // Fails without the periodic catch-up in checkDigest (daemon/client-digest.ts): the content of a file behind was asked for
  // only at the next connection; the stream stayed up, so the client held the empty stand-in for good, its
  // state apart from the server's, and the digest check leaves a node with files behind alone.
  const s = await standInCluster(t);
  await logSays(s, /content of this record no longer on the server/);
  s.proxy.refuse = true; // only the content requests fail; the forwarded stream is not touched
  await logSays(s, /"path":"beta\/h"[^\n]*cannot fetch the server's content of this file yet/);
  s.proxy.refuse = false;
  s.proxy.delayMs = 0;
  await waitConverged([s.srv, s.cli], 60_000);
  for (const dir of [s.srv, s.cli]) {
    assert.ok(readFileSync(join(dir, 'beta/h')).equals(s.big), `beta/h in ${dir} holds the whole content`);
    assert.equal(await diskDigest(dir), journalState(dir).digest, `the disk of ${dir} is what its journal says`);
  }
});

test('a hard link made on a client to a file it held only a stand-in for, then written through the new name: the server\'s content is kept beside before the write leaves, nothing lost', { timeout: 180_000 }, async (t) => {
  // Chaos seeds 9205 and 9208 ("DESTROYED"): a write through one name of an inode whose other name held a stand-in.
  // Fails without the fix (keepServerContent (daemon/client-catch-up.ts) and #catchUp take every name of the inode): only a change
  // of the name noted behind kept the server's content first, so the link and the write went out, the server
  // joined the link to its file and the write replaced its content there for good (or, had the fetch come
  // first, it put the server's content into the inode over the write).
  const s = await standInCluster(t);
  await logSays(s, /content of this record no longer on the server/);
  s.proxy.refuse = true; // the fetch of the server's content fails, as with a cut link; records still pass
  await logSays(s, /"path":"beta\/h"[^\n]*cannot fetch the server's content of this file yet/);
  assert.equal(lstatOrNull(join(s.cli, 'beta/h'))?.size, 0, 'the client holds the stand-in');
  const mine = 'written here through a new name of the stand-in\n';
  const pendingBefore = journalState(s.cli).lml;
  linkSync(join(s.cli, 'beta/h'), join(s.cli, 'beta/k'));
  writeFileSync(join(s.cli, 'beta/k'), mine); // in place: the inode beta/h shares
  for (let i = 0; i < 2_000 && journalState(s.cli).lml < pendingBefore + 2; i++) await sleep(10);
  assert.ok(journalState(s.cli).lml >= pendingBefore + 2, 'the client journaled the link and the write');
  await sleep(1_500); // the reintegrator tries (and must not send) meanwhile
  assert.ok(readFileSync(join(s.srv, 'beta/h')).equals(s.big), 'the write is not sent while the server\'s content cannot be kept');
  s.proxy.refuse = false;
  s.proxy.delayMs = 0;
  await waitConverged([s.srv, s.cli], 60_000);
  for (const dir of [s.srv, s.cli]) {
    assert.equal(readFileSync(join(dir, 'beta/k'), 'utf8'), mine, `beta/k in ${dir} holds what the client wrote`);
    assert.equal(statSync(join(dir, 'beta/k')).ino, statSync(join(dir, 'beta/h')).ino, `beta/h and beta/k are one inode in ${dir}`);
    const kept = readdirSync(join(dir, 'beta')).filter((n) => n.startsWith('h.conflict-'));
    assert.ok(kept.some((n) => readFileSync(join(dir, 'beta', n)).equals(s.big)), `the server's content kept beside in ${dir}: ${kept.join(' ')}`);
    assert.equal(await diskDigest(dir), journalState(dir).digest, `the disk of ${dir} is what its journal says`);
  }
});

test('a file written on a client while it held a stand-in, then changed in mode on the server: the local content survives the merge, the server\'s is kept beside', { timeout: 180_000 }, async (t) => {
  const s = await standInCluster(t);
  await logSays(s, /content of this record no longer on the server/);
  // The fetch after the rename fails: the client still holds the empty stand-in at beta/h, noted behind.
  s.proxy.refuse = true;
  await logSays(s, /"path":"beta\/h"[^\n]*cannot fetch the server's content of this file yet/);
  // Then the link is cut altogether. The client writes the file (that write stays pending); the server changes
  // only its mode.
  s.proxy.match = /^/;
  s.proxy.cut();
  const mine = 'written here over the stand-in\n';
  const pendingBefore = journalState(s.cli).lml;
  writeFileSync(join(s.cli, 'beta/h'), mine);
  // Journaled before the link comes back (under load capture may lag the test): the write meets the server's
  // record as a pending local change, which is the case this test is about.
  for (let i = 0; i < 2_000 && journalState(s.cli).lml <= pendingBefore; i++) await sleep(10);
  assert.ok(journalState(s.cli).lml > pendingBefore, 'the client journaled its write');
  const before = journalState(s.srv).lastTid;
  chmodSync(join(s.srv, 'beta/h'), 0o600);
  for (let i = 0; i < 1_000 && journalState(s.srv).lastTid === before; i++) await sleep(10);
  assert.ok(journalState(s.srv).lastTid > before, 'the server journaled the change of mode');
  // Back on line, the server's records come first: the client merges (its content, the server's mode) and must
  // not then take its own write, put back by that merge and not journaled again yet, for the stand-in.
  s.proxy.refuse = false;
  s.proxy.delayMs = 0;
  await waitConverged([s.srv, s.cli], 60_000);
  for (const dir of [s.srv, s.cli]) {
    assert.equal(readFileSync(join(dir, 'beta/h'), 'utf8'), mine, `beta/h in ${dir} holds what the client wrote`);
    const kept = readdirSync(join(dir, 'beta')).filter((n) => n.startsWith('h.conflict-'));
    assert.ok(kept.some((n) => readFileSync(join(dir, 'beta', n)).equals(s.big)), `the server's content kept beside in ${dir}: ${kept.join(' ')}`);
    assert.equal(await diskDigest(dir), journalState(dir).digest, `the disk of ${dir} is what its journal says`);
  }
});
