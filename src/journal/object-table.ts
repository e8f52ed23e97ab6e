import { digestAdd, digestSub } from '#core/digest.js';
import { NO_VERSION, ROOT_FID, formatTid, type Fid, type Tid } from '#core/ids.js';
import type { ObjectState, ObjectType, RecordDraft } from '#core/record.js';
import { parentOf } from '#core/paths.js';
import type { StatIdentity } from '#fsio/disk.js';
import type { FilesetTables } from './fileset-tables.js';
import type { RemovedLinks } from './removed-links.js';
import { NAMING, type ObjectRow } from './rows.js';
import type { Statements } from './statements.js';

/**
 * The object table as records change it: each row change moves the state digest with it (the old row out,
 * the new one in), and a record's stat identity follows. Every method runs inside FilesetDb's transaction;
 * the digest lives in `state`, which FilesetDb writes to meta and restores when a transaction rolls back.
 */
export class ObjectTable {
  readonly #st: Statements;
  readonly #tables: FilesetTables;
  readonly #removed: RemovedLinks;
  readonly #state: { digest: bigint };

  constructor(st: Statements, tables: FilesetTables, removed: RemovedLinks, state: { digest: bigint }) {
    this.#st = st;
    this.#tables = tables;
    this.#removed = removed;
    this.#state = state;
  }

  /**
   * What a record names by fid as well as by path, as this node's table has it before the record: the
   * directory its new name goes in (RecordDraft.parent), a link's existing name (RecordDraft.targetFid);
   * null where a record has none or the table has no such object.
   */
  placedOf(d: Pick<RecordDraft, 'kind' | 'path' | 'newPath' | 'target'>): { parent: Fid | null; targetFid: Fid | null } {
    const name = d.kind === 'rename' ? d.newPath : NAMING.has(d.kind) ? d.path : null;
    const dir = name === null ? null : parentOf(name);
    const parent = dir === null ? null : dir === '' ? ROOT_FID : (this.#st.dirFidAt.get(dir) as Fid | undefined) ?? null;
    const t = d.kind === 'link' && d.target !== null ? this.#tables.objectByPath(d.target) : undefined;
    return { parent, targetFid: t?.type === 'file' ? t.fid : null };
  }

  /** The object a draft changes, checking the draft's pre-version against its version. */
  current(d: RecordDraft): ObjectRow | undefined {
    const creates = d.kind === 'create' || d.kind === 'mkdir' || d.kind === 'symlink' || d.kind === 'link';
    const cur = creates ? undefined : this.#tables.objectByFid(d.fid);
    const curVersion = cur?.version ?? NO_VERSION;
    if (curVersion !== d.preVersion) {
      throw new Error(`commit ${d.kind} ${d.path}: pre-version ${formatTid(d.preVersion)} is not current ${formatTid(curVersion)}`);
    }
    if (creates && this.#tables.objectByPath(d.path) !== undefined) throw new Error(`commit ${d.kind} ${d.path}: the name is taken`);
    return cur;
  }

  /**
   * `made`: the record's object was just made on disk (capture saw it appear, or the apply path wrote it). A
   * new file, directory or symlink is a new inode (a second name of a file is a `link` record): another row
   * holding its inode number holds a stale one (that inode was freed and reused), and would be taken for a
   * hard link of it (a write through one name would change the other's version and content). `inRow`: the row
   * was inserted with it (applyMade).
   */
  setIdentity(d: RecordDraft, id: StatIdentity | null, made = false, inRow = false): void {
    if (id === null || d.kind === 'unlink' || d.kind === 'rmdir') return;
    if (made && (d.kind === 'create' || d.kind === 'mkdir' || d.kind === 'symlink')) {
      this.#st.forgetIno.run(id.ino, d.fid);
      // Nor is any name removed here noted with that number a name of this object: the inode it was of is gone,
      // and the kernel handed its number out again. Before, a server's link to such a name joined the new file
      // (removedLink found it), and the server's content went into it: a new file made here was written over,
      // on no node any more (chaos s69 seed 9259, c3's d.md).
      this.#removed.forgetRemovedLinksAt(id.ino);
    } else if ((d.kind === 'write' || d.kind === 'truncate') && this.#tables.objectByFid(d.fid)?.ino !== id.ino && this.#tables.objectsByIno(id.ino).length === 0) {
      // So when a name takes a new inode whose number no object here had (the apply path's temp file renamed
      // over it, a program's replace): the number was freed and handed out again. Before, a server's link to a
      // name removed here, noted with that number, joined this file (chaos s78 seed 9302, c4: beta/b.conflict-…,
      // written by the server a moment after the removal freed the number; "hard links grouped otherwise").
      this.#removed.forgetRemovedLinksAt(id.ino);
    }
    if (!inRow) this.#st.identity.run(id.ino, id.mtimeNs, id.ctimeNs, id.racy ? 1 : 0, d.fid);
    if (d.kind === 'write' || d.kind === 'truncate' || d.kind === 'setattr' || d.kind === 'link') {
      // Every name of the inode sees the same stat (a new link moves the ctime of the others).
      this.#st.identityByIno.run(id.mtimeNs, id.ctimeNs, id.racy ? 1 : 0, id.ino);
    }
  }

  /**
   * applyToObjects of a record whose change was just made on disk, then its stat identity (setIdentity, `made`):
   * a new name's identity goes in with its row (one insert, not an insert and an update of the row and its inode
   * index).
   */
  applyMade(d: RecordDraft & { readonly links?: readonly Fid[] | null }, cur: ObjectRow | undefined, version: Tid, id: StatIdentity | null): Fid[] | null {
    const inRow = id !== null && (d.kind === 'create' || d.kind === 'mkdir' || d.kind === 'symlink');
    const links = this.applyToObjects(d, cur, version, inRow ? id : null);
    this.setIdentity(d, id, true, inRow);
    return links;
  }

  /**
   * The object table after `d`, at `version`. For a change of a file's content or attributes, returns every
   * name of its inode here when it has more than one (sorted fids, see KmlRecord.links), else [] (one name);
   * null for other changes. `d.links`, a server's grouping, gives its names the version too where this
   * node's grouping differs. `made`: the stat identity of a new name's object, written with its row.
   */
  applyToObjects(d: RecordDraft & { readonly links?: readonly Fid[] | null }, cur: ObjectRow | undefined, version: Tid, made: StatIdentity | null = null): Fid[] | null {
    const need = (): ObjectRow => {
      if (cur === undefined) throw new Error(`commit ${d.kind} ${d.path}: no object ${d.fid}`);
      return cur;
    };
    switch (d.kind) {
      case 'create':
      case 'mkdir':
      case 'symlink':
      case 'link': {
        const type: ObjectType = d.kind === 'mkdir' ? 'dir' : d.kind === 'symlink' ? 'symlink' : 'file';
        // A new name of an inode shows what the inode holds now: its target's content and attributes, not
        // those the record carries (made where the link was made, perhaps before a later write came here).
        const t = d.kind === 'link' && d.target !== null ? this.#tables.objectByPath(d.target) : undefined;
        const from = t?.type === 'file' ? t : d;
        const obj: ObjectState = {
          fid: d.fid, path: d.path, type, version, mode: from.mode, uid: from.uid, gid: from.gid, mtimeMs: from.mtimeMs,
          size: type === 'file' ? from.size : null, hash: type === 'file' ? from.hash : null,
          target: type === 'symlink' ? d.target : null,
        };
        if (made !== null) {
          this.#st.insertMade.run({ ...obj, ino: made.ino, mtimeNs: made.mtimeNs, ctimeNs: made.ctimeNs, racy: made.racy ? 1 : 0 });
        } else {
          this.#st.insert.run(obj);
        }
        this.#state.digest = digestAdd(this.#state.digest, obj);
        return null;
      }
      case 'write':
      case 'truncate':
      case 'setattr': {
        const o = need();
        const next: ObjectState = {
          ...o, version, mode: d.mode, uid: d.uid, gid: d.gid, mtimeMs: d.mtimeMs,
          // A setattr leaves the content as it is: the size and hash it carries are its origin's, which may hold
          // other content (chaos seed 9205: the server's row took a client's hash its disk never held, for good).
          size: o.type !== 'file' ? null : d.kind === 'setattr' ? o.size : (d.size ?? o.size),
          hash: o.type !== 'file' ? null : d.kind === 'setattr' ? o.hash : (d.hash ?? o.hash),
        };
        this.replace(o, next);
        if (o.type !== 'file') return null;
        const names: Fid[] = [o.fid];
        if (o.ino !== null) {
          // Hard links share the inode: content, mode, owner and mtime, so every name changes with it, and
          // takes the change's version (a change through one name meets a concurrent one through another).
          for (const sib of this.#tables.objectsByIno(o.ino)) {
            if (sib.fid === o.fid || sib.type !== 'file') continue;
            names.push(sib.fid);
            // A name made here and not accepted yet has no version of the server's: its records stay made
            // against none (the server's check follows them from its link record). A change made here (no new
            // version: the LML's) leaves each name its own version, which the names' records are made against.
            // Nor one the server holds apart (not in its `links`): the server did not change that name, and a
            // pending move of it rebased to this version would be refused there for good (made against a
            // version ahead of the server's, a resync). Its content is the link step's (apply/link-align.ts).
            const apart = d.links !== undefined && d.links !== null && !d.links.includes(sib.fid);
            const v = sib.version === NO_VERSION || version === o.version || apart ? sib.version : version;
            // A setattr leaves every name's content as it is, as it does the object's: a name whose row holds other
            // content than this one's (a conflict step set this one to the server's base, its local write still in
            // the inode) keeps it, so that capture sees the difference and journals it. Before, a setattr here gave
            // it this row's hash: the write was journaled nowhere, the digests differed, and the resync placed the
            // server's content over it (test/long/write-hidden-by-rename.test.ts).
            const content = d.kind === 'setattr' ? { size: sib.size, hash: sib.hash } : { size: next.size, hash: next.hash };
            this.replace(sib, { ...sib, version: v, mode: next.mode, uid: next.uid, gid: next.gid, mtimeMs: next.mtimeMs, ...content });
            // A pending move of that name here is made against the version the name had: the server gave the
            // name this change's version too, and a change of content does not meet a move, so it is made
            // against it now (else refused for ever). Its pending writes are the conflict step's
            // (changesThroughLinks).
            if (v !== sib.version) this.#st.lmlRebaseNaming.run(v, sib.fid, sib.version);
          }
          // A name of the inode removed here, its removal not accepted yet: the server gave it this version
          // too, so its other records are made against it. Not the removal: it keeps the version it was made
          // against. The server takes it while the inode keeps another name there (a change of content does not
          // meet the removal of one name), and refuses it when the name is the inode's last there, whose content
          // it would destroy unseen; the conflict step then brings the content back (update beats delete,
          // ConflictResolver#restoreRemoved). Before, the removal took this version too: the server's removal
          // of the other name came next, and the removal, made before this change existed, destroyed it on
          // every node (chaos seed 9206, "DESTROYED").
          if (version !== o.version) {
            for (const fid of this.#removed.removedLinksOf(o.ino)) {
              if (d.links === undefined || d.links === null || d.links.includes(fid)) this.#st.lmlRebaseFid.run(version, fid);
            }
          }
        }
        // The server's names of the inode that are not this node's (grouped otherwise here, and not set right
        // by the apply path because of changes pending here): they take the version the server gave them.
        if (version !== o.version) {
          for (const fid of d.links ?? []) {
            if (names.includes(fid)) continue;
            const sib = this.#tables.objectByFid(fid);
            // A name removed here and its removal not accepted yet, on an inode this node does not group it
            // with (removed before the server linked the name that changed): its removal keeps the version it
            // was made against, as above. (Before, it took this one; refused as made against an older version,
            // it was refused three times and the client resynced, chaos seed 9202: the server now takes it
            // while the inode keeps another name, ApplyPath#baseOf.)
            if (sib?.type !== 'file' || sib.version === NO_VERSION || sib.version === version) continue;
            this.replace(sib, { ...sib, version });
            this.#st.lmlRebaseNaming.run(version, sib.fid, sib.version);
          }
        }
        return names.length > 1 ? names.sort() : [];
      }
      case 'rename': {
        const o = need();
        const to = d.newPath;
        if (to === null) throw new Error(`commit rename ${d.path}: no new path`);
        if (o.type === 'dir') {
          for (const child of this.#tables.objectsBelow(o.path)) {
            const moved = `${to}${child.path.slice(o.path.length)}`;
            this.#state.digest = digestSub(this.#state.digest, child);
            this.#state.digest = digestAdd(this.#state.digest, { ...child, path: moved });
            this.#st.movePath.run(moved, child.fid);
          }
        }
        // A move changes the name only: the object keeps its attributes, as the disk does (the apply path renames,
        // nothing more). A record's attributes are its origin's at the move: a chmod made with it (capture journals
        // it as a setattr after the move: compare in presto/reconcile-changes.ts), or older ones when the move was rebased over a
        // peer's chmod. Before, the row took them and the disk did not: journal and disk differed for good, and the
        // next compare with a peer's digest resynced ("other mode").
        this.replace(o, { ...o, path: to, version });
        return null;
      }
      case 'unlink':
      case 'rmdir': {
        const o = need();
        if (o.type === 'dir' && this.#tables.objectsBelow(o.path).length > 0) {
          throw new Error(`commit rmdir ${o.path}: directory still holds objects`);
        }
        this.#st.remove.run(o.fid);
        this.#state.digest = digestSub(this.#state.digest, o);
        return null;
      }
    }
  }

  replace(old: ObjectRow, next: ObjectState): void {
    this.#st.update.run(next);
    this.#state.digest = digestSub(this.#state.digest, old);
    this.#state.digest = digestAdd(this.#state.digest, next);
  }
}
