// Invariant: a peer's change that was in flight when the daemon died (noted, maybe on disk, not yet
// journaled) is journaled at the next start as the peer's record if it reached the disk, and dropped
// (for the peer to resend) if it did not: never lost, never mistaken for a local change.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { FilesetDb } from '#journal/fileset-db.js';
import { lmlToWire } from '#net/protocol/wire-record.js';
import type { Fid, NodeId, Tid } from '#core/ids.js';
import type { LmlRecord } from '#core/record.js';
import { records, settle, startNode, tmpDir } from './helpers.js';

const CLIENT = 'c1c1c1c1c1c1c1c1' as NodeId;
const listen = { host: '127.0.0.1', port: 0, tokenScope: 'fileset' as const, leaseMs: 30_000, retainRecords: 1_000_000 };

function draft(seq: number, path: string, content: string): LmlRecord {
  return {
    seq: BigInt(seq), kind: 'create', fid: `${CLIENT}-${seq}` as Fid, path, newPath: null, target: null, preVersion: 0n as Tid,
    mode: 0o644, uid: 0, gid: 0, mtimeMs: Date.now(), size: Buffer.byteLength(content),
    hash: createHash('sha256').update(content).digest('hex'), origin: CLIENT, time: Date.now(),
  };
}

test('crash points of the apply path: after the note and the disk change; after the note only', async (t) => {
  const dir = tmpDir();
  const logs = tmpDir('intersync-logs-');
  t.after(() => {
    dir.cleanup();
    logs.cleanup();
  });
  let node = await startNode(dir.path, logs.path, { listen });
  const db = node.paths.db;
  await node.stop();

  // Crash point 1: noted, renamed into place, not journaled. Crash point 2: noted only.
  const raw = FilesetDb.open(db);
  const reached = draft(1, 'reached.txt', 'on disk');
  const missed = draft(2, 'missed.txt', 'never written');
  raw.markInflight(JSON.stringify({ via: 'reint', r: lmlToWire(reached) }));
  raw.markInflight(JSON.stringify({ via: 'reint', r: lmlToWire(missed) }));
  raw.close();
  // As the apply path leaves it: content, mode and mtime set on the temp file before the rename.
  writeFileSync(join(dir.path, 'reached.txt'), 'on disk', { mode: 0o644 });
  utimesSync(join(dir.path, 'reached.txt'), reached.mtimeMs / 1000, reached.mtimeMs / 1000);

  node = await startNode(dir.path, logs.path, { listen });
  t.after(() => node.stop());
  await settle(node);
  const recs = records(node);
  assert.deepEqual(recs.map((r) => [r.kind, r.path, r.origin, r.originSeq]), [['create', 'reached.txt', CLIENT, 1n]],
    'the change that reached the disk is journaled as the client\'s, once, and not as a local create');
  assert.deepEqual(node.db.inflight(), []);
  assert.equal(node.db.kmlByOrigin(CLIENT, 2n), undefined, 'the one that did not reach the disk is left for the client to resend');
});
