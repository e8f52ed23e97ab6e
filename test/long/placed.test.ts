// Invariant: a name a record gives goes into the directory its origin meant (by fid, RecordDraft.parent),
// wherever that directory is on the receiving node, and an existing object is changed where it is there.
// Found by the widened chaos run (issue 11, seeds 9201, 9203, 9204, 9206): records named directories by
// path alone.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { request } from 'undici';
import { placedHere } from '#apply/placed.js';
import { ROOT_FID, formatTid, type Fid } from '#core/ids.js';
import type { RecordDraft } from '#core/record.js';
import type { ObjectRow } from '#journal/fileset-db.js';
import { encodeFrame, helloFrame } from '#net/protocol/frames.js';
import { enrolNode, journalState, settle, startNode, tmpDir } from '../helpers.js';
import { Farm, assertSettled, disconnect, eventually, journaled, reconnect, treeFiles } from '../farm.js';

/**
 * One client and the server, settled after `prepare` on the server's directory; then, the client off line,
 * `client` changes its copy and `server` the server's (journaled), and the client reconnects. Resolves once
 * every node settled (equal digests, each journal equal to its disk, nothing pending), checking that the
 * client never resynced.
 */
async function offlineThenServer(t: TestContext, prepare: (s: string) => void, client: (c: string) => Promise<void>, server: (s: string) => void): Promise<Farm> {
  const farm = await Farm.start(t, { clients: 1 });
  const [c] = farm.clients as [string];
  const s = farm.server;
  prepare(s);
  await assertSettled(farm.all);
  await disconnect(farm, c);
  await client(c);
  const before = journalState(s).lastTid;
  server(s);
  await journaled(s, before);
  reconnect(c);
  await assertSettled(farm.all);
  assert.deepEqual(farm.logMessages(c, /resync|does not apply/), [], 'the client never resynced');
  assert.equal(journalState(c).lml, 0, 'the client\'s LML is empty');
  return farm;
}

const draft = (o: Partial<RecordDraft>): RecordDraft => ({
  kind: 'create', fid: 'aaaaaaaaaaaaaaaa-1' as Fid, path: 'a/x', newPath: null, target: null, preVersion: 0n as RecordDraft['preVersion'],
  mode: 0o644, uid: 0, gid: 0, mtimeMs: 0, size: 0, hash: null, origin: 'aaaaaaaaaaaaaaaa' as RecordDraft['origin'], time: 0, ...o,
});

test('placedHere: a new name follows its directory by fid, a change follows its object, the unknown keeps its path', () => {
  const rows = new Map<string, Partial<ObjectRow>>([
    ['bbbbbbbbbbbbbbbb-1', { type: 'dir', path: 'moved/here' }],
    ['bbbbbbbbbbbbbbbb-2', { type: 'file', path: 'moved/here/f' }],
    ['bbbbbbbbbbbbbbbb-3', { type: 'file', path: 'top' }],
  ]);
  const db = { objectByFid: (fid: Fid) => rows.get(fid) as ObjectRow | undefined };
  assert.equal(placedHere(db, draft({ path: 'a/x', parent: 'bbbbbbbbbbbbbbbb-1' as Fid })).path, 'moved/here/x');
  assert.equal(placedHere(db, draft({ path: 'a/b/x', parent: ROOT_FID })).path, 'x');
  assert.equal(placedHere(db, draft({ path: 'a/x', parent: 'bbbbbbbbbbbbbbbb-9' as Fid })).path, 'a/x', 'a directory not here: the path stays');
  assert.equal(placedHere(db, draft({ path: 'a/x', parent: 'bbbbbbbbbbbbbbbb-3' as Fid })).path, 'a/x', 'not a directory: the path stays');
  assert.equal(placedHere(db, draft({ path: 'a/x' })).path, 'a/x', 'no parent (an older peer): the path stays');
  const w = placedHere(db, draft({ kind: 'write', fid: 'bbbbbbbbbbbbbbbb-2' as Fid, path: 'old/f' }));
  assert.equal(w.path, 'moved/here/f');
  const mv = placedHere(db, draft({ kind: 'rename', fid: 'bbbbbbbbbbbbbbbb-3' as Fid, path: 'was', newPath: 'a/y', parent: 'bbbbbbbbbbbbbbbb-1' as Fid }));
  assert.deepEqual([mv.path, mv.newPath], ['top', 'moved/here/y']);
  const ln = placedHere(db, draft({ kind: 'link', path: 'a/l', target: 'old/f', targetFid: 'bbbbbbbbbbbbbbbb-2' as Fid }));
  assert.deepEqual([ln.path, ln.target], ['a/l', 'moved/here/f'], 'a link links to its name wherever it is');
  const same = draft({ kind: 'write', fid: 'bbbbbbbbbbbbbbbb-3' as Fid, path: 'top' });
  assert.equal(placedHere(db, same), same, 'nothing to change: the same record');
});

test('a directory moved onto a name while the client\'s daemon was down, a file made in it at once, while the server put another directory there', { timeout: 120_000 }, async (t) => {
  // The end-to-end shape of chaos seed 9201, where the client's create of gamma/deep/h named its directory by
  // path and on the server gamma/deep was another directory by then: the file went into the server's directory,
  // and the client's h stayed on its disk, journaled nowhere. This sequential replay passes on the code before
  // the fix too (the reconnection applies the server's records first, which renames the pending records); the
  // race it needs is pinned by the server-level test below, which fails without the fix.
  const farm = await Farm.start(t, { clients: 1 });
  const [c] = farm.clients as [string];
  const s = farm.server;
  mkdirSync(join(s, 'gamma/deep'), { recursive: true });
  mkdirSync(join(s, 'epsilon/mine'), { recursive: true });
  writeFileSync(join(s, 'epsilon/mine/a'), 'a, in the client\'s directory\n');
  mkdirSync(join(s, 'delta/theirs'), { recursive: true });
  writeFileSync(join(s, 'delta/theirs/b'), 'b, in the server\'s directory\n');
  await assertSettled(farm.all);
  await farm.stopNode(c);
  renameSync(join(c, 'epsilon/mine'), join(c, 'gamma/deep')); // over the empty directory
  writeFileSync(join(c, 'gamma/deep/h'), 'h made on the client\n');
  const before = journalState(s).lastTid;
  rmdirSync(join(s, 'gamma/deep'));
  renameSync(join(s, 'delta/theirs'), join(s, 'gamma/deep'));
  writeFileSync(join(s, 'gamma/deep/h'), 'h made on the server\n');
  await journaled(s, before);
  await farm.startNode(c);
  const why = (): string => JSON.stringify(farm.logMessages(c, /refused|resync|does not apply|conflict/));
  await eventually('the client\'s h reaches the server', () => [...treeFiles(s).values()], (v) => v.includes('h made on the client\n'), 20_000, why);
  await assertSettled(farm.all);
  for (const d of farm.all) {
    const all = treeFiles(d);
    assert.equal(all.get('gamma/deep/h'), 'h made on the server\n', `${d}: the server's h in the server's directory`);
    const mine = [...all].filter(([, v]) => v === 'h made on the client\n').map(([k]) => k);
    assert.equal(mine.length, 1, `${d}: the client's h once (${JSON.stringify(mine)})`);
    const a = [...all].filter(([, v]) => v === 'a, in the client\'s directory\n').map(([k]) => k);
    assert.equal(a.length, 1, `${d}: a once (${JSON.stringify(a)})`);
    assert.equal(a[0]!.slice(0, a[0]!.lastIndexOf('/')), mine[0]!.slice(0, mine[0]!.lastIndexOf('/')), `${d}: the client's h is in the client's directory, beside a`);
  }
  assert.deepEqual(farm.logMessages(c, /resync/i), [], 'the client never resynced');
  assert.equal(journalState(c).lml, 0, 'the client\'s LML is empty');
});

test('the server places a client\'s record by identity: a new name in its directory moved meanwhile, a change where its object is, a link to its name where it is', { timeout: 60_000 }, async (t) => {
  // Fails without the fix: the server took "create d/x" into the directory that had the name d by then (a new
  // one, made after the client's d moved to e), and refused "write d/f" ("the object is at e/f here") until
  // the client, caught up, sent it again at e/f; and refused "link d/l to d/f" ("link target d/f is not a
  // file here"): a client that had not seen the move yet then resynced.
  const CLIENT = 'c2c2c2c2c2c2c2c2';
  const box = tmpDir('intersync-placed-');
  const logs = tmpDir('intersync-placed-logs-');
  mkdirSync(join(box.path, 'd'));
  writeFileSync(join(box.path, 'd/f'), 'f before\n');
  const node = await startNode(box.path, logs.path, {
    listen: { host: '127.0.0.1', port: 0, tokenScope: 'fileset', leaseMs: 30_000, retainRecords: 1_000_000 },
  });
  t.after(async () => {
    await node.stop();
    box.cleanup();
    logs.cleanup();
  });
  const base = `http://127.0.0.1:${node.server!.address().port}`;
  const credential = await enrolNode(base, box.path, CLIENT);
  await settle(node);
  const dir = node.db.objectByPath('d')!;
  const f = node.db.objectByPath('d/f')!;
  renameSync(join(box.path, 'd'), join(box.path, 'e'));
  mkdirSync(join(box.path, 'd'));
  await settle(node);
  assert.notEqual(node.db.objectByPath('d')?.fid, dir.fid, 'd is another directory now');
  const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
  const x = Buffer.from('x from the client\n');
  const f2 = Buffer.from('f after\n');
  const common = { newPath: null, target: null, mode: 0o644, uid: 0, gid: 0, mtimeMs: Date.now(), origin: CLIENT, time: Date.now() };
  const body = Buffer.concat([
    helloFrame({ uuid: node.db.meta.uuid, node: CLIENT }),
    encodeFrame('record', { r: { ...common, seq: '1', kind: 'create', fid: `${CLIENT}-1`, path: 'd/x', preVersion: formatTid(0n), size: x.length, hash: sha(x), parent: dir.fid } }, x),
    encodeFrame('record', { r: { ...common, seq: '2', kind: 'write', fid: f.fid, path: 'd/f', preVersion: formatTid(f.version), size: f2.length, hash: sha(f2) } }, f2),
    encodeFrame('record', { r: { ...common, seq: '3', kind: 'link', fid: `${CLIENT}-2`, path: 'd/l', target: 'd/f', targetFid: f.fid, preVersion: formatTid(0n), size: f2.length, hash: sha(f2), parent: dir.fid } }),
    encodeFrame('end'),
  ]);
  const res = await request(`${base}/v1/filesets/${node.db.meta.uuid}/reint?node=${CLIENT}`, {
    method: 'POST', headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/octet-stream' }, body,
  });
  const answer = await res.body.json() as { results: Array<{ seq: string; status: string; error?: unknown }> };
  assert.equal(res.statusCode, 200, JSON.stringify(answer));
  assert.deepEqual(answer.results.map((r) => r.status), ['accepted', 'accepted', 'accepted'], JSON.stringify(answer));
  assert.equal(readFileSync(join(box.path, 'e/x'), 'utf8'), 'x from the client\n', 'x went into the client\'s directory, now e');
  assert.equal(existsSync(join(box.path, 'd/x')), false, 'not into the directory that took the name d');
  assert.equal(readFileSync(join(box.path, 'e/f'), 'utf8'), 'f after\n', 'the write went to f where it is');
  assert.equal(statSync(join(box.path, 'e/l')).ino, statSync(join(box.path, 'e/f')).ino, 'the link is a name of f, where f is');
  const kml = node.db.readKml(0n as RecordDraft['preVersion'], 1000);
  assert.equal(kml.find((r) => r.fid === `${CLIENT}-1`)?.parent, dir.fid, 'the KML says which directory the name is in');
});

test('a directory moved over an empty one off line, while the server put a file in that empty one: both directories live on, nothing resyncs', { timeout: 120_000 }, async (t) => {
  // Fails without the fix (the conflict step's removedParent; chaos seeds 9201, 9203, 9206): the client's
  // `mv x d` over the empty d is "rmdir d" and "rename x -> d". The server's d/new went into the client's x
  // (it had the name d there), and the server refused the client's rmdir for ever ("directory is not empty
  // here"): a resync.
  const farm = await offlineThenServer(t, (s) => {
    mkdirSync(join(s, 'x'));
    writeFileSync(join(s, 'x/mine'), 'in x\n');
    mkdirSync(join(s, 'd'));
  }, async (c) => {
    renameSync(join(c, 'x'), join(c, 'd')); // over the empty directory d
    await eventually('the client journals the move over d', () => journalState(c).lml, (n) => n >= 2);
  }, (s) => writeFileSync(join(s, 'd/new'), 'made on the server in d\n'));
  for (const d of farm.all) {
    const all = treeFiles(d);
    assert.equal(all.get('d/new'), 'made on the server in d\n', `${d}: the server's d/new in d`);
    const mine = [...all].filter(([, v]) => v === 'in x\n').map(([k]) => k);
    assert.equal(mine.length, 1, `${d}: x's file once (${JSON.stringify(mine)})`);
    assert.match(mine[0]!, /^d\.conflict-[0-9a-f]{16}-[0-9a-f]+\/mine$/, `${d}: the client's x, kept beside d`);
  }
});

test('a directory moved and then removed off line, while the server put a file in it: it comes back, at the name the move gave it, nothing resyncs', { timeout: 120_000 }, async (t) => {
  // Fails without the fix (the conflict step's parentStep drops the removal alone, not the move before it): the
  // directory came back at e with its pending move d -> e dropped too, so the client held it at e and the
  // server at d, with nothing pending: "state differs", a resync. Update beats delete: the removal loses, the
  // move stands.
  const farm = await offlineThenServer(t, (s) => mkdirSync(join(s, 'd')), async (c) => {
    renameSync(join(c, 'd'), join(c, 'e'));
    await eventually('the client journals the move', () => journalState(c).lml, (n) => n >= 1);
    rmdirSync(join(c, 'e'));
    await eventually('the client journals the removal', () => journalState(c).lml, (n) => n >= 2);
  }, (s) => writeFileSync(join(s, 'd/new'), 'made on the server in d\n'));
  for (const d of farm.all) {
    assert.equal(treeFiles(d).get('e/new'), 'made on the server in d\n', `${d}: e/new`);
    assert.equal(existsSync(join(d, 'd')), false, `${d}: no d`);
  }
});

test('a file renamed on a client off line while the server wrote it: the rename and the write both survive, no resync', { timeout: 120_000 }, async (t) => {
  // Fails without placedHere's ownNames (found by test/names-matrix.ts): the client placed the server's write
  // at its own name of the file (d/b), so the conflict step met no move to redo, dropped the pending rename,
  // and the client kept d/b while the server kept d/a: "state differs", a resync.
  const farm = await offlineThenServer(t, (s) => {
    mkdirSync(join(s, 'd'));
    writeFileSync(join(s, 'd/a'), 'a before\n');
  }, async (c) => {
    renameSync(join(c, 'd/a'), join(c, 'd/b'));
    await eventually('the client journals the rename', () => journalState(c).lml, (n) => n >= 1);
  }, (s) => writeFileSync(join(s, 'd/a'), 'server wrote a\n'));
  for (const d of farm.all) assert.deepEqual([...treeFiles(d)], [['d/b', 'server wrote a\n']], `${d}: the server's write at the client's name`);
});
