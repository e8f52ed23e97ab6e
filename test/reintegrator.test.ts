// Invariant: a local change the server refuses is never sent the same way for ever when the LML optimiser
// can rewrite it; after a refusal the optimiser looks at the LML again (records that blocked a fold may be
// gone or folded themselves by then). Nothing a bug or a refusal leaves in the LML stops reintegration.
import assert from 'node:assert/strict';
import { existsSync, linkSync, lstatSync, mkdirSync, renameSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import Database from 'better-sqlite3';
import pino from 'pino';
import { BlockMapCache } from '#fsio/blocks.js';
import { systemClock } from '#core/clock.js';
import { IntersyncError } from '#core/errors.js';
import { makeFid, NO_VERSION, asTid, type Fid, type NodeId } from '#core/ids.js';
import type { KmlRecord, LmlRecord, RecordDraft } from '#core/record.js';
import { FilesetDb, type StatIdentity } from '#journal/fileset-db.js';
import { mkfs } from '#journal/mkfs.js';
import { readFrames } from '#net/protocol/frames.js';
import type { PeerClient, ReintResult } from '#net/peer-client.js';
import { toWire } from '#net/protocol/wire-errors.js';
import { parseWireLml, recordToWire } from '#net/protocol/wire-record.js';
import { Reintegrator } from '#reint/reintegrator.js';
import { sleep, tmpDir } from './helpers.js';

interface Local {
  readonly root: string;
  readonly dbFile: string;
  readonly db: FilesetDb;
  readonly node: NodeId;
}

/** A client fileset in a temp directory, closed and removed when the test ends. */
function fileset(t: TestContext): Local {
  const dir = tmpDir('intersync-reint-');
  const made = mkfs(dir.path, { fileset: 'default', force: false, clock: systemClock });
  const db = FilesetDb.open(made.paths.db);
  t.after(() => {
    db.close();
    dir.cleanup();
  });
  return { root: dir.path, dbFile: made.paths.db, db, node: made.nodeId };
}

type Answer = ReintResult['results'][number];

/**
 * Run a Reintegrator against a fake server whose `answer` decides each record it is sent (an answer other than
 * accepted stops the batch there, as the server does; `accept` gives the next TID). Runs until the LML is
 * empty, a resync is asked for, or 5-10 s passed; returns how many resyncs were asked for.
 */
async function reintegrate(l: Local, answer: (r: LmlRecord, accept: () => Answer) => Answer, rounds = 200, onStuck?: (reint: Reintegrator) => void): Promise<number> {
  let tid = 100n;
  const server = {
    async reint(_node: string, body: Buffer): Promise<ReintResult> {
      const results: Answer[] = [];
      for await (const fr of readFrames((async function* () {
        yield body;
      })())) {
        if (fr.type !== 'record') continue;
        const r = parseWireLml(fr.header.r);
        const a = answer(r, () => {
          tid += 1n;
          return { seq: r.seq.toString(), status: 'accepted', r: recordToWire({ ...r, tid: asTid(tid), postVersion: asTid(tid), digest: '0'.repeat(64), originSeq: r.seq }) };
        });
        results.push(a);
        if (a.status !== 'accepted') break;
      }
      // Its journal holds nothing this node lacks: a refused change waits for no record (only for time).
      return { results, lastTid: '0x0000000000000000' };
    },
    async token(): Promise<{ granted: boolean }> {
      return { granted: true };
    },
  };
  let stuck = 0;
  const reint = new Reintegrator({
    db: l.db, client: server as unknown as PeerClient, root: l.root, node: l.node, serverNode: () => 'ffffffffffffffff', log: pino({ level: process.env.RLOG ?? 'silent' }),
    clock: systemClock, debug: 0, scopeMode: () => 'fileset', leaseMs: () => 30_000, blockMaps: new BlockMapCache(),
    onStuck: () => {
      stuck++;
      onStuck?.(reint);
    },
  });
  const running = reint.run();
  try {
    for (let i = 0; i < rounds && l.db.lmlCount() > 0 && stuck === 0; i++) await sleep(25);
  } finally {
    reint.stop();
    await running;
  }
  return stuck;
}

/** The server's answer refusing `r` as it sends it (with the reason a program acts on, when there is one). */
const refusal = (r: LmlRecord, e: IntersyncError): Answer => ({ seq: r.seq.toString(), status: 'conflict', error: toWire(e).error });

test('a create refused at a name the server has taken ships at the name it was renamed to here, once the optimiser can fold it', { timeout: 30_000 }, async (t) => {
  const l = fileset(t);
  const { db, node } = l;
  const local = (kind: RecordDraft['kind'], fid: Fid, path: string, newPath: string | null = null): void => {
    const st = lstatSync(join(l.root, newPath ?? path), { bigint: true });
    const draft: RecordDraft = {
      kind, fid, path, newPath, target: null, preVersion: NO_VERSION, mode: 0o644, uid: 0, gid: 0,
      mtimeMs: Number(st.mtimeMs), size: kind === 'create' ? Number(st.size) : null, hash: null, origin: node, time: Date.now(),
    };
    db.commitLocal([{ draft: kind === 'create' ? { ...draft, hash: null } : draft, identity: null }]);
  };
  // Journaled here: F made at "a"; G made at "b", then moved to "c"; F moved to "b". The server has its own
  // object at "a" by now. G's records use "b" between F's create and F's rename, so the first look cannot fold
  // F's two records; once G's are folded into one create at "c", F's can: one create at "b".
  const f = makeFid(node, 1n);
  const g = makeFid(node, 2n);
  writeFileSync(join(l.root, 'a'), 'F');
  local('create', f, 'a');
  writeFileSync(join(l.root, 'b'), 'G');
  local('create', g, 'b');
  renameSync(join(l.root, 'b'), join(l.root, 'c'));
  local('rename', g, 'b', 'c');
  renameSync(join(l.root, 'a'), join(l.root, 'b'));
  local('rename', f, 'a', 'b');

  // The server: every record at "a" is refused (the name is taken there); the others are accepted.
  const got: string[] = [];
  const stuck = await reintegrate(l, (r, accept) => {
    const names = [r.path, ...(r.newPath === null ? [] : [r.newPath])];
    if (names.includes('a')) {
      got.push(`refused ${r.kind} ${names.join(' -> ')}`);
      return refusal(r, IntersyncError.CONFLICT('a', 'the name is taken'));
    }
    got.push(`${r.kind} ${names.join(' -> ')}`);
    return accept();
  });
  assert.equal(stuck, 0, `no resync asked for; the server saw: ${got.join('; ')}`);
  assert.equal(db.lmlCount(), 0, `everything reintegrated; the server saw: ${got.join('; ')}`);
  assert.equal(got[0], 'refused create a', 'the first try sent the create at "a"');
  assert.ok(got.includes('create b'), `F shipped as one create at "b": ${got.join('; ')}`);
});

test('a hard link the server keeps refusing for its target (not a file there) ships as a file of its own, with no resync', { timeout: 30_000 }, async (t) => {
  // Fails without Reintegrator#linkWithoutTarget: the link was refused three times and the client resynced;
  // the rescan journaled the same link again (chaos seed 9102 looped through 93 resyncs that way).
  const l = fileset(t);
  const { db, node } = l;
  writeFileSync(join(l.root, 't'), 'linked\n');
  linkSync(join(l.root, 't'), join(l.root, 'l'));
  const base = { newPath: null, preVersion: NO_VERSION, mode: 0o644, uid: 0, gid: 0, mtimeMs: 1000, size: 7, hash: null, origin: node, time: 1 };
  db.commitLocal([{ draft: { ...base, kind: 'create', fid: makeFid(node, 1n), path: 't', target: null }, identity: null }]);
  db.commitLocal([{ draft: { ...base, kind: 'link', fid: makeFid(node, 2n), path: 'l', target: 't' }, identity: null }]);
  const got: string[] = [];
  const stuck = await reintegrate(l, (r, accept) => {
    got.push(`${r.kind} ${r.path}`);
    return r.kind === 'link' ? refusal(r, IntersyncError.CONFLICT(r.path, `link target ${r.target ?? ''} is not a file here`, { kind: 'link-target', path: r.path })) : accept();
  }, 400);
  assert.equal(stuck, 0, `no resync asked for; the server saw: ${got.join('; ')}`);
  assert.equal(db.lmlCount(), 0, `everything reintegrated; the server saw: ${got.join('; ')}`);
  assert.equal(got.at(-1), 'create l', `l shipped as a file of its own: ${got.join('; ')}`);
});

test('a pending create that names a version (a bug elsewhere) is set right before it is sent, instead of stalling every batch', { timeout: 30_000 }, async (t) => {
  // Fails without Reintegrator#sound: the server refuses the whole batch with 400 for ever, nothing is sent.
  const l = fileset(t);
  const { db, node } = l;
  writeFileSync(join(l.root, 'a'), 'made here\n');
  const [rec] = db.commitLocal([{ draft: {
    kind: 'create', fid: makeFid(node, 1n), path: 'a', newPath: null, target: null, preVersion: NO_VERSION, mode: 0o644, uid: 0, gid: 0,
    mtimeMs: 1000, size: 10, hash: null, origin: node, time: 1,
  }, identity: null }]);
  const raw = new Database(l.dbFile);
  raw.prepare('UPDATE lml SET pre_version = ? WHERE seq = ?').run(0x32n, rec!.seq);
  raw.close();
  assert.equal(db.lmlRecord(rec!.seq)?.preVersion, asTid(0x32n), 'the record names a version');
  await reintegrate(l, (r, accept) => {
    if (r.preVersion !== NO_VERSION) throw new Error(`HTTP 400: a ${r.kind} has no pre-version`);
    return accept();
  });
  assert.equal(db.lmlCount(), 0, 'the create was accepted');
});

const SERVER = 'ffffffffffffffff' as NodeId;

/** A record of the server's, as the stream brings it: attributes shared by the tests below, `tid` its own. */
function serverRecord(r: Pick<KmlRecord, 'kind' | 'fid' | 'path'> & Partial<KmlRecord>, tid: bigint): KmlRecord {
  return {
    newPath: null, target: null, preVersion: NO_VERSION, mode: 0o644, uid: 0, gid: 0, mtimeMs: 1000, size: 19, hash: 'a'.repeat(64),
    origin: SERVER, time: 1, digest: '0'.repeat(64), originSeq: null, ...r, tid: asTid(tid), postVersion: asTid(tid),
  };
}

/** Apply the server's record here as the stream does (no disk change: the test made the disk). */
function fromServer(l: Local, r: Pick<KmlRecord, 'kind' | 'fid' | 'path'> & Partial<KmlRecord>, tid: bigint, identity: StatIdentity | null = null): void {
  l.db.commitRemote([{ record: serverRecord(r, tid), identity }], SERVER, 1);
}

/** A pending local move of `fid` from `path` to `to` (done on disk here), made against `preVersion`. */
function movedHere(l: Local, fid: Fid, path: string, to: string, preVersion: bigint): void {
  renameSync(join(l.root, path), join(l.root, to));
  const { tid: _t, postVersion: _p, digest: _d, originSeq: _o, ...draft } = serverRecord({ kind: 'rename', fid, path, newPath: to, preVersion: asTid(preVersion), origin: l.node }, 0n);
  l.db.commitLocal([{ draft, identity: null }]);
}

/** What the fake server saw of each record, and the resyncs asked for; it accepts a move only made against `want`. */
async function movesAgainst(l: Local, want: bigint): Promise<{ got: string[]; stuck: number }> {
  const got: string[] = [];
  const stuck = await reintegrate(l, (r, accept) => {
    got.push(`${r.kind} ${r.path} -> ${r.newPath ?? ''} @${r.preVersion}`);
    return r.kind !== 'rename' || r.preVersion === asTid(want) ? accept() : refusal(r, IntersyncError.CONFLICT(r.path, `made against version ${r.preVersion}, current is ${want}`));
  });
  return { got, stuck };
}

test('a pending move made against a version a later write replaced (its rebase missed) is made against the current one before it is sent', { timeout: 30_000 }, async (t) => {
  // Fails without Reintegrator#moveRebased: the server refused the move as made against an older version three
  // times, and the client resynced (chaos s49 seed 9258, c3: a move pending while the server wrote the file
  // through another name of its inode).
  const l = fileset(t);
  const fid = makeFid(SERVER, 1n);
  writeFileSync(join(l.root, 'f'), 'made on the server\n');
  fromServer(l, { kind: 'create', fid, path: 'f' }, 0x10n);
  movedHere(l, fid, 'f', 'g', 0x10n);
  // The server's write of the file, applied here with the pending move's rebase missed.
  fromServer(l, { kind: 'write', fid, path: 'g', preVersion: asTid(0x10n), hash: 'b'.repeat(64) }, 0x11n);
  assert.equal(l.db.objectByFid(fid)?.version, asTid(0x11n), 'the object holds the write\'s version');
  assert.equal(l.db.readLml(0n, 10)[0]?.preVersion, asTid(0x10n), 'the move is made against the older one');
  const { got, stuck } = await movesAgainst(l, 0x11n);
  assert.equal(stuck, 0, `no resync asked for; the server saw: ${got.join('; ')}`);
  assert.deepEqual(got, ['rename f -> g @17'], 'the move went once, made against the write\'s version');
});

test('a pending move made against a version another move replaced is sent as it is', { timeout: 30_000 }, async (t) => {
  // Guards Reintegrator#moveRebased: two moves meet, and only content changes are passed over.
  const l = fileset(t);
  const fid = makeFid(SERVER, 1n);
  writeFileSync(join(l.root, 'f'), 'made on the server\n');
  fromServer(l, { kind: 'create', fid, path: 'f' }, 0x10n);
  movedHere(l, fid, 'f', 'g', 0x10n);
  fromServer(l, { kind: 'rename', fid, path: 'g', newPath: 'h', preVersion: asTid(0x10n) }, 0x11n);
  const { got } = await movesAgainst(l, 0x10n);
  assert.deepEqual(got.map((x) => x.slice(x.indexOf('@'))), ['@16'], `sent once, against the version before the other move: ${got.join('; ')}`);
});

test('a pending move of a name the server wrote through another name of its inode, grouped apart here (its row left as it was), is made against the write\'s version', { timeout: 30_000 }, async (t) => {
  // Fails without Reintegrator#moveRebased reading the journal, not the row alone: chaos s49 seed 9252, c1 (the
  // server's writes through epsilon/e named gamma/sub/b.txt, a file of its own here; its pending move was refused
  // three times as made against 0x45, current 0x80, and the client resynced).
  const l = fileset(t);
  const c = makeFid(SERVER, 1n);
  const d = makeFid(SERVER, 2n);
  writeFileSync(join(l.root, 'c'), 'made on the server\n');
  writeFileSync(join(l.root, 'd'), 'made on the server\n');
  fromServer(l, { kind: 'create', fid: c, path: 'c' }, 0x10n);
  fromServer(l, { kind: 'create', fid: d, path: 'd' }, 0x11n);
  movedHere(l, d, 'd', 'e', 0x11n);
  // The server's write through c, which names d too (one inode there): here d's row keeps its version.
  const raw = new Database(l.dbFile);
  raw.prepare('INSERT INTO kml (tid, kind, fid, path, new_path, target, pre_version, post_version, mode, uid, gid, mtime_ms, size, hash, origin, time, digest, links) VALUES (?, \'write\', ?, \'c\', NULL, NULL, ?, ?, 420, 0, 0, 1000, 19, ?, ?, 1, ?, ?)')
    .run(0x12n, c, 0x10n, 0x12n, 'b'.repeat(64), SERVER, '0'.repeat(64), JSON.stringify([c, d]));
  raw.close();
  assert.equal(l.db.objectByFid(d)?.version, asTid(0x11n), 'd\'s row keeps its version');
  const { got, stuck } = await movesAgainst(l, 0x12n);
  assert.equal(stuck, 0, `no resync asked for; the server saw: ${got.join('; ')}`);
  assert.deepEqual(got, ['rename d -> e @18'], 'the move went once, made against the write\'s version');
});

test('a pending link whose target is gone, on an inode it shares here with a name the server knows, goes as a link to that name even when its row names an older inode', { timeout: 30_000 }, async (t) => {
  // Fails without Reintegrator#otherName reading the inode from the disk: by the row's (lagging) inode it found no
  // other name and the link went as a file of its own, one file here and two on the server, for good (chaos s49
  // seed 9245, c1: delta/c).
  const l = fileset(t);
  const g = makeFid(SERVER, 1n);
  writeFileSync(join(l.root, 'g'), 'one file\n');
  linkSync(join(l.root, 'g'), join(l.root, 'c'));
  const identity = { ino: String(lstatSync(join(l.root, 'g')).ino), mtimeNs: 1n, ctimeNs: 1n, racy: true };
  fromServer(l, { kind: 'create', fid: g, path: 'g' }, 0x10n, identity);
  // c: a link made here to b, a name removed since (b's row is gone); its row names an inode no longer on disk.
  const { tid: _t, postVersion: _p, digest: _d, originSeq: _o, ...link } = serverRecord({ kind: 'link', fid: makeFid(l.node, 1n), path: 'c', target: 'b', targetFid: makeFid(SERVER, 2n), origin: l.node }, 0n);
  l.db.commitLocal([{ draft: link, identity: { ...identity, ino: '999999999' } }]);
  const got: string[] = [];
  const stuck = await reintegrate(l, (r, accept) => {
    got.push(`${r.kind} ${r.path}${r.target === null ? '' : ` -> ${r.target}`}`);
    return accept();
  });
  assert.equal(stuck, 0);
  assert.deepEqual(got, ['link c -> g'], 'c goes as a link to g, the name of its inode here the server knows');
});

/**
 * The server's directory d and file g, here with d removed (its rmdir pending) while g stays out of it: the
 * server still holds g in d (the tests' fake server says so), until this node's move of g reaches it. Returns g.
 */
function removedDirOf(l: Local): Fid {
  const d = makeFid(SERVER, 1n);
  const g = makeFid(SERVER, 2n);
  mkdirSync(join(l.root, 'd'));
  writeFileSync(join(l.root, 'g'), 'made on the server\n');
  fromServer(l, { kind: 'mkdir', fid: d, path: 'd', size: null, hash: null }, 0x10n);
  fromServer(l, { kind: 'create', fid: g, path: 'g' }, 0x11n);
  rmdirSync(join(l.root, 'd'));
  const { tid: _t, postVersion: _p, digest: _d, originSeq: _o, ...rmdir } = serverRecord({ kind: 'rmdir', fid: d, path: 'd', preVersion: asTid(0x10n), origin: l.node, size: null, hash: null }, 0n);
  l.db.commitLocal([{ draft: rmdir, identity: null }]);
  return g;
}

test('a removal of a directory the server refuses as not empty there goes after the pending moves that take its entries out', { timeout: 30_000 }, async (t) => {
  // Fails without Reintegrator#emptiedLater: the server held g in d (placed there by another name of its era),
  // and this node's move of g out of d came after its rmdir of d in the LML: the rmdir was refused three times
  // as "directory is not empty here" and the client resynced (chaos s63 seed 9221, c2; the same refusal in
  // s58 seed 9267, s59 9277, s62 9267 and 9277).
  const l = fileset(t);
  const g = removedDirOf(l);
  movedHere(l, g, 'g', 'h', 0x11n);
  // The server: g is in d there until the move takes it out.
  let inD = true;
  const got: string[] = [];
  const stuck = await reintegrate(l, (r, accept) => {
    got.push(`${r.kind} ${r.path}`);
    if (r.kind === 'rmdir' && inD) return refusal(r, IntersyncError.CONFLICT('d', 'directory is not empty here', { kind: 'not-empty', path: 'd', holds: g }));
    if (r.kind === 'rename') inD = false;
    return accept();
  }, 400);
  assert.equal(stuck, 0, `no resync asked for; the server saw: ${got.join('; ')}`);
  assert.equal(l.db.lmlCount(), 0, `everything reintegrated; the server saw: ${got.join('; ')}`);
  assert.deepEqual(got, ['rmdir d', 'rename g', 'rmdir d'], 'the rmdir went again after the move');
});

test('a record refused three times waits some seconds from its first refusal before a resync: a move this node journals a moment later still empties the directory', { timeout: 30_000 }, async (t) => {
  // Fails without the patience before a resync (Reintegrator, REFUSAL_PATIENCE_MS): new server records woke the
  // reintegrator three times within 72 ms, each try refused "directory is not empty here", and the client
  // resynced while capture had yet to journal the conflict step's redo, the move that took the entry out
  // (chaos s65 seed 9279). Here the tries come 0.5 and 1 s apart, and the move is journaled 2.5 s after the first
  // refusal, after the third.
  const l = fileset(t);
  const g = removedDirOf(l);
  // The fake server's journal is at TID 0, as this node has seen it: a refused record waits for time, not records.
  const raw = new Database(l.dbFile);
  raw.prepare('UPDATE last_rcvd SET tid = 0').run();
  raw.close();
  let inD = true;
  let firstRefusal: number | null = null;
  const late = setInterval(() => {
    if (firstRefusal !== null && Date.now() - firstRefusal >= 2500 && existsSync(join(l.root, 'g'))) movedHere(l, g, 'g', 'h', 0x11n);
  }, 50);
  t.after(() => clearInterval(late));
  const got: string[] = [];
  const stuck = await reintegrate(l, (r, accept) => {
    got.push(`${r.kind} ${r.path}`);
    if (r.kind === 'rmdir' && inD) {
      firstRefusal ??= Date.now();
      return refusal(r, IntersyncError.CONFLICT('d', 'directory is not empty here', { kind: 'not-empty', path: 'd', holds: g }));
    }
    if (r.kind === 'rename') inD = false;
    return accept();
  }, 400);
  assert.equal(stuck, 0, `no resync asked for; the server saw: ${got.join('; ')}`);
  assert.equal(l.db.lmlCount(), 0, `everything reintegrated; the server saw: ${got.join('; ')}`);
  assert.deepEqual(got.slice(-2), ['rename g', 'rmdir d'], `the rmdir went after the move: ${got.join('; ')}`);
});

test('a client that asked for a resync stays stuck in its status while the resync has nothing pending', { timeout: 30_000 }, async (t) => {
  // Fails without Reintegrator#status keeping stuckSince while its resync runs: the resync drops the refused
  // change (its content put back beside, journaled again a moment later), the LML is empty for that moment, and
  // the status published then said "lag 0" for a client stuck for good (CI, test/status-stuck.test.ts).
  const l = fileset(t);
  removedDirOf(l);
  const raw = new Database(l.dbFile);
  raw.prepare('UPDATE last_rcvd SET tid = 0').run();
  raw.close();
  let before: number | null | undefined;
  let during: number | null | undefined;
  const stuck = await reintegrate(l, (r, accept) => {
    if (r.kind === 'rmdir') return refusal(r, IntersyncError.CONFLICT('d', 'the server cannot take it (immutable there)'));
    return accept();
  }, 400, (reint) => {
    before = reint.status().stuckSince;
    for (const r of l.db.readLml(0n, 100)) l.db.dropLocal(r.fid); // what the resync does with the refused change
    during = reint.status().stuckSince;
  });
  assert.equal(stuck, 1, 'a resync asked for');
  assert.equal(typeof before, 'number', 'stuck when it asked for the resync');
  assert.equal(during, before, 'still stuck, since the same time, while the resync runs with nothing pending');
});
