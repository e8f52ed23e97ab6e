import { chmodSync, renameSync, rmSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { NO_VERSION, ROOT_FID, formatTid, type NodeId, type Tid } from '#core/ids.js';
import { baseName, joinRel, parentOf } from '#core/paths.js';
import type { LmlRecord, RecordDraft } from '#core/record.js';
import { lstatOrNull } from '#fsio/disk.js';
import { attrsRecord, restoreBase } from './conflict-base.js';
import { decideConflict, record } from './conflict-decide.js';
import { conflictPath, dirOnDisk, removeHeld } from './conflict-disk.js';
import { parentStep } from './conflict-parents.js';
import type { ResolverState } from './conflict-state.js';

/**
 * A pending removal of a file that the server refuses, this node holding all its records: made against an
 * older version of the object, and the name is its inode's last there (the removal of one name of an inode
 * that keeps others is taken whatever changed its content, ApplyPath#baseOf). No server record will meet it:
 * the content changed through another name of the inode (whose removal the server then applied here too),
 * which the step for that record did not see as a conflict, a removal of one name meeting nothing then.
 * Update beats delete, as for a removal meeting a change of its own name: the removal is dropped and the
 * server's content comes back at the name, or beside it when another object holds the name here (the
 * removal becomes the move of the server's object there, so a pending move of the other object onto the
 * name still ships after it), an open keep-both conflict. Unless the policy has the local side win: the
 * removal is then made against the server's version, knowingly. Returns whether it settled the refusal.
 * Before, the client gave the removal the version of the change through the other name, and the server took
 * it after its own removal of that name: the change was destroyed on every node (chaos seed 9206).
 */
export async function restoreRemoved(s: ResolverState, x: LmlRecord, current: Tid): Promise<boolean> {
  const db = s.d.db;
  // A file's removal only (a symlink's names its target): content is what a file removed unseen loses.
  if (x.kind !== 'unlink' || x.target !== null || db.objectByFid(x.fid) !== undefined) return false;
  // The server's attributes of the object: those of the record that gave it its version (this node holds it),
  // the change the removal meets; a move says none (chaos s76 seed 9244: the mode of a move's record came back).
  const last = attrsRecord(s, x.fid, current);
  // The name at this node's names now: its directory may have moved here since, the move pending after the
  // removal (x.path is the server's name, the removal's era). Before, the step looked for the old directory,
  // gave up, and the client resynced (chaos s70 seed 9242, c1: `rm beta/deep/d.md; mv beta/deep alpha/sub`).
  const here = db.nameAfter(x.path, x.seq);
  // Its directory removed here too (`rm x/d; rmdir x`, the removals pending): the directory comes back first, as
  // it does for a server record that needs it (parentStep), its removal losing with the file's. Before, the step
  // gave up, the removal was refused three times, and the client resynced (chaos s53 seed 9242, c1;
  // test/long/removed-link-last.test.ts).
  if (!dirOnDisk(s, parentOf(here))) {
    await parentStep(s, { ...x, kind: 'create', newPath: null, target: null, preVersion: NO_VERSION, tid: current, postVersion: current, digest: '0'.repeat(64), originSeq: null, origin: last?.origin ?? (s.d.serverNode() as NodeId) });
    if (!dirOnDisk(s, parentOf(here))) return false;
  }
  const attrs = last !== undefined ? { mode: last.mode, uid: last.uid, gid: last.gid, mtimeMs: last.mtimeMs } : { mode: x.mode, uid: x.uid, gid: x.gid, mtimeMs: x.mtimeMs };
  const r = { tid: current, origin: last?.origin ?? (s.d.serverNode() as NodeId) };
  const decision = decideConflict(s, { origin: r.origin, mtimeMs: attrs.mtimeMs }, x.path, 'unlink/write', undefined);
  if (decision === 'local') {
    db.setLmlPreVersion(x.seq, current);
    record(s, r, x.path, 'unlink/write', decision, null, 'resolved', 'removed again: the removal goes on the server\'s version');
    s.d.log.warn({ path: x.path, tid: formatTid(current) }, 'conflict: a removal here met a newer version on the server; the policy has it removed');
    return true;
  }
  const base: RecordDraft = s.d.apply.localize({ ...x, ...attrs, path: here, kind: 'write', newPath: null, target: null, hash: null, size: null, preVersion: current });
  const { staged, placeholder } = await s.d.apply.stageCurrent(base, s.d.source);
  if (placeholder) {
    // The server holds no content at the object's name now (moved or removed, not journaled yet): its records
    // say what became of it.
    rmSync(staged.file, { force: true });
    return false;
  }
  const taken = db.objectByPath(here) !== undefined || lstatOrNull(join(s.d.root, here)) !== null;
  const at = taken ? conflictPath(s, here, current) : here;
  s.d.guard.hold(at);
  try {
    chmodSync(staged.file, base.mode);
    utimesSync(staged.file, base.mtimeMs / 1000, base.mtimeMs / 1000);
    renameSync(staged.file, join(s.d.root, at));
  } catch (e) {
    rmSync(staged.file, { force: true });
    throw e;
  } finally {
    s.d.guard.release(at);
  }
  const dir = parentOf(at) === '' ? undefined : db.objectByPath(parentOf(at));
  try {
    db.batch(() => {
      if (taken) {
        // The move is where the removal was, in its era: beside the server's name, in the directory by fid.
        db.rewriteLml([{ ...x, ...attrs, kind: 'rename', newPath: joinRel(parentOf(x.path), baseName(at)), parent: parentOf(at) === '' ? ROOT_FID : dir?.type === 'dir' ? dir.fid : null }], []);
        db.setLmlPreVersion(x.seq, current);
      } else {
        db.rewriteLml([], [x.seq]);
      }
      db.forgetRemovedLink(x.fid);
      restoreBase(s, { ...base, path: at, hash: staged.hash, size: staged.size }, current, 'file');
    });
  } catch (e) {
    removeHeld(s, at); // nothing journaled: the next try meets the same
    throw e;
  }
  if (taken) {
    record(s, r, x.path, 'unlink/write', 'keep-both', at, 'open', 'removed here, changed on the server since: the server\'s version kept beside, another object has the name here');
    s.d.log.warn({ path: x.path, keptAs: at, tid: formatTid(current) }, 'conflict: removed here, changed on the server since; the server\'s version is back beside the name');
  } else {
    record(s, r, x.path, 'unlink/write', 'remote', null, 'resolved', 'the server\'s change brought it back');
    s.d.log.warn({ path: x.path, tid: formatTid(current) }, 'conflict: removed here, changed on the server since; the server\'s version is back');
  }
  return true;
}
