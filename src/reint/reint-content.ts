import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { IntersyncError } from '#core/errors.js';
import type { Fid } from '#core/ids.js';
import type { LmlRecord } from '#core/record.js';
import { isInlineSize } from '#core/format.js';
import { sha256Hex } from '#core/sha256.js';
import { removedLink } from '#apply/link-align.js';
import { EMPTY_SHA256 } from '#fsio/disk.js';
import { apartHere, linkedHere, linkOrOwnFile, otherName } from './reint-links.js';
import type { ReintegratorDeps } from './reint-types.js';
import { upload } from './reint-upload.js';

type ContentDeps = Pick<ReintegratorDeps, 'db' | 'root' | 'log' | 'blockMaps' | 'client' | 'node' | 'transfers'>;

/** The record with the content it names; a file changed since ships its current content instead. */
export async function withContent(d: ContentDeps, r0: LmlRecord, ahead: ReadonlySet<Fid> = new Set()): Promise<{ record: LmlRecord; payload: Buffer | null }> {
  let r = r0;
  if (r.kind === 'link') {
    // The name it links to is gone here: the server may not have it either. The link still joins that inode
    // through another name of it here that the server knows; with none, it sends the content itself. Before,
    // it always did: the server made a file of its own where this node has a name of the inode, the groups
    // differed for good, and a later write through one of them made the contents differ too ("state
    // differs", a resync; chaos seed 9202, c2: the name linked to was moved here, and the server's removal
    // of it undid the move and removed it).
    // By identity first: the name it linked to may have moved here since, its move pending after the link (the
    // server places a link by its target's fid, RecordDraft.targetFid). Before, found by its name at the time
    // of the link only, a file made here and moved after the link (not accepted yet: no name the server knows
    // of the inode) sent the link as a file of its own: the server held two files where this node held one,
    // for good (chaos seed 9207, c2: alpha/f.json linked to beta/b.txt, which went on to beta/a.txt).
    // A name of the inode that this batch makes ahead of the link counts as one the server knows: two links
    // made here to a name removed here since (neither accepted yet) went as two files of their own, one
    // inode here, two files on the server (chaos seed 9202, c1: beta/d.md, kept beside as a conflict copy,
    // and epsilon/sub/b.txt, both linked to epsilon/a.txt, removed here; "hard-link group differs").
    const byFid = r.targetFid === undefined || r.targetFid === null ? undefined : d.db.objectByFid(r.targetFid);
    const t = byFid?.type === 'file' ? byFid : r.target === null ? undefined : d.db.objectByPath(r.target);
    if (t === undefined || t.type !== 'file') {
      const other = otherName(d, r.fid, ahead);
      r = linkOrOwnFile(d, r, other);
    } else if (apartHere(d, r.fid, t)) {
      // The new name and the name it linked to are two files here now: a resync or a conflict step placed the
      // server's content at the target as a file of its own, and the new name kept the old inode with what was
      // written through it. It goes as what it is here (a name of its inode's other names the server knows, or
      // a file of its own). Before, it went as a link: the server joined it to the target's inode, and the write
      // through it, made against the link's own version, replaced the server's newer content there (chaos s64
      // seed 9226, s63 seed 9222: lost writes; test/long/link-apart-after-resync.test.ts).
      const other = otherName(d, r.fid, ahead, t.fid);
      r = linkOrOwnFile(d, r, other);
      // Kept so in the LML (said once, and the batch read before it is read again: step, reint-loop.ts).
      d.db.rewriteLml([r], []);
      d.log.warn({ seq: r.seq.toString(), path: r.path, target: r0.target, linkedTo: other?.path }, other === undefined
        ? 'a hard link whose name is another file than its target here: sent as a file of its own'
        : 'a hard link whose name is another file than its target here: sent as a link to a name of the inode it has');
    }
  }
  if (r.kind !== 'create' && r.kind !== 'write' && r.kind !== 'truncate') return { record: r, payload: null };
  const o = d.db.objectByFid(r.fid) ?? linkedHere(d, r)
    // A hard-linked name removed here since, its removal pending: a write through it ships what its inode holds
    // under the name that lives on. Before, it shipped empty: on the server that name is one of the inode's, so
    // the write emptied the other names there until their own write came, and for good had that one been
    // refused (link-versions.test.ts).
    ?? removedLink(d.db, d.root, r.fid);
  const abs = o === undefined || o.type !== 'file' ? null : join(d.root, o.path);
  // Content that cannot be read is empty only when a later record removes the object; otherwise capture has
  // not journaled a move yet: wait for it rather than ship an empty file.
  const removedLater = (): boolean => d.db.localRecordsOf(r.fid).some((x) => x.seq > r.seq && (x.kind === 'unlink' || x.kind === 'rmdir'));
  if (isInlineSize(r.size ?? 0)) {
    let buf: Buffer;
    try {
      buf = abs === null ? Buffer.alloc(0) : readFileSync(abs);
    } catch {
      buf = Buffer.alloc(0);
      if (!removedLater()) throw new IntersyncError('IO', `content of ${r.path} is not readable yet`, { retriable: true, hint: 'retried once capture has caught up' });
    }
    if (abs === null && !removedLater()) throw new IntersyncError('IO', `object ${r.fid} is not here yet`, { retriable: true, hint: 'retried once capture has caught up' });
    if (!isInlineSize(buf.length)) return withContent(d, { ...r, size: buf.length });
    const hash = buf.length === 0 ? EMPTY_SHA256 : sha256Hex(buf);
    return { record: { ...r, hash, size: buf.length }, payload: buf };
  }
  if (abs === null) return { record: { ...r, hash: EMPTY_SHA256, size: 0 }, payload: Buffer.alloc(0) };
  const got = await d.blockMaps.of(abs);
  if (got === null) throw new IntersyncError('IO', `${r.path} changed while it was read`, { retriable: true, hint: 'retried once capture has caught up' });
  const { map } = got;
  // Shrunk below the delta size since it was journaled: it travels inline, as it is now.
  if (isInlineSize(map.size)) return withContent(d, { ...r, size: map.size });
  if (!(await d.client.hasContent(map.hash))) await upload(d, r, abs, map);
  return { record: { ...r, hash: map.hash, size: map.size }, payload: null };
}
