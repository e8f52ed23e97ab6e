// Invariant: with --versioning trash or simple, what a peer's record overwrites or deletes on a node is kept in
// its version store (apply/versions.ts), listed by `intersync versions` and brought back by `intersync restore`
// as an ordinary local change that replicates; with versioning off nothing is kept, and a node's own changes
// are never versioned. The keep rule (N copies, trash's one) prunes the older ones.
import assert from 'node:assert/strict';
import { linkSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pino } from 'pino';
import { test } from 'node:test';
import { cmdRestore, cmdVersions, pickVersion, parseAt } from '#cli/version-cmds.js';
import { cmdStatus } from '#cli/commands.js';
import { VersionStore, allVersions, parseKeep, versionStats, versioningSettings, versionsDir, type Version } from '#apply/versions.js';
import { cli, tmpDir } from './helpers.js';
import { Farm, assertSettled, eventually } from './farm.js';

interface Listed { path: string; time: string; tid: string | null; how: string; size: number; hash: string | null; file: string }

/** A command run in this process (a CLI process costs seconds on a busy machine): the lines it prints. */
function run(fn: (print: (line: string) => void) => void): string[] {
  const out: string[] = [];
  fn((line) => out.push(line));
  return out;
}

function versions(dir: string, path?: string): Listed[] {
  return run((p) => cmdVersions(dir, path, { json: true }, p)).map((l) => JSON.parse(l) as Listed);
}

function restore(dir: string, path: string, at: string, to?: string): string[] {
  return run((p) => cmdRestore(dir, path, { at, json: false, ...(to === undefined ? {} : { to }) }, p));
}

function contents(list: readonly Listed[]): string[] {
  return list.map((v) => readFileSync(v.file, 'utf8'));
}

test('a peer\'s overwrite and delete are kept on a versioning node, listed, restored, and replicated', async (t) => {
  const farm = await Farm.start(t, {
    clients: 0,
    serverArgs: ['--versioning', 'simple'],
    prepare: (s) => {
      writeFileSync(join(s, 'a.txt'), 'one\n');
      writeFileSync(join(s, 'b.txt'), 'bee\n');
    },
  });
  const s = farm.server;
  const c = await farm.addClient(undefined, ['--versioning', 'simple', '--versions-keep', '10']);
  const off = await farm.addClient();
  await assertSettled(farm.all);

  // The server (a local change there: not versioned) overwrites a.txt and removes b.txt.
  writeFileSync(join(s, 'a.txt'), 'two\n');
  unlinkSync(join(s, 'b.txt'));
  await assertSettled(farm.all);

  const a = versions(c, 'a.txt');
  const b = versions(c, 'b.txt');
  assert.deepEqual(a.map((v) => [v.how, v.size]), [['replaced', 4]]);
  assert.deepEqual(contents(a), ['one\n']);
  assert.deepEqual(b.map((v) => v.how), ['deleted']);
  assert.deepEqual(contents(b), ['bee\n']);
  assert.match(a[0]!.tid ?? '', /^0x[0-9a-f]{16}$/, 'the TID of the server record that replaced it');
  assert.notEqual(a[0]!.tid, b[0]!.tid);
  assert.equal(a[0]!.hash?.length, 12);
  assert.deepEqual(versions(off), [], 'versioning off keeps nothing');
  assert.deepEqual(versions(s), [], 'a change made on the node itself is not versioned');
  const text = cli(['versions', c, 'a.txt']);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /replaced .* a\.txt/);

  const st = JSON.parse(run((p) => cmdStatus(c, { json: true }, p))[0]!) as { versions: { count: number; bytes: number; versioning: string | null } };
  assert.deepEqual(st.versions, { count: 2, bytes: 8, versioning: 'simple' });
  assert.match(run((p) => cmdStatus(c, { json: false }, p)).join('\n'), /versions kept: 2, 8 B \(versioning simple\)/);

  // Errors that say what is wrong.
  const none = cli(['restore', c, 'a.txt', '--at', '2999-01-01']);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /no version of a\.txt replaced or removed at or after 2999-01-01T00:00:00\.000Z.*\[NO_SUCH_VERSION\]/);
  assert.throws(() => restore(c, 'a.txt', '0x7fffffffffffff00'), { code: 'NO_SUCH_VERSION', message: /no version of a\.txt replaced by TID/ });
  assert.throws(() => restore(c, 'nothing.txt', '10m'), { code: 'NO_SUCH_VERSION', message: /no version of nothing\.txt is kept/ });
  assert.throws(() => restore(c, 'a.txt', 'yesterday-ish'), { code: 'BAD_ARGUMENT', message: /neither a time nor a TID/ });

  // The deleted file back, by the TID of its removal: a local change of the client, on every node.
  const rb = cli(['restore', c, 'b.txt', '--at', b[0]!.tid!]);
  assert.equal(rb.code, 0, rb.stderr);
  await assertSettled(farm.all);
  for (const d of farm.all) assert.equal(readFileSync(join(d, 'b.txt'), 'utf8'), 'bee\n', d);
  // The overwritten one by the time versions printed: the client's write replaces the server's "two" there,
  // and the server (versioning too) keeps that as a peer's overwrite.
  assert.match(restore(c, 'a.txt', a[0]!.time).join('\n'), /restored a\.txt \(4 B\) from the version of a\.txt replaced at/);
  await assertSettled(farm.all);
  for (const d of farm.all) assert.equal(readFileSync(join(d, 'a.txt'), 'utf8'), 'one\n', d);
  const onServer = versions(s, 'a.txt');
  assert.deepEqual(contents(onServer), ['two\n']);
  assert.match(onServer[0]!.tid ?? '', /^0x[0-9a-f]{16}$/, 'the TID the server gave the client\'s write');
  assert.deepEqual(versions(s, 'b.txt'), [], 'a create over no file keeps nothing');
  assert.deepEqual(versions(c, 'a.txt').map((v) => v.tid), [a[0]!.tid], 'the restore, a change made here, is not versioned here');
  // --to another name: a new file.
  restore(c, 'a.txt', a[0]!.tid!, 'old/a.txt');
  await assertSettled(farm.all);
  assert.equal(readFileSync(join(s, 'old', 'a.txt'), 'utf8'), 'one\n');
  assert.deepEqual(versions(off), [], 'versioning off keeps nothing, whatever came');
});

test('keep-N and trash prune the older versions of a file; a hard-linked file keeps its old inode, not a name of it', async (t) => {
  const farm = await Farm.start(t, {
    clients: 0,
    prepare: (s) => {
      writeFileSync(join(s, 'f.txt'), 'v0\n');
      writeFileSync(join(s, 'h1'), 'linked\n');
      linkSync(join(s, 'h1'), join(s, 'h2'));
      writeFileSync(join(s, 'k1'), 'kept under k2\n');
      linkSync(join(s, 'k1'), join(s, 'k2'));
    },
  });
  const s = farm.server;
  const simple = await farm.addClient(undefined, ['--versioning', 'simple', '--versions-keep', '2']);
  const trash = await farm.addClient(undefined, ['--versioning', 'trash']);
  await assertSettled(farm.all);
  for (let i = 1; i <= 3; i++) {
    writeFileSync(join(s, 'f.txt'), `v${i}\n`);
    if (i === 1) {
      writeFileSync(join(s, 'h1'), 'linked, written\n'); // both names: the clients give each the new inode
      unlinkSync(join(s, 'k1')); // one name of two: the content lives on under k2
    }
    await assertSettled(farm.all);
  }
  // Newest first: the two contents replaced last.
  assert.deepEqual(contents(versions(simple, 'f.txt')), ['v2\n', 'v1\n']);
  assert.deepEqual(contents(versions(trash, 'f.txt')), ['v2\n']);
  // Two versions in one day: a date names both.
  const day = versions(simple, 'f.txt')[0]!.time.slice(0, 10);
  assert.throws(() => restore(simple, 'f.txt', day), { code: 'VERSION_AMBIGUOUS', message: /matches 2 versions of f\.txt/ });
  // The old inode of h1/h2 is in the store, not a third name of the new one: the tree's names are two.
  assert.deepEqual(contents(versions(simple, 'h1')), ['linked\n']);
  assert.equal(statSync(join(simple, 'h1')).nlink, 2);
  assert.equal(statSync(join(simple, 'h1')).ino, statSync(join(simple, 'h2')).ino);
  assert.equal(statSync(versions(simple, 'h1')[0]!.file).nlink, 1);
  assert.deepEqual(versions(simple, 'k1'), []);
  await eventually('the client logs every version it kept', () => farm.logMessages(simple, /version kept/).length, (n) => n === 4);
});

test('--at: a time names the content the file held then; a coarse time with several versions in it is ambiguous', () => {
  const v = (time: number, tid: string): Version => ({ path: 'f', time, tid, hash: null, how: 'replaced', size: 1, file: `/v${tid}` });
  const t0 = Date.parse('2026-12-06T02:30:12.123Z');
  const list = [v(t0 + 60_000, '0x0000000000000003'), v(t0 + 500, '0x0000000000000002'), v(t0, '0x0000000000000001')];
  assert.equal(pickVersion(list, 'f', '2026-12-06T02:30:12.123Z', t0).tid, '0x0000000000000001');
  assert.equal(pickVersion(list, 'f', '2026-12-06T02:30:12.200Z', t0).tid, '0x0000000000000002');
  assert.equal(pickVersion(list, 'f', '2026-12-06T02:31:00Z', t0).tid, '0x0000000000000003');
  assert.equal(pickVersion(list, 'f', '3', t0).tid, '0x0000000000000003');
  assert.throws(() => pickVersion(list, 'f', '2026-12-06T02:30:12Z', t0), { code: 'VERSION_AMBIGUOUS' });
  assert.throws(() => pickVersion(list, 'f', '2026-12-06T02:32Z', t0), { code: 'NO_SUCH_VERSION' });
  // 10 minutes before a moment just after the second version: the third.
  assert.equal(pickVersion(list, 'f', '10m', t0 + 600_000 + 1000).tid, '0x0000000000000003');
  assert.deepEqual(parseAt('2026-12-06', 0), { start: Date.parse('2026-12-06'), end: Date.parse('2026-12-06') + 86_400_000 });
  assert.equal(parseAt('soon', 0), null);
});

test('prune: simple keeps what is younger than the age, per file; trash keeps the newest one, within the age', () => {
  const dir = tmpDir('intersync-versions-');
  try {
    const now = Date.parse('2026-12-06T03:00:00.000Z');
    const put = (path: string, agoMs: number): void => {
      const name = `${path}~${new Date(now - agoMs).toISOString().replace(/[-:]/g, '')}~-~-~r`;
      mkdirSync(join(versionsDir(dir.path), dirname(name)), { recursive: true });
      writeFileSync(join(versionsDir(dir.path), name), `${path} ${agoMs}\n`);
    };
    const store = (mode: 'simple' | 'trash', keep: string): VersionStore =>
      new VersionStore(dir.path, versioningSettings(mode, keep), pino({ level: 'silent' }), () => now);
    put('a', 7_200_000);
    put('a', 1_800_000);
    put('d/a', 600_000);
    put('d/a', 7_200_000);
    put('d/b', 60_000);
    assert.equal(store('simple', '1h').prune(), 2);
    const left = (): string[] => [...allVersions(dir.path)].flatMap(([p, l]) => l.map((v) => `${p} ${now - v.time}`)).sort();
    assert.deepEqual(left(), ['a 1800000', 'd/a 600000', 'd/b 60000']);
    put('d/b', 30_000);
    assert.equal(store('trash', '20m').prune(), 2, 'd/b\'s older one, and a (older than 20m)');
    assert.deepEqual(left(), ['d/a 600000', 'd/b 30000']);
    assert.deepEqual(versionStats(dir.path).count, 2);
    assert.equal(store('simple', '1').prune(), 0);
    assert.deepEqual(parseKeep('0'), undefined);
    assert.deepEqual(parseKeep('90m'), { ageMs: 5_400_000 });
    assert.deepEqual(parseKeep('3'), { count: 3 });
  } finally {
    dir.cleanup();
  }
});
