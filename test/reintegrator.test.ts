// Invariant: a local change the server refuses is never sent the same way for ever when the LML optimiser
// can rewrite it; after a refusal the optimiser looks at the LML again (records that blocked a fold may be
// gone or folded themselves by then).
import assert from 'node:assert/strict';
import { linkSync, lstatSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import pino from 'pino';
import { BlockMapCache } from '#apply/blocks.js';
import { systemClock } from '#core/clock.js';
import { makeFid, NO_VERSION, asTid, type Fid } from '#core/ids.js';
import type { RecordDraft } from '#core/record.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { mkfs } from '#journal/mkfs.js';
import { readFrames } from '#net/protocol/frames.js';
import type { PeerClient, ReintResult } from '#net/peer-client.js';
import { parseWireLml, recordToWire } from '#net/protocol/wire-record.js';
import { Reintegrator } from '#reint/reintegrator.js';
import { sleep, tmpDir } from './helpers.js';

test('a create refused at a name the server has taken ships at the name it was renamed to here, once the optimiser can fold it', { timeout: 30_000 }, async (t) => {
  const dir = tmpDir('intersync-reint-');
  const made = mkfs(dir.path, { fileset: 'default', force: false, clock: systemClock });
  const db = FilesetDb.open(made.paths.db);
  t.after(() => {
    db.close();
    dir.cleanup();
  });
  const node = made.nodeId;
  const local = (kind: RecordDraft['kind'], fid: Fid, path: string, newPath: string | null = null): void => {
    const st = lstatSync(join(dir.path, newPath ?? path), { bigint: true });
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
  writeFileSync(join(dir.path, 'a'), 'F');
  local('create', f, 'a');
  writeFileSync(join(dir.path, 'b'), 'G');
  local('create', g, 'b');
  renameSync(join(dir.path, 'b'), join(dir.path, 'c'));
  local('rename', g, 'b', 'c');
  renameSync(join(dir.path, 'a'), join(dir.path, 'b'));
  local('rename', f, 'a', 'b');

  // The server: every record at "a" is refused (the name is taken there); the others are accepted.
  const got: string[] = [];
  let tid = 100n; // TIDs of accepted records
  const server = {
    async reint(_node: string, body: Buffer): Promise<ReintResult> {
      const results: Array<ReintResult['results'][number]> = [];
      for await (const fr of readFrames((async function* () {
        yield body;
      })())) {
        if (fr.type !== 'record') continue;
        const r = parseWireLml(fr.header.r);
        const names = [r.path, ...(r.newPath === null ? [] : [r.newPath])];
        if (names.includes('a')) {
          got.push(`refused ${r.kind} ${names.join(' -> ')}`);
          results.push({ seq: r.seq.toString(), status: 'conflict', error: { code: 'CONFLICT', message: 'conflict on a: the name is taken' } });
          break;
        }
        got.push(`${r.kind} ${names.join(' -> ')}`);
        tid += 1n;
        const k = { ...r, tid: asTid(tid), postVersion: asTid(tid), digest: '0'.repeat(64), originSeq: r.seq, origin: node };
        results.push({ seq: r.seq.toString(), status: 'accepted', r: recordToWire(k) });
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
    db, client: server as unknown as PeerClient, root: dir.path, node, serverNode: () => 'ffffffffffffffff', log: pino({ level: 'silent' }),
    clock: systemClock, debug: 0, scopeMode: () => 'fileset', leaseMs: () => 30_000, blockMaps: new BlockMapCache(),
    onStuck: () => {
      stuck++;
    },
  });
  const running = reint.run();
  try {
    for (let i = 0; i < 200 && db.lmlCount() > 0 && stuck === 0; i++) await sleep(25);
  } finally {
    reint.stop();
    await running;
  }
  assert.equal(stuck, 0, `no resync asked for; the server saw: ${got.join('; ')}`);
  assert.equal(db.lmlCount(), 0, `everything reintegrated; the server saw: ${got.join('; ')}`);
  assert.equal(got[0], 'refused create a', 'the first try sent the create at "a"');
  assert.ok(got.includes('create b'), `F shipped as one create at "b": ${got.join('; ')}`);
});

test('a hard link the server keeps refusing for its target (not a file there) ships as a file of its own, with no resync', { timeout: 30_000 }, async (t) => {
  // Fails without Reintegrator#linkWithoutTarget: the link was refused three times and the client resynced;
  // the rescan journaled the same link again (chaos seed 9102 looped through 93 resyncs that way).
  const dir = tmpDir('intersync-reint-');
  const made = mkfs(dir.path, { fileset: 'default', force: false, clock: systemClock });
  const db = FilesetDb.open(made.paths.db);
  t.after(() => {
    db.close();
    dir.cleanup();
  });
  const node = made.nodeId;
  writeFileSync(join(dir.path, 't'), 'linked\n');
  linkSync(join(dir.path, 't'), join(dir.path, 'l'));
  const base = { newPath: null, preVersion: NO_VERSION, mode: 0o644, uid: 0, gid: 0, mtimeMs: 1000, size: 7, hash: null, origin: node, time: 1 };
  db.commitLocal([{ draft: { ...base, kind: 'create', fid: makeFid(node, 1n), path: 't', target: null }, identity: null }]);
  db.commitLocal([{ draft: { ...base, kind: 'link', fid: makeFid(node, 2n), path: 'l', target: 't' }, identity: null }]);
  const got: string[] = [];
  let tid = 100n;
  const server = {
    async reint(_node: string, body: Buffer): Promise<ReintResult> {
      const results: Array<ReintResult['results'][number]> = [];
      for await (const fr of readFrames((async function* () {
        yield body;
      })())) {
        if (fr.type !== 'record') continue;
        const r = parseWireLml(fr.header.r);
        got.push(`${r.kind} ${r.path}`);
        if (r.kind === 'link') {
          results.push({ seq: r.seq.toString(), status: 'conflict', error: { code: 'CONFLICT', message: `conflict on ${r.path}: link target ${r.target ?? ''} is not a file here` } });
          break;
        }
        tid += 1n;
        results.push({ seq: r.seq.toString(), status: 'accepted', r: recordToWire({ ...r, tid: asTid(tid), postVersion: asTid(tid), digest: '0'.repeat(64), originSeq: r.seq }) });
      }
      return { results, lastTid: '0x0000000000000000' };
    },
    async token(): Promise<{ granted: boolean }> {
      return { granted: true };
    },
  };
  let stuck = 0;
  const reint = new Reintegrator({
    db, client: server as unknown as PeerClient, root: dir.path, node, serverNode: () => 'ffffffffffffffff', log: pino({ level: 'silent' }),
    clock: systemClock, debug: 0, scopeMode: () => 'fileset', leaseMs: () => 30_000, blockMaps: new BlockMapCache(),
    onStuck: () => {
      stuck++;
    },
  });
  const running = reint.run();
  try {
    for (let i = 0; i < 400 && db.lmlCount() > 0 && stuck === 0; i++) await sleep(25);
  } finally {
    reint.stop();
    await running;
  }
  assert.equal(stuck, 0, `no resync asked for; the server saw: ${got.join('; ')}`);
  assert.equal(db.lmlCount(), 0, `everything reintegrated; the server saw: ${got.join('; ')}`);
  assert.equal(got.at(-1), 'create l', `l shipped as a file of its own: ${got.join('; ')}`);
});

test('a pending create that names a version (a bug elsewhere) is set right before it is sent, instead of stalling every batch', { timeout: 30_000 }, async (t) => {
  // Fails without Reintegrator#sound: the server refuses the whole batch with 400 for ever, nothing is sent.
  const dir = tmpDir('intersync-reint-');
  const made = mkfs(dir.path, { fileset: 'default', force: false, clock: systemClock });
  const db = FilesetDb.open(made.paths.db);
  t.after(() => {
    db.close();
    dir.cleanup();
  });
  const node = made.nodeId;
  writeFileSync(join(dir.path, 'a'), 'made here\n');
  const [rec] = db.commitLocal([{ draft: {
    kind: 'create', fid: makeFid(node, 1n), path: 'a', newPath: null, target: null, preVersion: NO_VERSION, mode: 0o644, uid: 0, gid: 0,
    mtimeMs: 1000, size: 10, hash: null, origin: node, time: 1,
  }, identity: null }]);
  const raw = new Database(made.paths.db);
  raw.prepare('UPDATE lml SET pre_version = ? WHERE seq = ?').run(0x32n, rec!.seq);
  raw.close();
  assert.equal(db.lmlRecord(rec!.seq)?.preVersion, asTid(0x32n), 'the record names a version');
  let tid = 100n;
  const server = {
    async reint(_node: string, body: Buffer): Promise<ReintResult> {
      const results: Array<ReintResult['results'][number]> = [];
      for await (const fr of readFrames((async function* () {
        yield body;
      })())) {
        if (fr.type !== 'record') continue;
        const r = parseWireLml(fr.header.r);
        if (r.preVersion !== NO_VERSION) throw new Error(`HTTP 400: a ${r.kind} has no pre-version`);
        tid += 1n;
        results.push({ seq: r.seq.toString(), status: 'accepted', r: recordToWire({ ...r, tid: asTid(tid), postVersion: asTid(tid), digest: '0'.repeat(64), originSeq: r.seq }) });
      }
      return { results, lastTid: '0x0000000000000000' };
    },
    async token(): Promise<{ granted: boolean }> {
      return { granted: true };
    },
  };
  const reint = new Reintegrator({
    db, client: server as unknown as PeerClient, root: dir.path, node, serverNode: () => 'ffffffffffffffff', log: pino({ level: 'silent' }),
    clock: systemClock, debug: 0, scopeMode: () => 'fileset', leaseMs: () => 30_000, blockMaps: new BlockMapCache(), onStuck: () => undefined,
  });
  const running = reint.run();
  try {
    for (let i = 0; i < 200 && db.lmlCount() > 0; i++) await sleep(25);
  } finally {
    reint.stop();
    await running;
  }
  assert.equal(db.lmlCount(), 0, 'the create was accepted');
});
