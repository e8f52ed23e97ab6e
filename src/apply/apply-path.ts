import { metrics } from '#core/metrics.js';
import { randomBytes } from 'node:crypto';
import {
  chmodSync, closeSync, constants, copyFileSync, existsSync, fchmodSync, futimesSync, linkSync, lchownSync, lutimesSync, mkdirSync, openSync,
  renameSync, rmSync, rmdirSync, symlinkSync, unlinkSync, utimesSync, writeSync,
} from 'node:fs';
import { copyFile, unlink } from 'node:fs/promises';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { IntersyncError, NOT_EMPTY_HOLDS } from '#core/errors.js';
import { NO_VERSION, formatTid, type Fid, type Tid } from '#core/ids.js';
import type { KmlRecord, RecordDraft } from '#core/record.js';
import { isUnder } from '#core/paths.js';
import type { FilesetDb, ObjectRow, StatIdentity } from '#journal/fileset-db.js';
import { DELTA_THRESHOLD } from '#core/format.js';
import { EMPTY_SHA256, lstatOrNull, moveNoReplace, type DiskStat, type StatMany } from '#fsio/disk.js';
import type { EchoGuard } from '#fsio/echo-guard.js';
import { BlockMapCache, type BlockMap } from '#fsio/blocks.js';
import { assemble, type AssemblyBase } from './assemble.js';
import { confine } from './confine.js';
import { checkBytes, isRoot, tryChown, writeNewFile } from './new-file.js';
import { FsThread, failureError } from './fs-thread.js';
import { HeldFile } from './late-write.js';
import { linkOnDisk } from './link-align.js';
import { localize } from './local-attrs.js';
import { namesAsJournaled, renewNames } from './other-names.js';
import { SAFE_ATTRS, type AttrPolicy } from '#policy/attr-policy.js';
import type { PendingVersion, VersionStore } from './versions.js';

/** Content staged in the fileset's tmp folder, ready to be renamed into place. */
export interface Staged {
  readonly file: string;
  readonly hash: string;
  readonly size: number;
  /** The attributes already given to the staged file (owner, mode, mtime), when it was written for a known record. */
  readonly attrs?: Attrs;
  /** Its block map, when it was assembled from one (remembered for the next delta once it is in place). */
  readonly map?: BlockMap;
}

type Attrs = Pick<RecordDraft, 'mode' | 'uid' | 'gid' | 'mtimeMs'>;

/** Where the apply path gets file content it does not hold: the peer the record came from. */
export interface ContentSource {
  /** The peer's block map of the record's content (or of a newer content of that object). */
  blockMap(d: RecordDraft): Promise<BlockMap>;
  /** The given blocks of that content, in the order asked. */
  blocks(d: RecordDraft, map: BlockMap, indexes: readonly number[]): AsyncIterable<Buffer>;
  /** False when the map is the word of a peer that is no authority on the content (a client's upload): the result is hashed whole. */
  readonly trusted?: boolean;
}


/** The hash asked for when any content of the object will do: no object holds it, so it is always fetched. */
const ANY_CONTENT = '0'.repeat(64);

export interface ApplyDeps {
  readonly root: string;
  readonly tmpDir: string;
  readonly db: FilesetDb;
  readonly guard: EchoGuard;
  readonly log: Logger;
  /** The fileset's attribute policy as this node applies it (read per call: `intersync config` may change it); safe when absent. */
  readonly attrs?: () => AttrPolicy;
  /** Where the content a peer's change replaces or removes is kept (versions.ts); none kept when absent. */
  readonly versions?: VersionStore;
  /**
   * A peer removes the directory `rel`, and it is not empty here: true when what it holds is only names this
   * node ignores (`presto/ignore-rules.ts`). It then stays on disk with them, the removal is journaled, and
   * capture journals the directory again as new (as Syncthing and rsync, nothing ignored is deleted).
   */
  readonly keepsIgnored?: (rel: string) => boolean;
}

const CONTENT_KINDS = new Set(['create', 'write', 'truncate']);

/**
 * THE apply path: every change that comes from another node (reintegration on
 * a server, forwarding on a client, the first copy) goes through here. It
 * checks the version, stages content in a temp file, changes the backing
 * directory with the path held in the echo guard, and hands the new stat
 * identity to the caller's commit, which journals the record in the same tick.
 */
export class ApplyPath {
  readonly #d: ApplyDeps;
  /** Block maps of this node's large files, shared with the content reads a peer asks for. */
  readonly blockMaps = new BlockMapCache();

  constructor(d: ApplyDeps) {
    this.#d = d;
    mkdirSync(d.tmpDir, { recursive: true, mode: 0o700 });
  }

  /**
   * The version check: null when `d` applies to this node's state, else why it does not.
   * A record based on a version that this node has since replaced only by
   * earlier records of the same origin made against that same version (the
   * origin sent a chain of changes before it learnt their TIDs) still applies:
   * `baseOf` returns the version it applies on.
   */
  baseOf(d: RecordDraft): Tid | null {
    const cur = this.#d.db.objectByFid(d.fid);
    if (cur === undefined) return null;
    let v = cur.version;
    // A change through another name of the same inode (a hard link) moved this name's version too.
    const sameInode = (fid: Fid): boolean => {
      if (fid === d.fid) return true;
      const o = cur.type === 'file' && cur.ino !== null ? this.#d.db.objectByFid(fid) : undefined;
      return o !== undefined && o.ino === cur.ino;
    };
    // A change the server accepted after `d` (this node's own, in its journal from the server's answer before
    // the stream brings `d`): the server applied `d` under it, and so does this node. Before, a chmod here
    // through one name of a hard link, accepted after the server's move of the other name, gave that name a
    // version the move was not made against: refused three times, a resync (chaos seed 9218).
    // It may have come through another name of the inode (its version, not the object's, is what that change
    // was made against): the stream being contiguous, nothing else here moved the object's version. Only a
    // change of names passes so: a write or setattr applied under a later one would put back what it replaced.
    const tid = (d as Partial<KmlRecord>).tid;
    if (this.attrsAbove(d) !== null) return cur.version;
    const naming = d.kind === 'rename' || d.kind === 'unlink' || d.kind === 'rmdir';
    for (let hops = 0; hops < 10_000 && v !== d.preVersion; hops++) {
      const r = this.#d.db.kmlAt(v);
      if (naming && r !== undefined && tid !== undefined && r.tid > tid && sameInode(r.fid)) return cur.version;
      if (r === undefined || r.origin !== d.origin || !sameInode(r.fid)) return this.#oneNameOf(cur, d) ? cur.version : null;
      if (r.preVersion === d.preVersion) return cur.version;
      // Through another name: its pre-version is that name's, not this one's; this name's own before it is the
      // last record that gave it one. Before, a write through c pending behind the origin's link c to a and
      // its write through a (one batch) was refused as made against c's older version (current: the write's),
      // and where the client missed rebasing it, three times and a resync (chaos s39 seed 9230;
      // test/long/link-write-both.test.ts).
      v = r.fid === d.fid ? r.preVersion : this.#d.db.lastVersionOf(d.fid, d.preVersion, r.tid)?.tid ?? d.preVersion;
    }
    return v === d.preVersion || this.#oneNameOf(cur, d) ? cur.version : null;
  }

  /**
   * A peer's write or truncate (a record of the stream) met here by this node's own change of attributes
   * through a name of the same inode, which the server accepted after it (its answer came before the stream
   * brought `d`): the server applied the content under the attributes, and so does this node. The row whose
   * attributes `d` takes here instead of its own; null otherwise. Before, `d` was refused as made against an
   * older version three times and the client resynced (a chmod through a hard link made here while the
   * server wrote the file; test/long/link-unseen-write.test.ts).
   */
  attrsAbove(d: RecordDraft): ObjectRow | null {
    const tid = (d as Partial<KmlRecord>).tid;
    if ((d.kind !== 'write' && d.kind !== 'truncate') || tid === undefined) return null;
    const db = this.#d.db;
    const cur = db.objectByFid(d.fid);
    if (cur?.type !== 'file' || cur.ino === null || cur.version === d.preVersion || cur.version <= tid) return null;
    const r = db.kmlAt(cur.version);
    if (r === undefined || r.kind !== 'setattr' || r.origin !== db.meta.nodeId || r.origin === d.origin) return null;
    return r.fid === cur.fid || db.objectByFid(r.fid)?.ino === cur.ino ? cur : null;
  }

  /**
   * `d` removes one name of a hard-linked file whose inode keeps another name here, made against an older
   * version that only changes made through the inode's other names replaced (no record of this name since):
   * a change of content or attributes through another name does not meet the removal of this one, that name
   * keeps what it holds, and the removal applies on the current version (the client's conflict step has it so
   * too: such a change meets nothing there). Another node's change or move of this very name since does meet it
   * (update beats delete); the remover's own do not: it made them before the removal, which saw them (chaos s76
   * seed 9244: its own accepted move of the name refused its removal, whose conflict step then brought the name
   * back as a file of its own, a resync; test/long/removed-link-own-move.test.ts). The removal of the inode's
   * last name made against an older version is refused too: it would destroy content its origin never saw; the
   * origin's conflict step brings that content back
   * (ConflictResolver#restoreRemoved). Before, the client gave its pending removal the version of every
   * change of the inode it applied, and the server could not tell: a client's removal of one name, made
   * before the server wrote through the other and then removed that one, destroyed the write everywhere
   * (chaos seed 9206, "DESTROYED").
   */
  #oneNameOf(cur: ObjectRow, d: RecordDraft): boolean {
    if (d.kind !== 'unlink' || cur.type !== 'file' || cur.ino === null) return false;
    if (d.preVersion === NO_VERSION || d.preVersion >= cur.version) return false;
    if (this.#d.db.hasLaterRecord(cur.fid, d.preVersion, d.origin)) return false;
    return linkOnDisk(this.#d.db, this.#d.root, cur.ino, cur.fid) !== undefined;
  }

  check(d: RecordDraft): IntersyncError | null {
    const db = this.#d.db;
    if (d.kind === 'create' || d.kind === 'mkdir' || d.kind === 'symlink' || d.kind === 'link') {
      if (db.objectByFid(d.fid) !== undefined) return IntersyncError.CONFLICT(d.path, `object ${d.fid} exists already`);
      const there = db.objectByPath(d.path);
      if (there !== undefined) return IntersyncError.CONFLICT(d.path, `the name is taken by ${there.fid}`, { kind: 'name-taken', path: d.path, by: there.fid });
      if (d.kind === 'link') {
        const t = d.target === null ? undefined : db.objectByPath(d.target);
        if (t === undefined || t.type !== 'file') return IntersyncError.CONFLICT(d.path, `link target ${d.target ?? ''} is not a file here`, { kind: 'link-target', path: d.path });
        // The name it linked to is another file here now (replaced since): not the inode the origin linked to.
        if (d.targetFid !== undefined && d.targetFid !== null && t.fid !== d.targetFid) return IntersyncError.CONFLICT(d.path, `link target ${d.target ?? ''} is not a file here`, { kind: 'link-target', path: d.path });
      }
      return null;
    }
    const cur = db.objectByFid(d.fid);
    if (cur === undefined) return IntersyncError.CONFLICT(d.path, `object ${d.fid} does not exist here`);
    if (cur.version !== d.preVersion && this.baseOf(d) === null) {
      return IntersyncError.CONFLICT(d.path, `made against version ${formatTid(d.preVersion)}, current is ${formatTid(cur.version)}`,
        { kind: 'outdated', path: d.path, made: formatTid(d.preVersion), current: formatTid(cur.version) });
    }
    if (cur.path !== d.path) return IntersyncError.CONFLICT(d.path, `the object is at ${cur.path} here`, { kind: 'elsewhere', path: d.path, here: cur.path });
    if ((d.kind === 'write' || d.kind === 'truncate') && cur.type !== 'file') return IntersyncError.CONFLICT(d.path, `${d.kind} of a ${cur.type}`);
    if (d.kind === 'unlink' && cur.type === 'dir') return IntersyncError.CONFLICT(d.path, 'unlink of a directory');
    if (d.kind === 'rmdir' && cur.type !== 'dir') return IntersyncError.CONFLICT(d.path, `rmdir of a ${cur.type}`);
    if (d.kind === 'rename' && d.newPath !== null && cur.type === 'dir' && isUnder(d.newPath, d.path)) {
      return IntersyncError.CONFLICT(d.newPath, 'a directory cannot move inside itself');
    }
    if (d.kind === 'rename' && d.newPath !== null && db.objectByPath(d.newPath) !== undefined) {
      return IntersyncError.CONFLICT(d.newPath, 'the new name is taken', { kind: 'new-name-taken', path: d.newPath });
    }
    if (d.kind === 'rmdir') {
      // Its entries here, by fid: the origin may hold them elsewhere with their moves still to come (Reintegrator#emptiedLater).
      const held = db.objectsBelow(d.path).filter((o) => !o.path.slice(d.path.length + 1).includes('/'));
      if (held.length > 0) {
        return IntersyncError.CONFLICT(d.path, 'directory is not empty here', { kind: 'not-empty', path: d.path, holds: held.slice(0, NOT_EMPTY_HOLDS).map((o) => o.fid).join(',') });
      }
    }
    return null;
  }

  /** The policy this node applies peers' modes, owners and symlinks under. */
  get attrs(): AttrPolicy {
    return this.#d.attrs?.() ?? SAFE_ATTRS;
  }

  /**
   * A peer's record as this node applies and journals it: set-id bits and owners only where the
   * fileset's policy allows them (`local-attrs.ts`); UNSAFE_LINK for an escaping symlink under safe-links.
   */
  localize<T extends RecordDraft>(d: T, policy: AttrPolicy = this.attrs): T {
    return localize(this.#d.db, policy, d);
  }

  needsContent(d: RecordDraft): boolean {
    return CONTENT_KINDS.has(d.kind);
  }

  /**
   * Stage the content of a create, write or truncate: from inline bytes, from
   * an object here with the same hash (identical content is never sent twice),
   * or from the source, as a block delta against this node's old version.
   */
  async stage(d: RecordDraft, inline: Buffer | null, source: ContentSource | null): Promise<Staged> {
    const want = d.hash!;
    if (inline !== null || d.size === 0) return this.stageBytes(d, inline ?? Buffer.alloc(0));
    const tmp = this.tmpName();
    const local = this.#localCopy(want);
    if (local !== null && lstatOrNull(local.abs)?.size === d.size) {
      // A staged upload is consumed (its record has come); a file of the tree is copied by the kernel.
      if (local.staged) renameSync(local.abs, tmp);
      else await copyFile(local.abs, tmp, constants.COPYFILE_EXCL);
      const map = this.blockMaps.byHash(want);
      return { file: tmp, hash: want, size: d.size, ...(map === undefined ? {} : { map }) };
    }
    if (source === null) throw IntersyncError.NEED_CONTENT(want);
    const map = await source.blockMap(d);
    const old = this.#d.db.objectByFid(d.fid);
    const oldAbs = old?.type === 'file' ? join(this.#d.root, old.path) : null;
    let base: AssemblyBase | null = null;
    if (oldAbs !== null && (old?.size ?? 0) >= DELTA_THRESHOLD / 4) {
      try {
        const known = await this.blockMaps.of(oldAbs, map.blockSize);
        if (known !== null) base = { abs: oldAbs, ...known };
      } catch {
        base = null;
      }
    }
    let fetched: number;
    try {
      fetched = await assemble({
        tmp, path: d.path, map, base, check: source.trusted === false ? 'whole' : 'blocks',
        fetch: (indexes) => source.blocks(d, map, indexes)[Symbol.asyncIterator](),
      });
    } catch (e) {
      rmSync(tmp, { force: true });
      if (base !== null) this.blockMaps.drop(base.st); // in case the local map was what did not hold
      throw e;
    }
    this.blockMaps.known(map);
    this.#d.log.debug({ path: d.path, blocks: map.blocks.length, fetched }, 'block delta');
    return { file: tmp, hash: map.hash, size: map.size, map };
  }

  /**
   * Stage `d`'s content; when the peer holds it no longer (changed again or removed since), an empty
   * placeholder instead, which a later record of the peer replaces or removes (`placeholder` says which).
   */
  async stageOrPlaceholder(d: RecordDraft, inline: Buffer | null, source: ContentSource | null): Promise<{ staged: Staged; placeholder: boolean }> {
    try {
      return { staged: await this.stage(d, inline, source), placeholder: false };
    } catch (e) {
      if (!(e instanceof IntersyncError) || e.code !== 'CONTENT_GONE') throw e;
    }
    // The peer's other names of the inode (a hard link) hold the same content while the record's name is gone
    // there (removed since). Before, the empty stand-in went into the inode here, and a name the peer still
    // holds kept it: "state differs", a resync (chaos seed 9216, c2; test/long/link-content-gone.test.ts).
    for (const fid of (d as Partial<KmlRecord>).links ?? []) {
      if (fid === d.fid) continue;
      try {
        return { staged: await this.stage({ ...d, fid }, null, source), placeholder: false };
      } catch (e) {
        if (!(e instanceof IntersyncError) || e.code !== 'CONTENT_GONE') throw e;
      }
    }
    return { staged: this.stageBytes({ ...d, hash: EMPTY_SHA256, size: 0 }, Buffer.alloc(0)), placeholder: true };
  }

  /**
   * Stage the peer's current content of object `d.fid`, whatever its hash now (a conflict step, or a
   * client whose copy is behind the server's): `d` gives the name and attributes; an empty stand-in when
   * the peer holds none at the object's name.
   */
  stageCurrent(d: RecordDraft, source: ContentSource | null): Promise<{ staged: Staged; placeholder: boolean }> {
    return this.stageOrPlaceholder({ ...d, kind: 'write', newPath: null, target: null, hash: ANY_CONTENT, size: null }, null, source);
  }

  /**
   * Stage content that came with its record (inline bytes), checked against
   * the record's hash and size, and already carrying the record's owner,
   * mode and mtime so that applying it is a rename.
   */
  stageBytes(d: RecordDraft, buf: Buffer): Staged {
    const got = checkBytes(d, buf);
    const tmp = this.tmpName();
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      writeSync(fd, buf);
      tryChown(fd, d.uid, d.gid); // before the mode: a change of owner clears set-id bits
      fchmodSync(fd, d.mode);
      futimesSync(fd, d.mtimeMs / 1000, d.mtimeMs / 1000);
    } catch (e) {
      closeSync(fd);
      rmSync(tmp, { force: true });
      throw e;
    }
    closeSync(fd);
    return { file: tmp, hash: got, size: buf.length, attrs: { mode: d.mode, uid: d.uid, gid: d.gid, mtimeMs: d.mtimeMs } };
  }

  /**
   * Change the disk for `d` and commit it through `commit` in the same tick,
   * with the touched names held in the echo guard so capture does not see the
   * change as a local one. `staged` is consumed.
   */
  apply(d: RecordDraft, staged: Staged | null, commit: (identity: StatIdentity | null) => void, intent: string | null = null): void {
    // A change that replaces or removes a file's content must not take a local write that capture has not
    // journaled yet with it (made between capture's last look and now): refused for the moment, the write is
    // journaled first and meets the conflict step when the change comes again. Only the stat identity counts:
    // the conflict step may have set the row's content to the server's base on purpose.
    // The file is held open from this check on (late-write.ts): a write landing between the check and the
    // change goes into the inode the change replaces, and is kept from there once the change is in.
    let held: HeldFile | null = null;
    if (d.kind === 'write' || d.kind === 'truncate' || d.kind === 'unlink') {
      const row = this.#d.db.objectByFid(d.fid);
      const at = join(this.#d.root, d.path);
      const file = row?.type === 'file' && row.ino !== null ? row : undefined;
      // Not a removal of one name of an inode with others: what is written through them stays theirs.
      const holds = file !== undefined && !(d.kind === 'unlink' && this.#d.db.objectsByIno(file.ino!).length > 1);
      held = holds ? HeldFile.open(at) : null;
      const pre = file !== undefined ? held?.stat ?? lstatOrNull(at) : null;
      if (row !== undefined && pre !== null && (pre.ino !== row.ino || pre.mtimeNs !== row.mtimeNs || pre.ctimeNs !== row.ctimeNs)) {
        held?.close();
        if (staged !== null) rmSync(staged.file, { force: true });
        throw IntersyncError.CONFLICT(d.path, 'written here since it was journaled; retried once capture has journaled it');
      }
      // Its name is gone from the disk and capture has not journaled that yet (a program's move or removal a
      // moment ago): a write made there would be a file of its own while the journal gave its content to the
      // inode's other names, which hold the old one (chaos s59 seed 9273: capture then journaled the moved name
      // as a link of that inode and the old content over the write, lost on every node;
      // test/apply-move-race.test.ts). Refused for the moment: the record comes again once the move is journaled.
      if (file !== undefined && pre === null && d.kind !== 'unlink') {
        if (staged !== null) rmSync(staged.file, { force: true });
        throw IntersyncError.CONFLICT(d.path, 'moved or removed here since it was journaled; retried once capture has journaled it');
      }
    }
    try {
      const inPlace = this.#applyChecked(d, staged, commit, intent);
      if (held !== null && !inPlace) this.#keepLateWrite(d, held);
    } finally {
      held?.close();
    }
  }

  /** ApplyPath#apply once checked; true when the change went into the file's inode in place (not replaced). */
  #applyChecked(d: RecordDraft, staged: Staged | null, commit: (identity: StatIdentity | null) => void, intent: string | null): boolean {
    // So with the server's other names of the inode (KmlRecord.links) that are files of their own here: the
    // commit gives each the change's version, and a write made here through one of them, not journaled yet,
    // would then pass for one made on the server's content and replace it everywhere (chaos seed 9202, lost
    // write). Journaled first, it meets the conflict step (#changesThroughLinks) when the record comes again.
    const apart = this.#apartWrittenSince(d);
    if (apart !== null) {
      if (staged !== null) rmSync(staged.file, { force: true });
      throw IntersyncError.CONFLICT(apart, 'a name the server links to this file was written here since it was journaled; retried once capture has journaled it');
    }
    const names = d.newPath === null ? [d.path] : [d.path, d.newPath];
    for (const n of names) this.#d.guard.hold(n);
    // Noted before the disk changes, cleared once journaled: a start after a crash in between finds it.
    const inflight = intent === null ? null : this.#d.db.markInflight(intent);
    let consumed = false;
    let merged = false; // the change was on disk already: nothing to take back if the journal refuses it
    const swapped: ObjectRow[] = []; // the other names of a hard-linked file that took the new content's inode
    let replacedIno: string | null = null; // the inode the new file replaced at its names
    let inPlace = false;
    let version: PendingVersion | null = null;
    try {
      const abs = confine(this.#d.root, d.path);
      // The old content a write or removal replaces, kept when this node keeps versions (versions.ts).
      version = this.#d.versions?.begin(d, this.#d.db, abs) ?? null;
      // A rename or setattr keeps the file's content: if it changed here since it was journaled (capture is a
      // moment behind), the identity stored after must not vouch for it, so that capture reads it again.
      // So with a link: the stat after it is every name's of the inode, and a write made through one of them a
      // moment ago would pass for journaled (lost writes, chaos seeds 9202 and 9220).
      const keepsContent = d.kind === 'rename' || d.kind === 'setattr';
      const unseen = keepsContent ? changedSinceJournaled(this.#d.db.objectByFid(d.fid), lstatOrNull(abs))
        : d.kind === 'link' && d.target !== null && changedSinceJournaled(this.#d.db.objectByPath(d.target), lstatOrNull(confine(this.#d.root, d.target)));
      let after: string | null = abs;
      // A removal or a move of one name of a hard-linked file moves the inode's change time under its other names,
      // and capture has no event for them: those journaled as they were are so still (else each looked written
      // here since journaled, and the link steps and the apply path's checks refused or skipped them: a resync;
      // a server's move of one name, chaos seed 9218).
      const row = d.kind === 'unlink' || d.kind === 'rename' ? this.#d.db.objectByFid(d.fid) : undefined;
      const keptNames = row?.type === 'file' ? namesAsJournaled(this.#d.db, this.#d.root, row.ino, row.fid) : [];
      switch (d.kind) {
        case 'create':
        case 'write':
        case 'truncate': {
          if (staged === null) throw new Error(`apply ${d.kind} ${d.path}: nothing staged`);
          const existing = lstatOrNull(abs);
          if (d.kind === 'create' && existing !== null) throw IntersyncError.CONFLICT(d.path, 'an unjournaled file has this name here');
          if (d.kind !== 'create' && existing?.type === 'file' && existing.nlink > 1) {
            // Hard links share the inode: every name must show the new content. The new file takes each name of
            // the old inode in turn (a link of it renamed over the name), as a file with one name takes its one:
            // a reader, or a program writing the file in place, sees the old version or the new one whole.
            // Before, the content went into the shared inode in place (truncate, then copy): a local write in
            // that moment read the file empty, and went out as made on the server's content it never saw, which
            // it then replaced on every node (chaos seeds 9202 and 9203, "DESTROYED"; link-apply-atomic.test.ts).
            const others = this.#otherNamesOnDisk(d, existing);
            if (others !== null) {
              const old = existing.size >= DELTA_THRESHOLD || version !== null ? this.#keepAside(abs) : null;
              tryLchown(staged.file, d.uid, d.gid);
              chmodSync(staged.file, d.mode);
              utimesSync(staged.file, d.mtimeMs / 1000, d.mtimeMs / 1000);
              const tmps: string[] = [];
              try {
                while (tmps.length < others.length) {
                  const tmp = this.tmpName();
                  linkSync(staged.file, tmp);
                  tmps.push(tmp);
                }
              } catch (e) {
                for (const tmp of tmps) rmSync(tmp, { force: true });
                if (old !== null) rmSync(old, { force: true });
                throw e;
              }
              for (const x of others) {
                this.#d.guard.hold(x.path);
                swapped.push(x);
              }
              replacedIno = existing.ino;
              others.forEach((x, i) => renameSync(tmps[i]!, join(this.#d.root, x.path)));
              renameSync(staged.file, abs);
              consumed = true;
              if (old !== null) this.#freeOld(old, version);
              break;
            }
            // A name of the inode the journal does not know as one: the content goes into the inode in place.
            inPlace = true;
            version?.copyOf(abs);
            copyFileSync(staged.file, abs);
            rmSync(staged.file, { force: true });
            consumed = true;
            tryLchown(abs, d.uid, d.gid);
            chmodSync(abs, d.mode);
            utimesSync(abs, d.mtimeMs / 1000, d.mtimeMs / 1000);
            break;
          }
          if (!sameAttrs(staged.attrs, d)) {
            tryLchown(staged.file, d.uid, d.gid);
            chmodSync(staged.file, d.mode);
            utimesSync(staged.file, d.mtimeMs / 1000, d.mtimeMs / 1000);
          }
          const old = existing?.type === 'file' && (existing.size >= DELTA_THRESHOLD || version !== null) ? this.#keepAside(abs) : null;
          if (d.kind === 'create') placeNew(staged.file, abs, d.path);
          else renameSync(staged.file, abs);
          consumed = true;
          // A name removed here whose inode lives on in this one (FilesetDb#removedLinkIno) follows it to the new
          // file, as it does when the inode has several names: on the server it is a name of the file written.
          // Before, the note kept the old inode, and the next link to the removed name was placed as a file of
          // its own: one file on the server, two here, for good (chaos s49 seed 9255;
          // test/long/link-removed-written.test.ts).
          if (existing?.type === 'file') replacedIno = existing.ino;
          // The old version's blocks are freed by the thread pool, after this: freeing a GiB took the rename a second.
          if (old !== null) this.#freeOld(old, version);
          break;
        }
        case 'mkdir':
          try {
            mkdirSync(abs, { mode: d.mode });
          } catch (e) {
            // Made here too and not journaled yet (capture is a moment behind): the same directory, merged.
            if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || lstatOrNull(abs)?.type !== 'dir') throw e;
            merged = true;
          }
          tryLchown(abs, d.uid, d.gid);
          chmodSync(abs, d.mode);
          break;
        case 'symlink':
          symlinkSync(d.target!, abs);
          tryLchown(abs, d.uid, d.gid);
          break;
        case 'link':
          linkSync(confine(this.#d.root, d.target!), abs);
          break;
        case 'rename': {
          const to = confine(this.#d.root, d.newPath!);
          // Never over what a program made at the new name, even a moment ago (see moveNoReplace). Before, a
          // check then rename(2) replaced a file made in between: chaos s80 seed 9250, c3's epsilon/sub/b.txt,
          // written right after its directory moved there, on no node.
          if (!moveNoReplace(abs, to)) throw IntersyncError.CONFLICT(d.newPath!, 'an unjournaled file has this name here');
          after = to;
          break;
        }
        case 'unlink':
          rmIfThere(() => version?.moveIn(abs) === true || unlinkSync(abs));
          after = null;
          break;
        case 'rmdir':
          try {
            rmIfThere(() => rmdirSync(abs));
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== 'ENOTEMPTY') throw e;
            if (this.#d.keepsIgnored?.(d.path) !== true) throw IntersyncError.CONFLICT(d.path, 'directory holds unjournaled files here');
            this.#d.log.info({ path: d.path }, 'directory removed by a peer kept here: it holds ignored names');
          }
          after = null;
          break;
        case 'setattr': {
          const st = lstatOrNull(abs);
          if (st === null) throw IntersyncError.CONFLICT(d.path, 'gone here');
          tryLchown(abs, d.uid, d.gid);
          if (st.type !== 'symlink') chmodSync(abs, d.mode);
          if (st.type === 'file') utimesSync(abs, d.mtimeMs / 1000, d.mtimeMs / 1000);
          else if (st.type === 'symlink') lutimesSync(abs, d.mtimeMs / 1000, d.mtimeMs / 1000);
          break;
        }
      }
      const st = after === null ? null : lstatOrNull(after);
      // The map of a large file assembled here is known for its next delta; not if a write here has already
      // moved its mtime off the record's (then capture reads it).
      if (consumed && staged?.map !== undefined && st !== null && staged.map.hash === d.hash && Math.abs(st.mtimeMs - d.mtimeMs) < 1) {
        this.blockMaps.setWritten(st, staged.map);
      }
      try {
        // The note goes in the same transaction as the record: one commit, and never a record without its note cleared.
        this.#d.db.batch(() => {
          commit(st === null ? null : { ...appliedIdentity(st), racy: unseen });
          if (inflight !== null) this.#d.db.clearInflight(inflight);
          renewNames(this.#d.db, this.#d.root, keptNames);
          // The inode's other names are the new file now: the commit changed their content, this their identity
          // (and the names removed here that the old inode had follow it, see FilesetDb#removedLinkIno).
          for (const x of swapped) {
            const now = lstatOrNull(join(this.#d.root, x.path));
            if (now !== null && st !== null && now.ino === st.ino) this.#d.db.setIdentity(x.fid, appliedIdentity(now));
          }
          if (replacedIno !== null && st !== null) this.#d.db.inodeReplaced(replacedIno, st.ino);
        });
        metrics().applied(1);
        version?.committed();
      } catch (e) {
        if (!merged) this.#undo(d, abs, after);
        if (inflight !== null) this.#d.db.clearInflight(inflight);
        throw e;
      }
    } finally {
      version?.end();
      if (staged !== null && !consumed) rmSync(staged.file, { force: true });
      for (const n of names) this.#d.guard.release(n);
      for (const x of swapped) this.#d.guard.release(x.path);
    }
    return inPlace;
  }

  /**
   * A local write that landed in the file `d` replaced or removed, between the check and the change (`held`):
   * kept as a file made here, at the name when `d` removed it (a removal loses no write, as in the conflict
   * step), else beside it at a conflict name. Capture journals it like any local file.
   */
  #keepLateWrite(d: RecordDraft, held: HeldFile): void {
    try {
      if (!held.writtenSince()) return;
      const tid = this.#d.db.lastTid;
      const at = held.keep(this.#d.root, this.tmpName(), d.path, this.#d.db.meta.nodeId, tid);
      this.#d.log.warn({ path: d.path, keptAs: at, tid: formatTid(tid) }, 'a local write landed while a peer\'s change of the file was applied: kept as a file made here');
    } catch (e) {
      this.#d.log.error({ path: d.path, err: (e as Error).message }, 'cannot keep a local write that landed while a peer\'s change was applied');
    }
  }

  /**
   * A create written straight at its name, without a temp file: for a first
   * copy into an empty directory, where nobody reads half-written files and
   * every file is new (the caller notes the names first, so that a start after
   * a crash removes what it did not journal). Throws CONFLICT when the name
   * is taken; otherwise the file is complete, journaled through `commit`, or
   * not there at all.
   */
  createDirect(d: RecordDraft, buf: Buffer, commit: (identity: StatIdentity) => void, checkedDirs?: Set<string>): void {
    if (d.kind !== 'create') throw new Error(`createDirect of a ${d.kind}`);
    const abs = confine(this.#d.root, d.path, checkedDirs);
    this.#d.guard.hold(d.path);
    try {
      const identity = appliedIdentity(writeNewFile(abs, d, buf));
      try {
        commit(identity);
      } catch (e) {
        this.#undo(d, abs, abs);
        throw e;
      }
    } finally {
      this.#d.guard.release(d.path);
    }
  }

  /**
   * createDirect for many new files at once, written by the file-system
   * thread while this thread goes on (acquireThread() first). `commit` gets
   * each file's identity, or the error that left nothing at its name, in
   * order, and journals them in one transaction; if it throws, the files are
   * removed.
   */
  async createDirectMany(
    files: ReadonlyArray<{ readonly d: RecordDraft; readonly buf: Uint8Array }>, commit: (done: Array<StatIdentity | Error>) => void,
    checkedDirs?: Set<string>,
  ): Promise<void> {
    const thread = this.#thread();
    const jobs = files.map(({ d }) => {
      if (d.kind !== 'create') throw new Error(`createDirect of a ${d.kind}`);
      const abs = confine(this.#d.root, d.path, checkedDirs);
      return { abs, d: { path: d.path, mode: d.mode, uid: d.uid, gid: d.gid, mtimeMs: d.mtimeMs, hash: d.hash, size: d.size } };
    });
    for (const { d } of files) this.#d.guard.hold(d.path);
    try {
      const done = (await thread.write(jobs, files.map((f) => f.buf))).map((r) => ('failed' in r ? failureError(r) : r));
      try {
        commit(done);
      } catch (e) {
        files.forEach(({ d }, i) => {
          if (!(done[i] instanceof Error)) this.#undo(d, jobs[i]!.abs, jobs[i]!.abs);
        });
        throw e;
      }
    } finally {
      for (const { d } of files) this.#d.guard.release(d.path);
    }
  }

  /** lstat of many names on the file-system thread (acquireThread() first), for a start-up scan to share. */
  lstatMany(abs: readonly string[]): Promise<Array<DiskStat | null>> {
    return this.#thread().lstat(abs);
  }

  #fs: FsThread | null = null;
  #fsUsers = 0;

  /** Start the file-system thread, or count one more user of it (it boots while the caller prepares its work). */
  acquireThread(): void {
    this.#fs ??= new FsThread();
    this.#fsUsers++;
  }

  /** One user fewer; the last one stops the thread. */
  async releaseThread(): Promise<void> {
    if (this.#fsUsers === 0) return;
    if (--this.#fsUsers > 0) return;
    const t = this.#fs;
    this.#fs = null;
    await t?.close();
  }

  /** `fn` with the file-system thread running when `use` (given its lstat, for a start-up scan to share), stopped after. */
  async withThread<T>(use: boolean, fn: (statMany: StatMany | undefined) => Promise<T>): Promise<T> {
    if (!use) return fn(undefined);
    this.acquireThread();
    try {
      return await fn((abs) => this.lstatMany(abs));
    } finally {
      await this.releaseThread();
    }
  }

  #thread(): FsThread {
    if (this.#fs === null) throw new Error('the file-system thread is not running: acquireThread() first');
    return this.#fs;
  }

  /**
   * The journal refused a change already made on disk (disk full, say): take
   * back what can be taken back, so the disk does not hold what the journal
   * does not. A rewritten file's old content is gone; capture journals the
   * new one as a local change, so nothing is lost either way.
   */
  #undo(d: RecordDraft, abs: string, after: string | null): void {
    try {
      if (d.kind === 'create' || d.kind === 'symlink' || d.kind === 'link') rmIfThere(() => unlinkSync(abs));
      else if (d.kind === 'mkdir') rmIfThere(() => rmdirSync(abs));
      else if (d.kind === 'rename' && after !== null && !moveNoReplace(after, abs)) throw new Error('its old name is taken now');
    } catch (e) {
      this.#d.log.error({ path: d.path, err: (e as Error).message }, 'cannot undo a change the journal refused');
    }
  }

  #writeback: ChildProcess | null = null;

  /**
   * Start writing back what was applied so far, in the background (a long
   * copy overlaps its disk writes with its work, and the flush that follows
   * has less left to do). Makes nothing durable by itself: flush() does.
   */
  startWriteback(): void {
    if (this.#writeback !== null) return;
    try {
      const child = spawn('sync', ['-f', this.#d.root], { stdio: 'ignore' });
      child.unref(); // a stop does not wait for it
      this.#writeback = child;
      const done = (): void => {
        if (this.#writeback === child) this.#writeback = null;
      };
      child.once('exit', done);
      child.once('error', done); // no coreutils sync: flush() says what it can
    } catch {
      this.#writeback = null;
    }
  }

  /** Make everything applied so far durable: file data and names, then the journal. */
  flush(): void {
    try {
      execFileSync('sync', ['-f', this.#d.root], { stdio: 'ignore' });
    } catch {
      // Without coreutils' syncfs, fall back to syncing the journal only; the start-up scan re-checks.
    }
    this.#d.db.sync();
  }

  /** Where uploaded content waits for the record that names it. */
  stagedPath(hash: string): string {
    return join(this.#d.tmpDir, `staged-${hash}`);
  }

  /** A local file that holds content `hash` and has not changed since it was journaled, if any (`staged`: an upload). */
  #localCopy(hash: string): { abs: string; staged: boolean } | null {
    const staged = this.stagedPath(hash);
    if (existsSync(staged)) return { abs: staged, staged: true };
    for (const o of this.#d.db.objectsByHash(hash)) {
      if (o.type !== 'file' || o.racy) continue;
      const abs = join(this.#d.root, o.path);
      const st = lstatOrNull(abs);
      if (st !== null && unchangedSince(o, st)) return { abs, staged: false };
    }
    return null;
  }

  /** A second name in the temp folder for the large file at `abs` about to be replaced, or null (its own fault: none needed). */
  #keepAside(abs: string): string | null {
    const keep = this.tmpName();
    try {
      linkSync(abs, keep);
      return keep;
    } catch {
      return null;
    }
  }

  /** The old inode's link #keepAside made, once the new content is in place: a version (versions.ts), or freed. */
  #freeOld(old: string, version: PendingVersion | null): void {
    if (version?.take(old) !== true) void unlink(old).catch(() => undefined);
  }

  /** A fresh temp path in the fileset's temp folder, on the same file system as the tree. */
  tmpName(): string {
    return join(this.#d.tmpDir, `apply-${process.pid}-${randomBytes(6).toString('hex')}`);
  }

  /**
   * The names of `existing`'s inode other than `d.path`, as journaled and on disk now; null when they are not all
   * of its names (one the journal does not know as one of them: replacing the others would split it off).
   */
  #otherNamesOnDisk(d: RecordDraft, existing: DiskStat): ObjectRow[] | null {
    const others = this.#d.db.objectsByIno(existing.ino)
      .filter((x) => x.fid !== d.fid && x.path !== d.path && x.type === 'file' && lstatOrNull(join(this.#d.root, x.path))?.ino === existing.ino);
    return others.length + 1 === existing.nlink ? others : null;
  }

  /** The first of `d`'s server names of the inode (links) that is a file of its own here, changed on disk since it was journaled. */
  #apartWrittenSince(d: RecordDraft & { readonly links?: readonly Fid[] | null }): string | null {
    if ((d.kind !== 'write' && d.kind !== 'truncate' && d.kind !== 'setattr') || d.links === undefined || d.links === null) return null;
    const db = this.#d.db;
    const own = db.objectByFid(d.fid);
    for (const fid of d.links) {
      if (fid === d.fid) continue;
      const x = db.objectByFid(fid);
      if (x?.type !== 'file' || x.ino === null || (own?.ino !== null && x.ino === own?.ino)) continue;
      const st = lstatOrNull(join(this.#d.root, x.path));
      if (st !== null && (st.ino !== x.ino || st.mtimeNs !== x.mtimeNs || st.ctimeNs !== x.ctimeNs)) return x.path;
    }
    return null;
  }

  /** Remove temp files a killed process left behind. */
  static cleanTmp(tmpDir: string): void {
    rmSync(tmpDir, { recursive: true, force: true });
    mkdirSync(tmpDir, { recursive: true, mode: 0o700 });
  }
}

function changedSinceJournaled(o: ObjectRow | undefined, st: DiskStat | null): boolean {
  if (o === undefined || st === null || o.type !== 'file') return false;
  return o.racy || !unchangedSince(o, st);
}

function unchangedSince(o: ObjectRow, st: DiskStat): boolean {
  return o.ino === st.ino && o.size === st.size && o.mtimeNs === st.mtimeNs && o.ctimeNs === st.ctimeNs;
}

/** Content this node wrote itself is known exactly: its stat is not racy. */
function appliedIdentity(st: DiskStat): StatIdentity {
  return { ino: st.ino, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, racy: false };
}

function sameAttrs(a: Attrs | undefined, d: Attrs): boolean {
  return a !== undefined && a.mode === d.mode && a.uid === d.uid && a.gid === d.gid && a.mtimeMs === d.mtimeMs;
}

/**
 * A new file at `abs`: linked there (a link never replaces a name), then its staging name removed. A local file
 * made at the name after the check (a program's create or rename-over a moment ago, not journaled yet) stays,
 * and the record is refused as it is at the check. Before, the staged file was renamed over it: the local file
 * was on no node (chaos s70 seed 9245: c2's `replace delta/deep/f.json`, within milliseconds of the server's
 * create of the same name).
 */
function placeNew(staged: string, abs: string, path: string): void {
  try {
    linkSync(staged, abs);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw IntersyncError.CONFLICT(path, 'an unjournaled file has this name here');
    // A file system without hard links: the rename, after a last look at the name.
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw e;
    if (lstatOrNull(abs) !== null) throw IntersyncError.CONFLICT(path, 'an unjournaled file has this name here');
    renameSync(staged, abs);
    return;
  }
  unlinkSync(staged);
}

function rmIfThere(fn: () => void): void {
  try {
    fn();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

function tryLchown(abs: string, uid: number, gid: number): void {
  if (!isRoot) return;
  try {
    lchownSync(abs, uid, gid);
  } catch {
    // a uid this system lacks: keep the file with its current owner
  }
}
