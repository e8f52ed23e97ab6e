import { IntersyncError } from '#core/errors.js';
import type { RecordDraft } from '#core/record.js';
import type { FilesetDb } from '#journal/fileset-db.js';
import { localAttrs, unsafeLinkReason, type AttrPolicy, type Owner } from '#policy/attr-policy.js';
import { isRoot } from './new-file.js';

/** This process's owner: what a new object gets when the fileset does not preserve owners. */
const SELF: Owner = { uid: process.geteuid?.() ?? 0, gid: process.getegid?.() ?? 0 };

const NEW_KINDS = new Set(['create', 'mkdir', 'symlink']);

/**
 * A peer's record as this node applies (and so journals) it, under the fileset's attribute policy
 * (`policy/attr-policy.ts`): set-id bits and owners only where the policy allows them, a hard link
 * with the attributes of the inode it joins (a link changes none). Throws UNSAFE_LINK for a symlink
 * that leaves the tree when the policy says safe-links. Every edge where a peer's record or
 * snapshot entry enters this node calls it before the version check: a server's reintegration,
 * a client's forwarded stream, a client's first copy and resync.
 */
export function localize<T extends RecordDraft>(db: FilesetDb, p: AttrPolicy, d: T): T {
  if (d.kind === 'symlink' && p.safeLinks && d.target !== null) {
    const why = unsafeLinkReason(d.path, d.target);
    if (why !== null) throw IntersyncError.UNSAFE_LINK(d.path, d.target, why);
  }
  if (d.kind === 'link') {
    const t = d.target === null ? undefined : db.objectByPath(d.target);
    // The file at the target's name is another than the one the origin linked to (`targetFid`: removed or
    // replaced here): the link is placed as a file of its own, with the attributes the record gives, under the
    // policy as a new file. Before, it took the other file's mode (and "set-id bits dropped" said so): the
    // digests differed, a resync (chaos s33 seed 9225; test/long/link-target-replaced.test.ts).
    const other = t !== undefined && d.targetFid !== undefined && d.targetFid !== null && t.fid !== d.targetFid;
    if (!other) return t === undefined ? d : { ...d, mode: t.mode, uid: t.uid, gid: t.gid }; // no target: the version check refuses it
  }
  const cur = NEW_KINDS.has(d.kind) || d.kind === 'link' ? undefined : db.objectByFid(d.fid);
  return localAttrs(d, p, { self: SELF, current: cur === undefined ? null : { uid: cur.uid, gid: cur.gid }, canChown: isRoot });
}
