// Invariant: the conflict step never puts a saved local content back over a local write made after it saved
// that content (between its step and the redo, while the server's record applied): the newer write stays at
// the name, and the saved content goes beside it. Nothing is lost.
//
// From chaos s66 seed 9303, c1: an append through delta/c was pending when the server's chmod of it came; the
// conflict step saved the file ("merged: local content, server attributes"), and c1 wrote delta/c in place a
// moment later; the redo then copied the saved (older) content over it, and capture journaled that: the in-place
// write was on no node.
//
// Fails without the conflict step's putBack's check of what the name holds: the file held the saved content, the
// later write was gone.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { ApplyPath, type ContentSource } from '#apply/apply-path.js';
import { blockMapOf, type BlockMap } from '#fsio/blocks.js';
import { systemClock } from '#core/clock.js';
import { NO_VERSION, asTid, makeFid, type NodeId } from '#core/ids.js';
import type { KmlRecord } from '#core/record.js';
import { sha256Hex } from '#core/sha256.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { mkfs } from '#journal/mkfs.js';
import { EchoGuard } from '#fsio/echo-guard.js';
import { lstatOrNull } from '#fsio/disk.js';
import { ConflictResolver } from '#reint/conflict-resolver.js';
import { tmpDir } from './helpers.js';

const SERVER = 'ffffffffffffffff' as NodeId;

/** A content source serving one file's bytes (the server's content of the object). */
function sourceOf(file: string): ContentSource {
  return {
    blockMap: () => blockMapOf(file),
    async *blocks(_d, map: BlockMap, indexes) {
      const fh = await open(file, 'r');
      try {
        for (const i of indexes) {
          const buf = Buffer.alloc(Math.min(map.blockSize, map.size - i * map.blockSize));
          await fh.read(buf, 0, buf.length, i * map.blockSize);
          yield buf;
        }
      } finally {
        await fh.close();
      }
    },
  };
}

test('a write landing between the conflict step and its redo stays; the saved content goes beside it', async (t) => {
  const dir = tmpDir('intersync-redo-window-');
  const made = mkfs(dir.path, { fileset: 'default', force: false, clock: systemClock });
  const db = FilesetDb.open(made.paths.db);
  const log = pino({ level: 'silent' });
  const guard = new EchoGuard();
  const apply = new ApplyPath({ root: dir.path, tmpDir: made.paths.tmp, db, guard, log });
  t.after(async () => {
    await apply.releaseThread();
    db.close();
    dir.cleanup();
  });
  const root = dir.path;
  const fid = makeFid(SERVER, 1n);
  const base = 'made on the server\n';
  writeFileSync(join(root, 'f'), base);
  const st = lstatOrNull(join(root, 'f'))!;
  const rec = (r: Partial<KmlRecord> & Pick<KmlRecord, 'kind'>, tid: bigint): KmlRecord => ({
    fid, path: 'f', newPath: null, target: null, preVersion: NO_VERSION, mode: 0o644, uid: 0, gid: 0, mtimeMs: 1000,
    size: base.length, hash: sha256Hex(Buffer.from(base)), origin: SERVER, time: 1, digest: '0'.repeat(64), originSeq: null,
    ...r, tid: asTid(tid), postVersion: asTid(tid),
  });
  db.commitRemote([{ record: rec({ kind: 'create' }, 0x10n), identity: { ino: st.ino, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, racy: false } }], SERVER, 1);
  // Pending here: an append.
  const mine = `${base}appended here\n`;
  writeFileSync(join(root, 'f'), mine);
  db.commitLocal([{ draft: { ...rec({ kind: 'write', preVersion: asTid(0x10n), size: mine.length, hash: sha256Hex(Buffer.from(mine)), origin: db.meta.nodeId }, 0n) }, identity: null }]);
  // The server's chmod of f meets it: the conflict step saves the local content, the record applies, then the redo.
  const serverCopy = join(made.paths.tmp, 'server-f');
  writeFileSync(serverCopy, base);
  const resolver = new ConflictResolver({
    db, apply, guard, source: sourceOf(serverCopy), root, conflictsDir: join(root, '.intermezzo/default/conflicts'), node: db.meta.nodeId,
    serverNode: () => SERVER, policy: () => ({ name: 'keep-both', discard: false }), hook: () => null, log, clock: systemClock,
  });
  const r = rec({ kind: 'setattr', preVersion: asTid(0x10n), mode: 0o640 }, 0x11n);
  const steps = await resolver.prepare(r, r);
  assert.ok(Array.isArray(steps) && steps.length > 0, 'the conflict step asks for a redo');
  apply.apply(r, null, (identity) => db.commitRemote([{ record: r, identity }], SERVER, 1));
  // A program writes f in place now, before the redo.
  const later = `${mine}written a moment later\n`;
  writeFileSync(join(root, 'f'), later);
  for (const step of steps) step();
  resolver.rescue();
  const files = readdirSync(root).filter((n) => !n.startsWith('.')).sort();
  const contents = files.map((n) => readFileSync(join(root, n), 'utf8'));
  assert.equal(readFileSync(join(root, 'f'), 'utf8'), later, `f keeps the later write (${JSON.stringify(files)})`);
  assert.ok(contents.includes(mine), `the saved content is kept beside: ${JSON.stringify(files)}`);
});
