// Invariant: the adoption plan (daemon/adopt-plan.ts) decides from the local tree and the server's snapshot
// alone, and reads nothing it need not: a file is the server's when type, content and hard-link grouping
// match (size and mtime settle equal content without a read); a local version that differs goes where the
// conflict policy says (keep-both: beside; server-wins: aside; client-wins: sent over the server's, a file for
// a file only; newest-wins: by mtime); what is only here is sent, a local-only directory once.
import assert from 'node:assert/strict';
import { linkSync, mkdirSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { asTid } from '#core/ids.js';
import { sha256Hex } from '#core/sha256.js';
import type { SnapshotEntry } from '#net/peer-client.js';
import { parsePolicy } from '#policy/conflict-policy.js';
import { lstatOrNull } from '#fsio/disk.js';
import { planAdoption, summarize, type AdoptPlan } from '#daemon/adopt-plan.js';
import { tmpDir } from './helpers.js';

const T0 = 1_700_000_000_000;
let fids = 0;

function file(path: string, content: string, o: { mode?: number; mtimeMs?: number; linkOf?: string } = {}): SnapshotEntry {
  return {
    fid: `f${fids++}`, path, type: 'file', version: '0x0000000000000005', mode: o.mode ?? 0o644, uid: 0, gid: 0, mtimeMs: o.mtimeMs ?? T0,
    size: Buffer.byteLength(content), hash: sha256Hex(Buffer.from(content)), target: null, linkOf: o.linkOf ?? null,
  } as SnapshotEntry;
}

function dir(path: string): SnapshotEntry {
  return { fid: `f${fids++}`, path, type: 'dir', version: '0x0000000000000005', mode: 0o755, uid: 0, gid: 0, mtimeMs: T0, size: null, hash: null, target: null, linkOf: null } as SnapshotEntry;
}

function link(path: string, target: string): SnapshotEntry {
  return { fid: `f${fids++}`, path, type: 'symlink', version: '0x0000000000000005', mode: 0o777, uid: 0, gid: 0, mtimeMs: T0, size: null, hash: null, target, linkOf: null } as SnapshotEntry;
}

function put(root: string, path: string, content: string, mtimeMs = T0, mode = 0o644): void {
  writeFileSync(join(root, path), content, { mode });
  utimesSync(join(root, path), new Date(mtimeMs), new Date(mtimeMs));
}

function plan(root: string, entries: SnapshotEntry[], policy = 'keep-both'): AdoptPlan {
  return planAdoption({ root, entries, tid: asTid(0x2an), node: 'aaaaaaaaaaaaaaaa', serverNode: 'bbbbbbbbbbbbbbbb', policy: parsePolicy(policy)!, modeOf: (e) => e.mode });
}

const actions = (p: AdoptPlan): Record<string, string> => Object.fromEntries(p.items.map((x) => [x.path, x.action]));

test('equal size and mtime settle a file without reading it; another mtime makes it read; another size differs unread', (t) => {
  const d = tmpDir('intersync-adopt-');
  t.after(d.cleanup);
  put(d.path, 'same', 'abc');
  put(d.path, 'touched', 'abc', T0 + 5000);
  put(d.path, 'bigger', 'abcd');
  // Equal size and mtime, other bytes: taken as equal (rsync's quick check), as documented.
  put(d.path, 'quick', 'xyz');
  const p = plan(d.path, [file('same', 'abc'), file('touched', 'abc'), file('bigger', 'abc'), file('quick', 'abc'), file('missing', 'abc')]);
  assert.deepEqual(actions(p), { same: 'keep', touched: 'keep', bigger: 'beside', quick: 'keep', missing: 'fetch' });
  assert.equal(p.hashed, 1, 'only the touched file is read');
  const s = summarize(p);
  assert.deepEqual([s.kept.files, s.fetched.files, s.keptBeside, s.sent.files], [3, 2, 1, 1]);
});

test('a differing file under each policy: beside, aside, sent over the server\'s, or by mtime', (t) => {
  const d = tmpDir('intersync-adopt-');
  t.after(d.cleanup);
  put(d.path, 'old', 'local, older', T0 - 10_000);
  put(d.path, 'new', 'local, newer', T0 + 10_000);
  const entries = [file('old', 'the server\'s'), file('new', 'the server\'s')];
  assert.deepEqual(actions(plan(d.path, entries, 'keep-both')), { old: 'beside', new: 'beside' });
  assert.deepEqual(actions(plan(d.path, entries, 'server-wins')), { old: 'save', new: 'save' });
  assert.deepEqual(actions(plan(d.path, entries, 'client-wins')), { old: 'send', new: 'send' });
  assert.deepEqual(actions(plan(d.path, entries, 'newest-wins')), { old: 'save', new: 'send' });
  assert.deepEqual(actions(plan(d.path, entries, 'hook')), { old: 'beside', new: 'beside' }, 'no hook answer at adoption: keep both');
  const beside = plan(d.path, entries).items.find((x) => x.path === 'old')!;
  assert.equal(beside.to, 'old.conflict-aaaaaaaaaaaaaaaa-2a');
});

test('types, symlink targets, modes and local-only directories', (t) => {
  const d = tmpDir('intersync-adopt-');
  t.after(d.cleanup);
  mkdirSync(join(d.path, 'was-dir'));
  put(d.path, 'was-dir/inside', 'kept with its directory');
  put(d.path, 'was-file', 'a file here');
  symlinkSync('a', join(d.path, 'ln-same'));
  symlinkSync('b', join(d.path, 'ln-other'));
  put(d.path, 'mode', 'abc', T0, 0o600);
  mkdirSync(join(d.path, 'only'));
  put(d.path, 'only/1', '1');
  put(d.path, 'only/2', '22');
  const entries = [file('was-dir', 'x'), dir('was-file'), file('was-file/child', 'c'), link('ln-same', 'a'), link('ln-other', 'a'), file('mode', 'abc')];
  const p = plan(d.path, entries, 'client-wins');
  // client-wins puts a local file over a server's file only (a directory either side: kept beside instead).
  assert.deepEqual(actions(p), { 'was-dir': 'beside', 'was-file': 'beside', 'was-file/child': 'fetch', 'ln-same': 'keep', 'ln-other': 'send', mode: 'keep', only: 'local' });
  const wasDir = p.items.find((x) => x.path === 'was-dir')!;
  assert.equal(wasDir.files, 1);
  assert.equal(p.items.find((x) => x.path === 'mode')!.mode, 'send', 'client-wins: the local mode is sent');
  assert.equal(plan(d.path, entries).items.find((x) => x.path === 'mode')!.mode, 'set', 'keep-both: the server\'s mode set here');
  const only = p.items.find((x) => x.path === 'only')!;
  assert.deepEqual([only.files, only.sendBytes], [2, 3]);
});

test('hard links: a name the server links but this tree does not is linked again; names linked here but apart on the server get inodes of their own', (t) => {
  const d = tmpDir('intersync-adopt-');
  t.after(d.cleanup);
  put(d.path, 'a', 'same');
  put(d.path, 'b', 'same'); // apart here, one inode on the server
  put(d.path, 'c', 'other');
  linkSync(join(d.path, 'c'), join(d.path, 'e')); // one inode here, apart on the server
  const p = plan(d.path, [file('a', 'same'), file('b', 'same', { linkOf: 'a' }), file('c', 'other'), file('e', 'other')]);
  const by = new Map(p.items.map((x) => [x.path, x]));
  assert.equal(by.get('b')!.action, 'fetch');
  assert.equal(by.get('b')!.relink, true);
  assert.equal(by.get('b')!.bytes, 0, 'linked again: nothing to fetch');
  assert.equal(by.get('c')!.relink && by.get('e')!.relink, true);
  assert.equal(by.get('c')!.action, 'keep');
  assert.equal(lstatOrNull(join(d.path, 'c'))!.nlink, 2, 'the plan changes nothing');
});

test('an entry this node refuses (an escaping symlink under safe-links) is left out, and what is at its name here left alone', (t) => {
  const d = tmpDir('intersync-adopt-');
  t.after(d.cleanup);
  symlinkSync('/etc/passwd', join(d.path, 'escape'));
  put(d.path, 'ok', 'abc');
  const entries = [link('escape', '/etc/passwd'), file('ok', 'abc')];
  const p = planAdoption({
    root: d.path, entries, tid: asTid(1n), node: 'aaaaaaaaaaaaaaaa', serverNode: 'bbbbbbbbbbbbbbbb', policy: parsePolicy('keep-both')!,
    modeOf: (e) => (e.type === 'symlink' ? null : e.mode),
  });
  assert.deepEqual(actions(p), { ok: 'keep' }, 'neither kept as the server\'s nor sent as a local create');
});
