// Invariant: a client's first start in a directory that already holds the files (a web root of an existing
// farm) adopts it: what is the server's already is journaled as the server's version without a transfer,
// what differs is a local change under the conflict policy (keep-both: the local version beside its name as
// a conflict copy, which reaches the server), what is only here reaches the server, and the end state is the
// one a fresh copy gives (journal digest = disk digest = the server's). `--dry-run` prints that plan and
// changes nothing (no .intermezzo, no file touched). Before this a populated directory was refused (NOT_EMPTY).
import assert from 'node:assert/strict';
import { cpSync, existsSync, linkSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync, chmodSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { NODE_ARGS, ROOT, STATE_DIR, cli, diskDigest, freePort, journalState, secretFile, spawnClient, spawnServer, stopChild, tmpDir, waitConverged } from './helpers.js';
import { conflictCopies, eventually, statusJson, treeFiles } from './farm.js';

const SIZE = 100_000;
const SAME = 20;

/** Every name below dir (the metadata folder left out) with what identifies its state: type, mode, mtime, content or target. */
function fingerprint(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const n of readdirSync(join(dir, rel)).sort()) {
    const p = rel === '' ? n : `${rel}/${n}`;
    if (p === '.intermezzo') continue;
    const st = lstatSync(join(dir, p));
    const what = st.isSymbolicLink() ? `-> ${readlinkSync(join(dir, p))}` : st.isDirectory() ? 'dir' : readFileSync(join(dir, p)).toString('base64').slice(0, 64) + st.size;
    out.push(`${p} ${(st.mode & 0o7777).toString(8)} ${st.mtimeMs} ${what}`);
    if (st.isDirectory()) out.push(...fingerprint(dir, p));
  }
  return out;
}

function serverTree(dir: string): void {
  mkdirSync(join(dir, 'site', 'img'), { recursive: true });
  for (let i = 0; i < SAME; i++) writeFileSync(join(dir, 'site', 'img', `p${i}.bin`), Buffer.alloc(SIZE, i + 1));
  writeFileSync(join(dir, 'site', 'index.html'), '<h1>the server\'s</h1>\n');
  writeFileSync(join(dir, 'site', 'new.html'), 'only on the server\n');
  writeFileSync(join(dir, 'site', 'mode.txt'), 'same content, other mode here\n');
  chmodSync(join(dir, 'site', 'mode.txt'), 0o644);
  symlinkSync('img/p0.bin', join(dir, 'site', 'logo'));
}

/** The client's tree: the server's files copied (with their mtimes, and without for a few), some changed, some only here. */
function clientTree(srv: string, dir: string): void {
  cpSync(join(srv, 'site'), join(dir, 'site'), { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
  // Same content, another mtime: hashed, found equal, kept.
  for (const i of [1, 2, 3]) utimesSync(join(dir, 'site', 'img', `p${i}.bin`), new Date(), new Date(Date.now() - 86_400_000));
  writeFileSync(join(dir, 'site', 'index.html'), '<h1>edited on this web node</h1>\n');
  writeFileSync(join(dir, 'site', 'new.html'), 'x'); // another size: differs without a read
  chmodSync(join(dir, 'site', 'mode.txt'), 0o600);
  // A symlink with another target differs.
  rmSync(join(dir, 'site', 'logo'));
  symlinkSync('img/p1.bin', join(dir, 'site', 'logo'));
  writeFileSync(join(dir, 'site', 'only-here.txt'), 'made on this web node\n');
  mkdirSync(join(dir, 'site', 'uploads'));
  writeFileSync(join(dir, 'site', 'uploads', 'a.jpg'), 'jpeg bytes\n');
}

test('adopting a populated directory: identical files stay without a transfer, differing ones kept beside, local ones sent; --dry-run changes nothing', { timeout: 240_000 }, async (t) => {
  const [srv, cl, logs] = [tmpDir('intersync-srv-'), tmpDir('intersync-cli-'), tmpDir('intersync-logs-')];
  serverTree(srv.path);
  const port = await freePort();
  const server = await spawnServer(srv.path, logs.path, port);
  let client: Awaited<ReturnType<typeof spawnClient>> | null = null;
  t.after(async () => {
    if (client !== null) await stopChild(client, 'SIGKILL');
    await stopChild(server, 'SIGKILL');
    for (const d of [srv, cl, logs]) d.cleanup();
  });
  clientTree(srv.path, cl.path);
  const secret = secretFile(srv.path);
  const url = `http://127.0.0.1:${port}`;

  // --dry-run: the plan, and nothing changed.
  const before = fingerprint(cl.path);
  const dry = cli(['--server', url, '--secret-file', secret, '--dry-run', '--json', cl.path]);
  assert.equal(dry.code, 0, dry.stderr);
  const plan = JSON.parse(dry.stdout) as {
    dryRun: boolean; kept: { files: number; bytes: number }; fetched: { files: number }; keptBeside: number; sent: { files: number }; modesSet: number; hashed: number;
    items: Array<{ path: string; action: string; to: string | null }>;
  };
  assert.equal(plan.dryRun, true);
  // Kept: the 20 images and mode.txt (its mode set to the server's); fetched: the server's index.html and new.html
  // (logo, the third that differs, is a symlink: no file to fetch).
  assert.equal(plan.kept.files, SAME + 1, dry.stdout);
  assert.equal(plan.kept.bytes >= SAME * SIZE, true);
  assert.equal(plan.keptBeside, 3, 'index.html, new.html and logo differ');
  assert.equal(plan.fetched.files, 2, 'the server\'s index.html and new.html');
  assert.equal(plan.sent.files, 4, 'the two kept beside (files), only-here.txt and uploads/a.jpg');
  assert.equal(plan.modesSet, 1);
  assert.equal(plan.hashed, 3, `only the three whose mtime differs are read: ${dry.stdout}`);
  assert.deepEqual(plan.items.filter((x) => x.action === 'beside').map((x) => x.path).sort(), ['site/index.html', 'site/logo', 'site/new.html']);
  assert.deepEqual(plan.items.filter((x) => x.action === 'local').map((x) => x.path).sort(), ['site/only-here.txt', 'site/uploads']);
  const human = cli(['--server', url, '--secret-file', secret, '--dry-run', cl.path]);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, new RegExp(`keep +${SAME + 1} files`));
  assert.match(human.stdout, /beside +3 local versions/);
  assert.match(human.stdout, /nothing was changed/);
  assert.deepEqual(fingerprint(cl.path), before, 'a dry run changes nothing in the tree');
  assert.equal(existsSync(join(cl.path, '.intermezzo')), false, 'a dry run makes no metadata folder');

  // The real start adopts.
  client = await spawnClient(cl.path, logs.path, port, secret);
  await waitConverged([srv.path, cl.path]);
  const s = statusJson(cl.path) as { client: { bytesIn: number } };
  const bytesIn = s.client.bytesIn;
  console.log(`adoption: ${bytesIn} bytes in at the client, for ${SAME * SIZE} bytes of identical files`);
  assert.ok(bytesIn < (SAME * SIZE) / 4, `identical files are not transferred: ${bytesIn} bytes came in`);
  // keep-both: the server's version at the name, the local one beside it, here and on the server.
  assert.equal(readFileSync(join(cl.path, 'site', 'index.html'), 'utf8'), '<h1>the server\'s</h1>\n');
  const beside = conflictCopies(cl.path).sort();
  assert.equal(beside.length, 3, beside.join(' '));
  const idx = beside.find((p) => p.startsWith('site/index.conflict-'))!;
  assert.equal(readFileSync(join(cl.path, idx), 'utf8'), '<h1>edited on this web node</h1>\n');
  await eventually('the local versions reach the server', () => conflictCopies(srv.path).sort(), (v) => JSON.stringify(v) === JSON.stringify(beside));
  assert.equal(readFileSync(join(srv.path, idx), 'utf8'), '<h1>edited on this web node</h1>\n');
  assert.equal(readlinkSync(join(cl.path, 'site', 'logo')), 'img/p0.bin');
  assert.equal(readFileSync(join(srv.path, 'site', 'only-here.txt'), 'utf8'), 'made on this web node\n');
  assert.equal(readFileSync(join(srv.path, 'site', 'uploads', 'a.jpg'), 'utf8'), 'jpeg bytes\n');
  assert.equal(lstatSync(join(cl.path, 'site', 'mode.txt')).mode & 0o777, 0o644);
  // Converged as a fresh copy would be: journal = disk here, = the server's.
  await waitConverged([srv.path, cl.path]);
  const j = journalState(cl.path).digest;
  assert.equal(j, journalState(srv.path).digest);
  assert.equal(await diskDigest(cl.path), j);
  assert.equal(await diskDigest(srv.path), j);
  const conflicts = cli(['conflicts', cl.path, '--json']);
  assert.equal(conflicts.code, 0, conflicts.stderr);
  assert.match(conflicts.stdout, /site\/index\.html/);
});

test('client-wins: a differing local file replaces the server\'s, which is kept in the conflicts folder; hard links grouped as on the server', { timeout: 180_000 }, async (t) => {
  const [srv, cl, logs] = [tmpDir('intersync-srv-'), tmpDir('intersync-cli-'), tmpDir('intersync-logs-')];
  writeFileSync(join(srv.path, 'page.html'), 'the server\'s page\n');
  writeFileSync(join(srv.path, 'same.html'), 'same on both\n');
  // One inode under two names on the server; two copies here: linked again, nothing fetched for them.
  writeFileSync(join(srv.path, 'h1'), 'linked\n');
  linkSync(join(srv.path, 'h1'), join(srv.path, 'h2'));
  const port = await freePort();
  const server = await spawnServer(srv.path, logs.path, port);
  let client: Awaited<ReturnType<typeof spawnClient>> | null = null;
  t.after(async () => {
    if (client !== null) await stopChild(client, 'SIGKILL');
    await stopChild(server, 'SIGKILL');
    for (const d of [srv, cl, logs]) d.cleanup();
  });
  writeFileSync(join(cl.path, 'page.html'), 'this web node\'s page, edited by hand\n');
  cpSync(join(srv.path, 'same.html'), join(cl.path, 'same.html'), { preserveTimestamps: true });
  for (const h of ['h1', 'h2']) cpSync(join(srv.path, h), join(cl.path, h), { preserveTimestamps: true });
  client = await spawnClient(cl.path, logs.path, port, secretFile(srv.path), ['--conflict-policy', 'client-wins']);
  await eventually('the local version reaches the server', () => readFileSync(join(srv.path, 'page.html'), 'utf8'), (v) => v === 'this web node\'s page, edited by hand\n');
  await waitConverged([srv.path, cl.path]);
  assert.equal(readFileSync(join(cl.path, 'page.html'), 'utf8'), 'this web node\'s page, edited by hand\n');
  assert.deepEqual(conflictCopies(cl.path), [], 'nothing beside: the local version won');
  const kept = readdirSync(join(cl.path, '.intermezzo', 'default', 'conflicts'));
  assert.equal(kept.length, 1, kept.join(' '));
  assert.equal(readFileSync(join(cl.path, '.intermezzo', 'default', 'conflicts', kept[0]!), 'utf8'), 'the server\'s page\n');
  assert.equal(await diskDigest(cl.path), journalState(cl.path).digest);
  assert.equal(lstatSync(join(cl.path, 'h1')).ino, lstatSync(join(cl.path, 'h2')).ino, 'grouped as on the server');
  assert.equal(readFileSync(join(cl.path, 'h2'), 'utf8'), 'linked\n');
});

test('an adoption killed on its way resumes at the next start, losing nothing', { timeout: 240_000 }, async (t) => {
  const [srv, cl, logs] = [tmpDir('intersync-srv-'), tmpDir('intersync-cli-'), tmpDir('intersync-logs-')];
  mkdirSync(join(srv.path, 'd'));
  for (let i = 0; i < 400; i++) writeFileSync(join(srv.path, 'd', `f${i}.txt`), `server ${i}\n`.repeat(50));
  const port = await freePort();
  const server = await spawnServer(srv.path, logs.path, port);
  const children: Array<ReturnType<typeof spawn>> = [];
  t.after(async () => {
    for (const c of children) await stopChild(c, 'SIGKILL');
    await stopChild(server, 'SIGKILL');
    for (const d of [srv, cl, logs]) d.cleanup();
  });
  // Half the files here already (another mtime: each is read), a tenth of them edited here, and files only here.
  mkdirSync(join(cl.path, 'd'));
  for (let i = 0; i < 400; i += 2) writeFileSync(join(cl.path, 'd', `f${i}.txt`), i % 10 === 0 ? `edited here ${i}\n` : `server ${i}\n`.repeat(50));
  for (let i = 0; i < 20; i++) writeFileSync(join(cl.path, `local${i}.txt`), `only here ${i}\n`);
  const secret = secretFile(srv.path);
  const first = spawn(process.execPath, [...NODE_ARGS, '--log-dir', logs.path, '--state-dir', STATE_DIR, '--server', `http://127.0.0.1:${port}`, '--secret-file', secret, cl.path], { cwd: ROOT, stdio: 'ignore' });
  children.push(first);
  // Killed once the adoption set the first differing file beside (enrolled by then: a kill during enrolment
  // is another matter), while it prepares or while the copy runs.
  await eventually('the adoption is on its way', () => conflictCopies(cl.path).length, (n) => n > 0, 60_000);
  await stopChild(first, 'SIGKILL');
  const held = conflictCopies(cl.path).length;
  console.log(`killed with ${held} local versions set beside, ${existsSync(join(cl.path, 'd', 'f1.txt')) ? 'the copy under way' : 'before the copy'}`);
  const again = await spawnClient(cl.path, logs.path, port, secret);
  children.push(again);
  await waitConverged([srv.path, cl.path], 120_000);
  // Every local version is on the server: the edited ones beside their names, the local-only ones as they are.
  const onServer = treeFiles(srv.path);
  for (let i = 0; i < 20; i++) assert.equal(onServer.get(`local${i}.txt`), `only here ${i}\n`);
  const edited = [...onServer.values()].filter((v) => v.startsWith('edited here'));
  assert.equal(edited.length, 40, 'each edited file is kept beside once');
  for (let i = 0; i < 400; i++) assert.equal(onServer.get(`d/f${i}.txt`), `server ${i}\n`.repeat(50));
  assert.equal(await diskDigest(cl.path), journalState(cl.path).digest);
  assert.equal(journalState(srv.path).digest, journalState(cl.path).digest);
});
