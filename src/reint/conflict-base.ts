import { join } from 'node:path';
import { NO_VERSION, type Fid, type NodeId, type Tid } from '#core/ids.js';
import type { KmlRecord, LmlRecord, RecordDraft } from '#core/record.js';
import type { ObjectRow } from '#journal/fileset-db.js';
import { lstatOrNull } from '#fsio/disk.js';
import type { ResolverState } from './conflict-state.js';

// The server's base state of an object: its attributes as the server's version left them, and the object's row
// journaled again at that version, so that the server's record applies over it.

/**
 * The server's mode and owner of `o` as its version left them: the last record of it (or through another name
 * of its inode) that says them; a move says none (it keeps them, FilesetDb). `r`'s when the journal no longer
 * holds one.
 */
export function serverAttrs(s: ResolverState, o: ObjectRow, r: KmlRecord): { mode: number; uid: number; gid: number } {
  const at = attrsRecord(s, o.fid, o.version) ?? r;
  return { mode: at.mode, uid: at.uid, gid: at.gid };
}

/** The record that says the attributes of `fid` at `version` (see serverAttrs), or undefined when the journal holds none. */
export function attrsRecord(s: ResolverState, fid: Fid, version: Tid): KmlRecord | undefined {
  const db = s.d.db;
  let v = version;
  for (let hops = 0; hops < 1000 && v !== NO_VERSION; hops++) {
    const at = db.kmlAt(v);
    if (at === undefined) return undefined;
    if (at.kind === 'rename' && at.fid === fid) {
      v = at.preVersion;
      continue;
    }
    return at.fid === fid || (at.links ?? []).includes(fid) ? at : undefined;
  }
  return undefined;
}

/** Journal `d` as the object's row at the server's `version` (as a copy from the server), with what is on disk at its name. */
export function restoreBase(s: ResolverState, d: LmlRecord | RecordDraft, version: Tid, type: 'file' | 'dir' | 'symlink'): void {
  const st = lstatOrNull(join(s.d.root, d.path));
  const kind = type === 'dir' ? 'mkdir' : type === 'symlink' ? 'symlink' : 'create';
  s.d.db.commitCopy(
    { ...d, kind, newPath: null, preVersion: NO_VERSION, target: type === 'symlink' ? d.target : null, origin: d.origin as NodeId, fid: d.fid as Fid },
    version,
    st === null ? null : { ino: st.ino, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, racy: true },
  );
}
