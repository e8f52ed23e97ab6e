import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, linkSync, mkdirSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Clock } from '#core/clock.js';
import { IntersyncError } from '#core/errors.js';
import { NO_VERSION, ROOT_FID, formatTid, parseTid, type Fid, type NodeId, type Tid } from '#core/ids.js';
import { baseName, depthOf, isUnder, joinRel, parentOf } from '#core/paths.js';
import type { KmlRecord, LmlRecord, RecordDraft } from '#core/record.js';
import type { ApplyPath, ContentSource } from '#apply/apply-path.js';
import { removedLink } from '#apply/link-align.js';
import { namesAsJournaled, renewNames } from '#apply/other-names.js';
import { placedHere } from '#apply/placed.js';
import type { FilesetDb, ObjectRow } from '#journal/fileset-db.js';
import { conflictKind, decide, formatPolicy, type ConflictKind, type Decision, type PolicyConfig } from '#policy/conflict-policy.js';
import { EMPTY_SHA256, hashFileSync, lstatOrNull, moveNoReplace } from '#fsio/disk.js';
import type { EchoGuard } from '#fsio/echo-guard.js';
import { conflictName } from '#core/conflict-name.js';
import { localNamesOf, localPath, renamesOver } from './local-names.js';

/** Records that give a name (the new one, for a rename). */
const NAMES = new Set(['create', 'mkdir', 'symlink', 'link', 'rename']);

export interface ResolverDeps {
  readonly db: FilesetDb;
  readonly apply: ApplyPath;
  readonly guard: EchoGuard;
  readonly source: ContentSource;
  readonly root: string;
  readonly conflictsDir: string;
  readonly node: string;
  readonly serverNode: () => string;
  readonly policy: () => PolicyConfig;
  readonly hook: () => string | null;
  readonly log: Logger;
  readonly clock: Clock;
}

/** What to do after the record was applied: the local intent redone as ordinary local changes. */
export type Redo = () => void;

/**
 * The reconnection sequence's conflict step, on the client: a record from the
 * server meets local changes the server has not accepted. Non-overlapping
 * changes merge (a rename or chmod here and a write there both survive);
 * overlapping ones go to the site's policy. The server's record is always
 * applied (the client's KML stays the server's); the local side's intent is
 * then redone as ordinary local changes, which capture journals and the
 * reintegrator ships. No data is lost: keep-both keeps the local version
 * beside the name, the other policies keep the losing content in the
 * fileset's conflicts folder unless told to discard it.
 */
export class ConflictResolver {
  readonly #d: ResolverDeps;
  #count = 0;
  /** Names the redo steps changed (see takeRedone). */
  #redone = new Set<string>();

  constructor(d: ResolverDeps) {
    this.#d = d;
  }

  get count(): number {
    return this.#count;
  }

  /**
   * The names redo steps, rescue and reclaim changed since the last call: the caller has capture journal them
   * at once. Before, capture met them at its next event only, and for that moment the node said it had nothing
   * pending while a local version kept beside was on disk and in no journal (CI, test/written-while-fetched).
   */
  takeRedone(): string[] {
    const names = [...this.#redone];
    this.#redone.clear();
    return names;
  }

  /**
   * Prepare this node so that `r` applies, and return what to do once it has:
   * null when nothing conflicts; `{ applied }` when `r` needs no applying, this
   * step journaled it (both sides made the same directory; an object removed
   * here placed where the server's move leaves it), with what to do after. `sent` is the record as the server
   * sent it, in the server's names (`r` is in this node's).
   */
  async prepare(r: KmlRecord, sent: KmlRecord = r): Promise<Redo[] | { readonly applied: Redo[] } | null> {
    this.#touched = false;
    this.#applied = false;
    this.#sent = sent;
    const redo: Redo[] = [];
    const absorbed = await this.#names(r, redo);
    if (absorbed) return { applied: [] };
    await this.#parents(r);
    await this.#object(r, redo);
    if (this.#applied) return { applied: redo };
    this.#missedVersion(r);
    // Where the directory is here (the step may have left it where it is, `stay`). Not here (removed here too):
    // what holds its name here is another object, whose entries are not the removed directory's. Before, they
    // were moved beside it as entries it gained (chaos s53 seed 9260; test/long/removed-both-taken.test.ts).
    const dir = r.kind === 'rmdir' ? this.#d.db.objectByFid(r.fid) : undefined;
    if (dir?.type === 'dir') this.#emptyForRmdir({ ...r, path: dir.path });
    return redo.length === 0 && !this.#touched ? null : redo;
  }

  /**
   * The record is made against a version of its object newer than this node's, and nothing here changed the
   * object (no pending record of its own or through another name of its inode: the step above settled those).
   * The stream is contiguous, so no server record is missing: this node missed a version the server gave
   * the object through a name linked to it there and not here. Nothing local meets the record: it is not a
   * conflict, and it applies (content the node lacks is fetched after it). Before, it did not apply three
   * times and the client resynced the whole fileset.
   */
  #missedVersion(r: KmlRecord): void {
    if (['create', 'mkdir', 'symlink', 'link'].includes(r.kind)) return;
    const db = this.#d.db;
    const o = db.objectByFid(r.fid);
    if (o === undefined || o.version >= r.preVersion || db.hasPendingLocal(r.fid)) return;
    if (o.type === 'file' && o.ino !== null && db.objectsByIno(o.ino).some((x) => x.fid !== o.fid && db.hasPendingLocal(x.fid))) return;
    this.#d.log.warn({ path: r.path, tid: formatTid(r.tid), here: formatTid(o.version), server: formatTid(r.preVersion) }, 'a version of the object given on the server through another name was missed here: taken');
    db.takeServerVersion(r.fid, r.preVersion);
  }

  #touched = false;
  /** The record being prepared, in the server's names. */
  #sent: KmlRecord | null = null;
  /** The step journaled the record itself (ConflictResolver#object, an object placed where the server's move leaves it). */
  #applied = false;

  /**
   * A server's move of a directory into one that, here, a pending local move put inside that very directory
   * (b into a here, a into b there): in this node's names the server's move is one into itself. The server's
   * move stands: the local move is undone (the directory goes back to its name, with what it holds and the
   * pending records below it) and its record dropped, so the record applies. Returns whether it did; the
   * caller names the record anew. Before, the record did not apply three times and the client resynced.
   */
  breakCycle(sent: KmlRecord): boolean {
    if (sent.kind !== 'rename' || sent.newPath === null) return false;
    const db = this.#d.db;
    const renames = db.pendingRenames();
    // In this node's names, as ClientNode#applyForwarded places the record (by its parent's fid too).
    const here = (): KmlRecord => placedHere(db, localNamesOf(sent, renamesOver(db, sent.tid)), (fid) => db.hasPendingLocal(fid));
    const local = here();
    if (local.newPath === null || !isUnder(local.newPath, local.path)) return false;
    let undone = false;
    for (const x of [...renames].reverse()) {
      const cur = db.objectByFid(x.fid);
      if (cur?.type !== 'dir' || cur.path === local.path || !isUnder(cur.path, local.path) || !isUnder(local.newPath, cur.path)) continue;
      if (!this.#freeForReturn(x.path, sent.tid)) continue;
      if (lstatOrNull(join(this.#d.root, parentOf(x.path)))?.type !== 'dir') continue;
      this.#move(cur.path, x.path);
      db.relocateLocal(x.fid, x.path);
      db.rewriteLml([], db.localRecordsOf(x.fid).filter((y) => y.kind === 'rename' && y.path === y.newPath).map((y) => y.seq));
      this.#record(sent, x.path, 'rename/rename', 'remote', null, 'resolved', `the server moved ${sent.path} to ${sent.newPath}: the move of ${x.path} into it here is undone`);
      this.#d.log.warn({ path: x.path, was: cur.path, tid: formatTid(sent.tid) }, 'conflict: a directory moved here into one the server moved into it: moved back');
      undone = true;
      const now = here();
      if (!isUnder(now.newPath!, now.path)) break;
    }
    return undone;
  }

  /**
   * The name a directory goes back to, to break a cycle, is free, or is made free: an object made or moved
   * there here since (not the server's: the server still holds the moved directory at that name) goes
   * beside it, with its pending records. Before, the name stayed taken, the cycle stayed, and the client
   * resynced, then lost the server's files below the directory (chaos seed 9201).
   */
  #freeForReturn(name: string, serverTid: Tid): boolean {
    const db = this.#d.db;
    const holder = db.objectByPath(name);
    if (holder === undefined) return lstatOrNull(join(this.#d.root, name)) === null;
    const made = db.pendingOnto(name).find((y) => y.fid === holder.fid);
    return made !== undefined && this.setAside(made, serverTid) !== null;
  }

  /**
   * A pending record that makes an object at a name, or moves one onto it, that the server keeps refusing
   * because another object has the name there, while this node holds all the server's records (the step
   * that meets the server's record at that name did not see it coming: it came with a directory, or while
   * this record was on its way). Like that step's keep-both: the local object goes beside the name, here and
   * in its pending records, and ships there. Returns where it went, or null when it cannot. Before, the
   * client resynced the whole fileset.
   */
  setAside(x: LmlRecord, serverTid: Tid): string | null {
    const db = this.#d.db;
    const name = x.kind === 'rename' ? x.newPath : ['create', 'mkdir', 'symlink', 'link'].includes(x.kind) ? x.path : null;
    if (name === null) return null;
    const aside = this.#conflictPath(name, serverTid);
    const o = db.objectByFid(x.fid);
    if (o !== undefined && o.path === name) {
      this.#move(name, aside);
      db.relocateLocal(o.fid, aside);
    } else {
      db.renameInLml(x.fid, x.seq, name, aside); // moved on here since: only its records name it
    }
    this.#record({ tid: serverTid, origin: this.#d.serverNode() as NodeId }, name, 'name/name', 'keep-both', aside, 'open', 'the server has another object at this name');
    this.#d.log.warn({ path: name, keptAs: aside }, 'conflict: the server has another object at a name a local change needs; local kept beside');
    return aside;
  }

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
  async restoreRemoved(x: LmlRecord, current: Tid): Promise<boolean> {
    const db = this.#d.db;
    // A file's removal only (a symlink's names its target): content is what a file removed unseen loses.
    if (x.kind !== 'unlink' || x.target !== null || db.objectByFid(x.fid) !== undefined) return false;
    // The server's attributes of the object: those of the record that gave it its version (this node holds it),
    // the change the removal meets; a move says none (chaos s76 seed 9244: the mode of a move's record came back).
    const last = this.#attrsRecord(x.fid, current);
    // The name at this node's names now: its directory may have moved here since, the move pending after the
    // removal (x.path is the server's name, the removal's era). Before, the step looked for the old directory,
    // gave up, and the client resynced (chaos s70 seed 9242, c1: `rm beta/deep/d.md; mv beta/deep alpha/sub`).
    const here = db.nameAfter(x.path, x.seq);
    // Its directory removed here too (`rm x/d; rmdir x`, the removals pending): the directory comes back first, as
    // it does for a server record that needs it (#parents), its removal losing with the file's. Before, the step
    // gave up, the removal was refused three times, and the client resynced (chaos s53 seed 9242, c1;
    // test/long/removed-link-last.test.ts).
    if (!this.#dirOnDisk(parentOf(here))) {
      await this.#parents({ ...x, kind: 'create', newPath: null, target: null, preVersion: NO_VERSION, tid: current, postVersion: current, digest: '0'.repeat(64), originSeq: null, origin: last?.origin ?? (this.#d.serverNode() as NodeId) });
      if (!this.#dirOnDisk(parentOf(here))) return false;
    }
    const attrs = last !== undefined ? { mode: last.mode, uid: last.uid, gid: last.gid, mtimeMs: last.mtimeMs } : { mode: x.mode, uid: x.uid, gid: x.gid, mtimeMs: x.mtimeMs };
    const r = { tid: current, origin: last?.origin ?? (this.#d.serverNode() as NodeId) };
    const decision = this.#decide({ origin: r.origin, mtimeMs: attrs.mtimeMs }, x.path, 'unlink/write', undefined);
    if (decision === 'local') {
      db.setLmlPreVersion(x.seq, current);
      this.#record(r, x.path, 'unlink/write', decision, null, 'resolved', 'removed again: the removal goes on the server\'s version');
      this.#d.log.warn({ path: x.path, tid: formatTid(current) }, 'conflict: a removal here met a newer version on the server; the policy has it removed');
      return true;
    }
    const base: RecordDraft = this.#d.apply.localize({ ...x, ...attrs, path: here, kind: 'write', newPath: null, target: null, hash: null, size: null, preVersion: current });
    const { staged, placeholder } = await this.#d.apply.stageCurrent(base, this.#d.source);
    if (placeholder) {
      // The server holds no content at the object's name now (moved or removed, not journaled yet): its records
      // say what became of it.
      rmSync(staged.file, { force: true });
      return false;
    }
    const taken = db.objectByPath(here) !== undefined || lstatOrNull(join(this.#d.root, here)) !== null;
    const at = taken ? this.#conflictPath(here, current) : here;
    this.#d.guard.hold(at);
    try {
      chmodSync(staged.file, base.mode);
      utimesSync(staged.file, base.mtimeMs / 1000, base.mtimeMs / 1000);
      renameSync(staged.file, join(this.#d.root, at));
    } catch (e) {
      rmSync(staged.file, { force: true });
      throw e;
    } finally {
      this.#d.guard.release(at);
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
        this.#restoreBase({ ...base, path: at, hash: staged.hash, size: staged.size }, current, 'file');
      });
    } catch (e) {
      this.#removeHeld(at); // nothing journaled: the next try meets the same
      throw e;
    }
    if (taken) {
      this.#record(r, x.path, 'unlink/write', 'keep-both', at, 'open', 'removed here, changed on the server since: the server\'s version kept beside, another object has the name here');
      this.#d.log.warn({ path: x.path, keptAs: at, tid: formatTid(current) }, 'conflict: removed here, changed on the server since; the server\'s version is back beside the name');
    } else {
      this.#record(r, x.path, 'unlink/write', 'remote', null, 'resolved', 'the server\'s change brought it back');
      this.#d.log.warn({ path: x.path, tid: formatTid(current) }, 'conflict: removed here, changed on the server since; the server\'s version is back');
    }
    return true;
  }

  /** Names the record needs, held here by another object the server does not have there. */
  async #names(r: KmlRecord, redo: Redo[]): Promise<boolean> {
    const db = this.#d.db;
    const names = r.kind === 'rename' ? [r.newPath!] : ['create', 'mkdir', 'symlink', 'link'].includes(r.kind) ? [r.path] : [];
    // The record's directory (by fid) is not here, and another one holds its name here (moved over it when it
    // was empty): what this node has at the name is in the other directory, no rival of the new name, and
    // #parents brings the record's directory back first (#removedParent). Before, the local object at the
    // name was set beside, and kept a conflict name the server never gave it (chaos s38 seed 9221, c2: "state
    // differs … with nothing pending", a resync; test/long/moved-over-same-name.test.ts).
    const elsewhere = (name: string): boolean => {
      if (r.parent === undefined || r.parent === null || r.parent === ROOT_FID || db.objectByFid(r.parent) !== undefined) return false;
      const dir = parentOf(name) === '' ? undefined : db.objectByPath(parentOf(name));
      return dir !== undefined && dir.fid !== r.parent;
    };
    for (const name of names) {
      if (elsewhere(name)) continue;
      // A local create (or move) onto this name not accepted yet, whose object has moved on here since: the
      // server would refuse it for ever (the name is the server's now). It ships under a conflict name, and
      // its later move follows from there. (Records below a directory made there keep their paths: a gap.)
      for (const x of db.pendingOnto(name)) {
        const now = db.objectByFid(x.fid);
        if (x.fid === r.fid || now?.path === name) continue;
        // Its directory moved on by a later pending rename (and another one took its name since): the record
        // names another directory than `name` does in this node's names now, and replays before that move on
        // the server. No rival. Before, it shipped under a conflict name while its file kept its own (chaos s58
        // seed 9265; test/long/made-in-moved-dir.test.ts).
        if (db.nameAfter(parentOf(name), x.seq) !== parentOf(name)) continue;
        // So when it gives its name in another directory (RecordDraft.parent) than the one at the name's parent
        // here now, whatever its path says (a conflict step set its directory aside, the record kept the old
        // name): the server places it by that directory (chaos s61 seed 9246; test/long/made-in-set-aside-dir).
        const dirHere = parentOf(name) === '' ? ROOT_FID : db.objectByPath(parentOf(name))?.fid;
        if (x.parent !== undefined && x.parent !== null && dirHere !== undefined && x.parent !== dirHere) continue;
        // With no pending move of its own after it, nothing in the LML takes it from the name to where it is
        // here (a conflict step's move whose records kept the old name): it ships at its name here. Before, it
        // shipped under a fresh conflict name, the client held it at the other, and resynced ("state differs …
        // with nothing pending"; chaos s41 seeds 9270, 9275, s42 9247, s43 9301;
        // test/long/made-here-elsewhere.test.ts).
        const movesOn = db.localRecordsOf(x.fid).some((y) => y.seq > x.seq && y.kind === 'rename');
        // (Beside it, in the same directory: the record's directory, by fid, stays right.)
        const here = !movesOn && now !== undefined && parentOf(now.path) === parentOf(name) && db.pendingOnto(now.path).every((y) => y.fid === x.fid);
        const aside = here ? now.path : this.#conflictPath(name, r.tid);
        db.renameInLml(x.fid, x.seq, name, aside);
        this.#touched = true;
        this.#record(r, name, 'name/name', 'keep-both', aside, 'resolved', 'a local change not accepted yet needed this name; it ships under another');
        this.#d.log.info({ seq: String(x.seq), kind: x.kind, path: name, to: aside, at: now?.path, tid: formatTid(r.tid) }, 'a local change not accepted yet needed a name the server gave: it ships under another');
      }
      const o = db.objectByPath(name);
      if (o === undefined || o.fid === r.fid) continue;
      if (o.version !== NO_VERSION && o.version > r.tid) {
        // The name is ours by a later server record (our change, accepted before the stream brought this older
        // one): step aside for now; our record puts it back when it arrives (ClientNode#settleOwnName).
        const aside = this.#conflictPath(name, r.tid);
        this.#move(name, aside);
        db.relocateLocal(o.fid, aside);
        this.#touched = true;
        this.#d.log.info({ path: name, aside, tid: formatTid(r.tid), ours: formatTid(o.version) }, 'name held by our own later change: stepped aside until its record arrives');
        continue;
      }
      // Both made this directory: one it is. Only a directory made at this name merges; one moved here by a
      // pending rename is another object (the server would refuse the rename of its merged fid for ever).
      if (r.kind === 'mkdir' && o.type === 'dir' && o.version === NO_VERSION && this.#madeHere(o.fid, name)) {
        db.adoptDir(o.fid, r, this.#d.serverNode(), this.#d.clock.now());
        this.#record(r, name, 'name/name', 'keep-both', null, 'resolved', 'same directory on both sides: merged');
        return true;
      }
      const decision = this.#decide(r, name, 'name/name', o);
      const aside = this.#conflictPath(name, r.tid);
      this.#move(name, aside);
      db.relocateLocal(o.fid, aside);
      this.#touched = true;
      if (decision === 'remote' && o.type === 'file') {
        // The server's object takes the name; the local one leaves the tree, kept in the conflicts folder.
        const kept = this.#keepFile(aside, name, r.tid);
        db.dropLocal(o.fid);
        db.forget(o.fid);
        this.#remove(aside);
        this.#record(r, name, 'name/name', decision, kept, 'resolved', 'the server\'s object took the name');
      } else if (decision === 'local') {
        // The local object takes the name back once the server's is in place; the server's moves beside it.
        redo.push(() => {
          const theirs = this.#conflictPath(name, r.tid);
          this.#unguardedRename(name, theirs);
          this.#unguardedRename(aside, name);
        });
        this.#record(r, name, 'name/name', decision, null, 'resolved', 'the local object keeps the name');
      } else {
        this.#record(r, name, 'name/name', 'keep-both', aside, 'open', null);
        this.#d.log.warn({ path: name, keptAs: aside, tid: formatTid(r.tid) }, 'conflict: name taken on both sides; local kept beside');
      }
    }
    return false;
  }

  /**
   * The directory the server's new name goes in (by fid, RecordDraft.parent) was removed here, and another
   * object took its name here meanwhile (a directory moved over it, `mv x d` onto an empty d): update beats
   * delete, so the removal is dropped and the directory comes back at its name, with what the server put in
   * it; the object that took the name moves beside (its pending move now ends there). Before, the server's
   * entry went into the other directory, and the removal was refused for ever ("directory is not empty
   * here"): a resync (chaos seeds 9201, 9203, 9206).
   */
  #removedParent(r: KmlRecord): void {
    const db = this.#d.db;
    const dir = r.kind === 'rename' || ['create', 'mkdir', 'symlink', 'link'].includes(r.kind) ? r.parent : null;
    if (dir === undefined || dir === null || dir === ROOT_FID || db.objectByFid(dir) !== undefined) return;
    const removal = db.localRecordsOf(dir).find((x) => x.kind === 'rmdir');
    if (removal === undefined) return;
    // Its name now: later pending moves of directories above it took the name along (chaos s33 seed 9228, c3:
    // mv beta/sub alpha/sub over an empty alpha/sub, then mv alpha gamma, while the server moved a file into
    // alpha/sub: the file went into the moved directory, on this node only, a resync;
    // test/long/moved-over-gained-dir.test.ts).
    const name = localPath(removal.path, db.pendingRenames().filter((x) => x.seq > removal.seq));
    const there = db.objectByPath(name);
    if (there === undefined) return; // no name taken: #parents sees to it
    this.#takeBack(r, removal, there, name);
  }

  /**
   * The same for a server's change of an object removed here with its directory (`rm -r d`), where the record
   * names it by its path alone (a write, truncate or setattr): a directory on that path that another object
   * made or moved onto the name here since the removal of the directory the server has there (`mkdir d` after
   * `rm -r d`) is not the server's. The server's directory comes back at its name, where the object comes back
   * (ConflictResolver#object), and the local one goes beside. Before, the object came back inside the local
   * directory, the removal of the server's stayed pending and was refused for ever ("directory is not empty
   * here", a resync; chaos seed 9203, c2: rm -r alpha/deep, mkdir -p alpha/deep, alpha/deep/d.md chmodded there).
   */
  #removedAncestor(r: KmlRecord): void {
    const db = this.#d.db;
    // A change of an object not here, or a new name in a directory not here (chaos s32 seed 9223, c1: rm -r
    // gamma, then a new gamma, while the server made gamma/sub/d.md: the conflict step brought the server's
    // gamma/sub back inside the new gamma, the first directory on the way, then the server's gamma at its name
    // with the new one beside, and sub stayed in the new one, on this node only: "state differs … with nothing
    // pending", a resync; test/long/removed-dir-taken.test.ts).
    const target = r.kind === 'rename' ? r.newPath! : r.path;
    if (['write', 'truncate', 'setattr'].includes(r.kind)) {
      if (db.objectByFid(r.fid) !== undefined) return;
    } else if (!NAMES.has(r.kind) || parentOf(target) === '' || db.objectByPath(parentOf(target)) !== undefined) {
      return;
    }
    for (let p = parentOf(target); p !== ''; p = parentOf(p)) {
      const there = db.objectByPath(p);
      if (there === undefined) continue; // removed here and free: #parents brings it back
      const removal = this.#removalTaken(p, there);
      if (removal === undefined) return;
      if (this.#throughOwnMove(target, p, there.fid)) return;
      this.#takeBack(r, removal, there, p);
      return;
    }
  }

  /**
   * The record's `target` is below `p` only through a pending move of `fid`, the object at `p` here: the
   * server means that object, moved here onto the name of a directory removed here, not the removed one.
   * Before, the removed directory came back at its name and the object went beside with the server's entry
   * in it (chaos s32 seed 9221, c2: mv gamma.conflict-… gamma/sub over an empty gamma/sub, while the server
   * chmodded a file in the moved directory: the file ended up in the directory removed here, a resync).
   */
  #throughOwnMove(target: string, p: string, fid: Fid, old = false): boolean {
    const sent = this.#sent;
    if (sent === null) return false;
    const db = this.#d.db;
    const serverTarget = sent.kind === 'rename' && !old ? sent.newPath! : sent.path;
    const others = renamesOver(db, sent.tid).filter((x) => x.fid !== fid);
    return isUnder(target, p) && !isUnder(localPath(serverTarget, others), p);
  }

  /**
   * A directory above `path` (the record's old name, in this node's names) is here by a local change the
   * server has not seen (made or moved onto that name, not reached through its own move): the server's
   * directory of that name is not here. Before, an object the server moved out of it went back into the
   * other directory by name, and the server's move became one onto itself there ("a directory cannot move
   * inside itself", a resync; chaos s32 seed 9229, c2: mv e/sub g, rmdir e, mv d e, while the server moved
   * e/sub to d/sub; test/long/moved-from-replaced-dir.test.ts).
   */
  #takenHere(path: string): boolean {
    const db = this.#d.db;
    for (let p = parentOf(path); p !== ''; p = parentOf(p)) {
      const o = db.objectByPath(p);
      if (o === undefined || !db.pendingOnto(p).some((x) => x.fid === o.fid)) continue;
      if (!this.#throughOwnMove(path, p, o.fid, true)) return true;
    }
    return false;
  }

  /**
   * The directory removed by `removal` comes back at `p`, its name here now (the removal's, or where later
   * pending moves of directories above took that name), which `there` took here meanwhile: that goes beside.
   */
  #takeBack(r: KmlRecord, removal: LmlRecord, there: ObjectRow, p: string): void {
    const db = this.#d.db;
    this.#takeBackAbove(r, parentOf(p));
    if (parentOf(p) !== '' && db.objectByPath(parentOf(p))?.type !== 'dir') return;
    // The directory that took the name went beside with the one above it (#takeBackAbove): the name is free.
    const holder = db.objectByPath(p);
    if (holder === undefined ? lstatOrNull(join(this.#d.root, p)) !== null : holder.fid !== there.fid) return;
    const to = holder === undefined ? null : this.#conflictPath(p, r.tid);
    if (to !== null) {
      this.#move(p, to);
      db.relocateLocal(there.fid, to);
    }
    db.rewriteLml([], [removal.seq]); // the removal alone loses: a pending move of the directory still ships
    this.#freeName(removal, r.tid);
    this.#mkdir(p, removal.mode);
    this.#restoreBase({ ...removal, path: p, kind: 'mkdir' }, removal.preVersion, 'dir');
    this.#touched = true;
    if (to === null) {
      this.#record(r, p, 'rmdir/gained', 'remote', null, 'resolved', 'directory removed here gained entries on the server: kept');
      this.#d.log.warn({ path: p, tid: formatTid(r.tid) }, 'conflict: a directory removed here gained entries on the server; it is kept');
      return;
    }
    this.#record(r, p, 'rmdir/gained', 'keep-both', to, 'open', null);
    this.#d.log.warn({ path: p, keptAs: to, tid: formatTid(r.tid) }, 'conflict: a directory removed here gained entries on the server; it is back, and what took its name here is kept beside');
  }

  /**
   * The directory at `q` here took the name of one removed here (its removal pending, the taking after it):
   * the removed one, whose entry comes back below it, comes back first, and the other goes beside. Before, the
   * entry came back inside the other directory (chaos s34 seed 9260, c1: rmdir gamma/deep, mv epsilon gamma
   * over the empty gamma, while the server made gamma/deep/h: "state differs … with nothing pending", a resync;
   * test/long/moved-over-gained-parent.test.ts).
   */
  #takeBackAbove(r: KmlRecord, q: string): void {
    if (q === '') return;
    const db = this.#d.db;
    const holder = db.objectByPath(q);
    if (holder?.type !== 'dir') return;
    const removal = this.#removalTaken(q, holder);
    if (removal !== undefined) this.#takeBack(r, removal, holder, q);
  }

  /** The pending removal of a directory at `p` whose name `holder` took here after it (made or moved onto it since). */
  #removalTaken(p: string, holder: ObjectRow): LmlRecord | undefined {
    const db = this.#d.db;
    const removal = db.pendingRemovals('rmdir', p).find((x) => x.path === p && x.fid !== holder.fid && db.objectByFid(x.fid) === undefined);
    return removal !== undefined && db.pendingOnto(p).some((x) => x.fid === holder.fid && x.seq > removal.seq) ? removal : undefined;
  }

  /**
   * A directory removed here comes back at its name (its removal dropped): a pending record that made another
   * object there, or moved one onto the name, after that removal, and whose object has moved on since (`mkdir d`
   * then `mv d e` here), ships under a conflict name, with what followed it there; else the server, which kept
   * its directory at the name, would refuse it for ever (chaos seed 9212).
   */
  #freeName(removal: LmlRecord, tid: Tid): void {
    const db = this.#d.db;
    for (const x of db.pendingOnto(removal.path)) {
      if (x.seq < removal.seq || x.fid === removal.fid || db.objectByFid(x.fid)?.path === removal.path) continue;
      // Free here and in the pending records too (two such records get two names).
      const aside = conflictName(removal.path, this.#d.node, tid, (p) => db.objectByPath(p) !== undefined || db.pendingOnto(p).length > 0 || lstatOrNull(join(this.#d.root, p)) !== null);
      db.renameInLml(x.fid, x.seq, removal.path, aside);
      this.#d.log.info({ seq: String(x.seq), kind: x.kind, path: removal.path, to: aside, tid: formatTid(tid) }, 'a local change not accepted yet gave the name of a directory removed here and back now: it ships under another');
    }
  }

  /** The object was made at `name` here and has not moved since (its pending records say so). */
  #madeHere(fid: Fid, name: string): boolean {
    const recs = this.#d.db.localRecordsOf(fid);
    return recs.some((x) => x.kind === 'mkdir' && x.path === name) && !recs.some((x) => x.kind === 'rename');
  }

  /** The record's parent directories, removed here but not on the server: bring them back. */
  async #parents(r: KmlRecord): Promise<void> {
    this.#removedParent(r);
    this.#removedAncestor(r);
    const target = r.kind === 'rename' ? r.newPath! : r.path;
    const missing: string[] = [];
    for (let p = parentOf(target); p !== ''; p = parentOf(p)) {
      if (this.#d.db.objectByPath(p) !== undefined) break;
      missing.unshift(p);
    }
    // The record's object removed here (with its directory, `rm -r`): its removal names the directories above it
    // as they were then, and a pending move of one above since renamed them (chaos s35 seed 9303, c1: "parent …
    // does not exist here", a resync; test/long/removed-dir-renamed-above.test.ts).
    const db = this.#d.db;
    const gone = db.objectByFid(r.fid) === undefined ? db.localRecordsOf(r.fid).find((x) => x.kind === 'unlink' || x.kind === 'rmdir') : undefined;
    const removedWith = (p: string): Fid | null => {
      if (gone === undefined) return null;
      let then = gone.path;
      for (let n = depthOf(target) - depthOf(p); n > 0; n--) then = parentOf(then);
      if (then === '') return null;
      return db.pendingRemovals('rmdir', then).find((z) => z.path === then && z.seq > gone.seq && db.objectByFid(z.fid) === undefined)?.fid ?? null;
    };
    for (const p of missing) {
      // By name, or for the record's own directory by identity (moved here before it was removed: its removal
      // names it where it was then), or as its object's removal names it.
      const byFid = (p === parentOf(target) && r.parent !== undefined && r.parent !== null ? r.parent : null) ?? removedWith(p);
      const removal = this.#d.db.pendingRemovals('rmdir', p, byFid)[0];
      if (removal === undefined) {
        if (byFid !== null && missing.length === 1) this.#removedAhead(r, p, byFid);
        return; // not a local removal: the version check reports it
      }
      // The removal alone loses (update beats delete): a pending move of the directory still ships.
      this.#d.db.rewriteLml([], [removal.seq]);
      this.#freeName({ ...removal, path: p }, r.tid);
      if (lstatOrNull(join(this.#d.root, p)) === null) this.#mkdir(p, removal.mode);
      this.#restoreBase({ ...removal, path: p, kind: 'mkdir' }, removal.preVersion, 'dir');
      this.#touched = true;
      this.#record(r, p, 'rmdir/gained', 'remote', null, 'resolved', 'directory removed here gained entries on the server: kept');
      this.#d.log.warn({ path: p, tid: formatTid(r.tid) }, 'conflict: a directory removed here gained entries on the server; it is kept');
    }
  }

  /**
   * The record's directory was removed here, and the server accepted that removal after this record (the
   * stream lags behind this node's reintegration): on the server the directory stood until then, and what
   * the records up to it put in it they took out again (else the removal would have been refused). It is
   * made again here, as it was when removed, and goes when the removal comes back (ClientNode, own records).
   * Before, the record did not apply three times ("parent … does not exist here") and the client resynced
   * (chaos seeds 9204, 9214, 9217; stream-lag.test.ts).
   */
  #removedAhead(r: KmlRecord, p: string, fid: Fid): void {
    const own = this.#d.db.ownRmdirAfter(fid, r.tid);
    if (own === undefined || lstatOrNull(join(this.#d.root, p)) !== null) return;
    this.#mkdir(p, own.mode);
    this.#restoreBase({ ...own, path: p, kind: 'mkdir' }, own.preVersion, 'dir');
    this.#touched = true;
    this.#d.log.info({ path: p, tid: formatTid(r.tid), removedAt: formatTid(own.tid) }, 'a directory removed here, its removal accepted by the server after this record: made again until it comes back');
  }

  /** The record's own object has local changes not accepted yet. */
  async #object(r: KmlRecord, redo: Redo[]): Promise<void> {
    const db = this.#d.db;
    if (['create', 'mkdir', 'symlink', 'link'].includes(r.kind)) return;
    const local = db.localRecordsOf(r.fid);
    // Hard links: a change here through another name of the inode is a change of this object too (the server's
    // change is written into the same inode, and the other name's record, made against the old version, would
    // be refused for ever).
    const viaLinks = this.#changesThroughLinks(r);
    if (local.length === 0 && viaLinks.length === 0) return;
    this.#touched = true;
    if (this.#toHeir(r, local)) return;
    const o = db.objectByFid(r.fid);
    const removedHere = o === undefined;
    // Removed on both sides: the server's removal is the end, and the local one has nothing left to do (nor the
    // object's other records here, which went with it). Nothing on disk moves; ClientNode keeps the record as
    // the server's history. Before, the object's row was made again at the server's name to apply the removal
    // to, and what held that name here meanwhile (a directory moved there, its make accepted already) went
    // beside it for good: the names differed, a resync (chaos s53 seed 9260; test/long/removed-both-taken.test.ts).
    // Not when a pending record needs it on the server (made in the directory, or linked to the file, before
    // its removal here): the steps below keep the removal, after those records (chaos s54 seed 9255, where
    // the create in the directory was refused for want of it; test/long/removed-both-used.test.ts).
    const needed = r.kind === 'rmdir' ? db.pendingInto(r.fid).length > 0 : db.pendingLinkTo(r.fid);
    if (removedHere && (r.kind === 'unlink' || r.kind === 'rmdir') && viaLinks.length === 0 && !needed) {
      db.dropLocal(r.fid);
      this.#d.log.info({ path: r.path, tid: formatTid(r.tid) }, 'removed on both sides: the local removal is dropped');
      return;
    }
    const changed = [...local, ...viaLinks];
    const contentHere = changed.some((x) => x.kind === 'write' || x.kind === 'truncate' || x.kind === 'create');
    // Where a local move left the object is where it is here now, not the name its last rename record gives it:
    // that name is of the record's time, and a later move of a directory above it (or a conflict step's, which
    // rewrote the record) took the object on. Before, the redo moved it to the name of then, whose directory was
    // elsewhere by now: ENOENT, "cannot redo a local change after a conflict", and the move was lost (chaos seeds
    // 9208, c3: `mv delta/sub/e epsilon/h`, then `mv epsilon alpha/sub`; 9213, c2; test/redo-moved.test.ts).
    const lastRename = local.filter((x) => x.kind === 'rename').at(-1);
    const renamedHere = lastRename === undefined ? null : o?.path ?? db.nameAfter(lastRename.newPath ?? lastRename.path, lastRename.seq);
    const modeHere = changed.some((x) => x.kind === 'setattr') ? o?.mode ?? null : null;
    const remoteContent = r.kind === 'write' || r.kind === 'truncate';
    const remoteGone = r.kind === 'unlink' || r.kind === 'rmdir';

    // A hard-linked name removed here whose inode lives on here under another name: what was written through
    // it is in that inode (no record of the other name says so), and on the server the names are one inode.
    // (The server removing the name too meets nothing: the write ships as the other name's, see Reconciler#carrierOf.)
    const survivor = removedHere && !remoteGone ? removedLink(this.#d.db, this.#d.root, r.fid) : undefined;

    // Removed here: its removal says what it was (a symlink's names its target). Before, a symlink removed here
    // and renamed on the server came back as an empty file, and the client resynced ("state differs").
    const removal = local.find((x) => x.kind === 'unlink' || x.kind === 'rmdir');
    const type = o?.type ?? (removal?.kind === 'rmdir' ? 'dir' : removal?.target !== null && removal?.target !== undefined ? 'symlink' : 'file');
    // The server's attributes where the row holds a chmod made here (redone after the record, see below): the
    // redo then changes the mode capture compares with, and journals it again. Before, the base took the local
    // mode, a move kept it, the redo's chmod changed nothing capture could see, and the chmod never reached the
    // server; the client differed from its digest and resynced, which lost it (chaos s51 seed 9261;
    // test/long/chmod-moved.test.ts).
    const attrs = o === undefined ? undefined : modeHere !== null ? { ...this.#serverAttrs(o, r), mtimeMs: o.mtimeMs } : { mode: o.mode, uid: o.uid, gid: o.gid, mtimeMs: o.mtimeMs };
    const base: RecordDraft = attrs !== undefined ? { ...r, ...attrs } : { ...local.at(-1)!, path: r.path };
    const finalPath = r.kind === 'rename' ? r.newPath! : r.path;
    // A name removed here whose inode lives on here under another name (nothing written through either since)
    // comes back as a name of that inode, as on the server, not as a file of its own with the server's content:
    // before, the two were one file on the server and two here, for good (chaos s42 seed 9253;
    // test/long/removed-link-moved.test.ts).
    const needsServerContent = type === 'file' && !remoteContent && !remoteGone && (contentHere || (removedHere && survivor === undefined));
    // What can fail comes before anything changes, so that a try that fails leaves the journal and the disk as
    // they were and the next one meets the same pending records: the server's content (a cut link), the
    // directory the object goes in, the name at the end of a move. Before, such a failure came after the
    // object's pending records were dropped, and the next try had nothing left to keep.
    const fetched = needsServerContent ? await this.#d.apply.stageCurrent(base, this.#d.source) : null;
    // The object goes back to the server's name of it (moved back, or made again when removed here), where the
    // record then applies. A server's move of an object whose directory is not here (removed here with it:
    // `rm -r d` here, `mv d/x y` there) puts it where the move leaves it instead, and the record is journaled
    // with it here: nothing is made in a directory that is not here, and the directory's removal stays (the
    // server only took an entry out of it). Before, the object was made again at its old name, which failed
    // (ENOENT) after its pending removal was dropped: the retries found neither ("object … does not exist
    // here"), and the client resynced (chaos seeds 9201, 9202, 9213; test/long/removed-with-dir.test.ts).
    const making = removedHere && !remoteGone;
    const back = o !== undefined && o.path !== r.path && lstatOrNull(join(this.#d.root, o.path)) !== null;
    // The server removes it, and its name there is in a directory that is not here (removed here after a move
    // took the object out of it, then a move of a directory above): the removal goes where the object is here
    // (ClientNode places the record by identity once nothing is pending). Before, it was refused ("parent …
    // does not exist here") three times, and the client resynced (chaos s40 seed 9271;
    // test/long/removed-moved-out.test.ts).
    // So when the server's name of it lies inside it here (moved out of its parent, and the parent into it):
    // moving it back is moving it inside itself (EINVAL; chaos s44 seed 9230;
    // test/long/removed-dir-moved-over.test.ts).
    const stay = back && remoteGone && (!this.#dirOnDisk(parentOf(r.path)) || isUnder(r.path, o.path));
    const moving = o !== undefined && o.path !== r.path && !stay;
    const placing = making || (back && !stay);
    const atEnd = placing && r.kind === 'rename' && (!this.#dirOnDisk(parentOf(r.path)) || this.#takenHere(r.path));
    const at = atEnd ? finalPath : stay ? o.path : r.path;
    const refuse = (why: string): never => {
      if (fetched !== null) rmSync(fetched.staged.file, { force: true });
      throw IntersyncError.CONFLICT(at, why);
    };
    if (placing && !this.#dirOnDisk(parentOf(at))) refuse(`parent ${parentOf(at)} does not exist here`);
    // (The object itself at the end: moved there here too, the same move on both sides.)
    if (atEnd && o?.path !== at && lstatOrNull(join(this.#d.root, at)) !== null) refuse('an unjournaled file has this name here');

    // Keep the local content before anything moves.
    let saved: string | null = null;
    if (o !== undefined && o.type === 'file' && contentHere && lstatOrNull(join(this.#d.root, o.path)) !== null) {
      saved = this.#keepFile(o.path, r.path, r.tid);
      this.#save(saved, r.path, r.tid);
    } else if (survivor !== undefined && contentHere) {
      saved = this.#keepFile(survivor.path, r.path, r.tid);
      this.#save(saved, r.path, r.tid);
    }
    // Names the server links to the object that are files of their own here (grouped otherwise), written
    // here: what they hold is not in the object's inode, so each is kept beside its own name too. Before, the
    // names joined the inode after this step (apply/link-align.ts) and what was written there was gone.
    const apart = this.#writtenApart(o ?? survivor, viaLinks, r.tid);

    // Back to the server's base state of the object, at the server's name, so `r` applies. The other names of
    // the inode take the server's change with it: what they changed here is redone below like this name's.
    const dropPending = (): void => {
      db.dropLocal(r.fid);
      db.rewriteLml([], viaLinks.map((x) => x.seq));
    };
    // In one transaction from here: a process killed in between leaves the pending records as they were (they
    // are what the next start sees of the local changes), never those records dropped while the object's row
    // still holds the local content as if the server had it (then a fetch put the server's content over it, and
    // the local write was on no node: chaos s45 seed 9291, c1).
    db.batch(() => {
      if (!atEnd) dropPending();
      // The server's name may be held here by another object now (made or moved here meanwhile): move it aside.
      // Not when the object goes straight to the end of the server's move: the name is not needed, and whatever
      // holds it keeps it. Before, it was moved aside still, with no record (its name came from its directory's
      // pending move): the server kept the old name, this node the conflict name, and it resynced (chaos s75
      // seed 9255, c2; test/long/removed-moved-name-taken.test.ts).
      const occupant = stay || atEnd ? undefined : db.objectByPath(r.path);
      if (occupant !== undefined && occupant.fid !== r.fid) {
        const aside = this.#conflictPath(r.path, r.tid);
        this.#move(r.path, aside);
        db.relocateLocal(occupant.fid, aside);
        this.#record(r, r.path, 'name/name', 'keep-both', aside, 'open', null);
      }
      if (moving && lstatOrNull(join(this.#d.root, at)) === null) {
        // Back at the server's name, with what it holds (a directory's entries and their pending records).
        this.#move(o.path, at);
        if (!atEnd) db.relocateLocal(o.fid, r.path);
      }
      let baseHere: RecordDraft = { ...base, path: at };
      if (fetched !== null) {
        // The server's current content of the object (whatever its version now), or an empty stand-in when it
        // holds none at the object's name (removed, or moved and not journaled yet): a later record of the server
        // removes it, or the client fetches the content after it (ClientNode#catchUp).
        const { staged, placeholder } = fetched;
        if (placeholder) baseHere = { ...baseHere, hash: EMPTY_SHA256, size: 0 };
        if (lstatOrNull(join(this.#d.root, at)) === null) {
          // The row says what is placed: newer content than the base too (a later record of the server says so).
          baseHere = { ...baseHere, hash: staged.hash, size: staged.size };
          this.#d.guard.hold(at);
          try {
            chmodSync(staged.file, base.mode);
            utimesSync(staged.file, base.mtimeMs / 1000, base.mtimeMs / 1000);
            renameSync(staged.file, join(this.#d.root, at));
          } finally {
            this.#d.guard.release(at);
          }
        } else {
          rmSync(staged.file, { force: true });
        }
      } else if (making && type === 'dir') {
        this.#mkdir(at, base.mode);
      } else if (making && type === 'symlink' && base.target !== null && lstatOrNull(join(this.#d.root, at)) === null) {
        this.#d.guard.hold(at);
        try {
          symlinkSync(base.target, join(this.#d.root, at));
        } finally {
          this.#d.guard.release(at);
        }
      } else if (survivor !== undefined && !remoteGone && lstatOrNull(join(this.#d.root, at)) === null) {
        // Back as a name of that inode, as on the server: the server's change then goes into it through both.
        this.#d.guard.hold(at);
        try {
          linkSync(join(this.#d.root, survivor.path), join(this.#d.root, at));
        } finally {
          this.#d.guard.release(at);
        }
        baseHere = { ...baseHere, mode: survivor.mode, uid: survivor.uid, gid: survivor.gid, mtimeMs: survivor.mtimeMs, hash: survivor.hash, size: survivor.size };
      }
      if (atEnd) {
        // Journaled as the apply path would have, in one transaction with the pending records' end: the base at
        // the record's name, then the server's move.
        const st = lstatOrNull(join(this.#d.root, at));
        try {
          db.batch(() => {
            dropPending();
            // Another object holds the record's name here (left where it is, see above): the base goes at the
            // move's end, which the move then keeps.
            const baseAt = db.objectByPath(r.path) === undefined ? r.path : at;
            if (o !== undefined) db.relocateLocal(o.fid, baseAt);
            else this.#restoreBase({ ...baseHere, path: baseAt }, r.preVersion, type);
            db.commitRemote([{ record: r, identity: st === null ? null : { ino: st.ino, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, racy: true } }], this.#d.serverNode(), this.#d.clock.now());
          });
        } catch (e) {
          // Nothing of it journaled: the disk goes back as it was, and the next try meets the same.
          if (o !== undefined) this.#move(at, o.path);
          else this.#removeHeld(at);
          throw e;
        }
        this.#applied = true;
      } else {
        this.#restoreBase(baseHere, r.preVersion, type);
      }
    });

    // Decide, then redo the local intent over the server's result.
    const kind = conflictKind({ removedHere, contentHere, renamedHere: renamedHere !== null, modeHere: modeHere !== null }, r.kind);
    for (const { saved: kept, name } of apart) {
      const aside = this.#conflictPath(name, r.tid);
      redo.push(() => this.#putBack(kept, aside));
      this.#record(r, name, 'write/write', 'keep-both', aside, 'open', null);
      this.#d.log.warn({ path: name, keptAs: aside, tid: formatTid(r.tid) }, 'conflict: changed on both sides (a name the server links to it); local kept beside');
    }
    if (kind === 'unlink/write') {
      // A delete loses no data: the server's change brings the object back, unless the client must win.
      const decision = this.#decide(r, r.path, kind, undefined);
      if (decision === 'local' && !remoteGone) redo.push(() => this.#remove(finalPath));
      this.#record(r, r.path, kind, decision, null, 'resolved', decision === 'local' ? 'removed again here' : 'the server\'s change brought it back');
      if (saved !== null) {
        // What was written here through the removed name (kept from the inode's other name): beside it.
        const aside = this.#conflictPath(r.path, r.tid);
        redo.push(() => this.#putBack(saved!, aside));
        this.#record(r, r.path, 'write/write', 'keep-both', aside, 'open', null);
        this.#d.log.warn({ path: r.path, keptAs: aside, tid: formatTid(r.tid) }, 'conflict: written here through a name removed since, and changed on the server; local kept beside');
      }
      return;
    }
    // Changes that do not overlap merge whatever the policy: a name, a mode, a content change each survive.
    if (renamedHere !== null && r.kind !== 'rename' && !remoteGone) redo.push(() => this.#unguardedRename(finalPath, renamedHere));
    if (modeHere !== null && r.kind !== 'setattr' && !remoteGone) redo.push(() => this.#chmod(renamedHere ?? finalPath, modeHere));
    if (saved === null) {
      if (kind === 'rename/rename') {
        const decision = this.#decide(r, r.path, kind, o);
        if (decision === 'local' && renamedHere !== null) redo.push(() => this.#unguardedRename(finalPath, renamedHere));
        this.#record(r, r.path, kind, decision, null, 'resolved', decision === 'local' ? `renamed to ${renamedHere}` : `kept the server's name ${finalPath}`);
      }
      return;
    }
    if (kind === 'write/setattr' || kind === 'write/rename') {
      // The server changed only attributes, or only the name: the local content goes back in place (at the new
      // name), as a local write. Before, a move there and a write here were kept as two files (keep-both).
      redo.push(() => this.#putBack(saved!, renamedHere ?? finalPath));
      this.#record(r, r.path, kind, 'keep-both', null, 'resolved', kind === 'write/rename' ? 'merged: local content, the server\'s name' : 'merged: local content, server attributes');
      return;
    }
    const decision = this.#decide(r, r.path, kind, o);
    if (decision === 'local') {
      redo.push(() => {
        if (!remoteGone) this.#keepFile(finalPath, finalPath, r.tid);
        this.#putBack(saved!, renamedHere ?? finalPath);
      });
      this.#record(r, r.path, kind, decision, null, 'resolved', 'the local version replaced the server\'s');
    } else if (decision === 'remote') {
      this.#record(r, r.path, kind, decision, this.#d.policy().discard ? null : saved, 'resolved', 'the server\'s version kept');
      this.#settle(saved); // where the policy keeps it: the conflicts folder
      if (this.#d.policy().discard) rmSync(saved, { force: true });
    } else {
      const aside = this.#conflictPath(r.path, r.tid);
      redo.push(() => this.#putBack(saved!, aside));
      this.#record(r, r.path, kind, 'keep-both', aside, 'open', null);
      this.#d.log.warn({ path: r.path, keptAs: aside, tid: formatTid(r.tid) }, 'conflict: changed on both sides; local kept beside');
    }
  }

  /**
   * A server record applied here took its object away from `r.path` (moved or removed it). A local object made
   * here and set aside from that very name for the server's object (an open name/name conflict), still not
   * accepted, goes back to it: the name is free again and nobody else has seen the other one. Before, whether
   * it ended at its name or beside it depended on whether its create reached the server first.
   */
  reclaim(r: KmlRecord): void {
    if (r.kind !== 'rename' && r.kind !== 'unlink' && r.kind !== 'rmdir') return;
    const db = this.#d.db;
    const name = r.path;
    if (db.objectByPath(name) !== undefined || lstatOrNull(join(this.#d.root, name)) !== null) return;
    for (const c of db.conflicts(false)) {
      if (c.kind !== 'name/name' || c.path !== name || c.kept === null) continue;
      const o = db.objectByPath(c.kept);
      if (o === undefined || o.version !== NO_VERSION || lstatOrNull(join(this.#d.root, parentOf(name))) === null) continue;
      this.#move(c.kept, name);
      db.relocateLocal(o.fid, name);
      db.resolveConflict(c.id, 'the server freed the name: the local object is back at it', this.#d.clock.now());
      this.#d.log.info({ path: name, was: c.kept, tid: formatTid(r.tid) }, 'the server freed the name a local object was set aside from: back at it');
      return;
    }
  }

  /** Pending changes of content or attributes made here through the other names of the inode a server change of content or attributes reaches. */
  #changesThroughLinks(r: KmlRecord): LmlRecord[] {
    if (r.kind !== 'write' && r.kind !== 'truncate' && r.kind !== 'setattr') return [];
    const db = this.#d.db;
    const o = db.objectByFid(r.fid);
    // The object's name removed here: its inode's other names here still are the server's object's names. (Its
    // removal pending: one the server accepted after this record is the server's too, its inode kept only for
    // a link to the name still to come, FilesetDb#acceptOwn; nothing here changed the object then.)
    const ino = o === undefined ? (db.hasPendingLocal(r.fid) ? db.removedLinkIno(r.fid) : null) : o.type === 'file' ? o.ino : null;
    // The inode's other names here, and those removed here since (their removal not accepted yet).
    // And the server's names of the inode (r.links), where this node groups them otherwise.
    const here = ino === null ? [] : [...db.objectsByIno(ino).filter((x) => x.type === 'file').map((x) => x.fid), ...db.removedLinksOf(ino)];
    const names = new Set([...here, ...(r.links ?? [])]);
    names.delete(r.fid);
    return [...names].flatMap((fid) => db.localRecordsOf(fid).filter((y) => y.kind === 'write' || y.kind === 'truncate' || y.kind === 'setattr'));
  }

  /** The names among `via` written here whose file is not the object's inode here (`o`: the object, or the name its inode lives on as): each one's content kept (see #object). */
  #writtenApart(o: ObjectRow | undefined, via: readonly LmlRecord[], tid: bigint): Array<{ saved: string; name: string }> {
    const db = this.#d.db;
    const ino = o?.type === 'file' ? lstatOrNull(join(this.#d.root, o.path))?.ino ?? null : null;
    const out: Array<{ saved: string; name: string }> = [];
    const seen = new Set<string>();
    for (const x of via) {
      if ((x.kind !== 'write' && x.kind !== 'truncate') || seen.has(x.fid)) continue;
      seen.add(x.fid);
      const n = db.objectByFid(x.fid);
      const st = n?.type === 'file' ? lstatOrNull(join(this.#d.root, n.path)) : null;
      if (n === undefined || st?.type !== 'file' || st.ino === ino) continue;
      const saved = this.#keepFile(n.path, n.path, tid);
      this.#save(saved, n.path, tid);
      out.push({ saved, name: n.path });
    }
    return out;
  }

  /**
   * The server removes one name of a hard-linked file that was written (or chmodded) here through that name:
   * the inode lives on under its other names, there as here, and so does what was written. The pending
   * changes become a surviving name's (made against its version), and the removal applies: nothing is lost,
   * no conflict copy. Before, the write was kept beside as a conflict copy while the other name here still
   * showed it (the inode), and the server's did not: "state differs", a resync. Where the name was moved here
   * too, the moved name stays a name of the inode: a link to the surviving name (FilesetDb#movesToLink), and
   * the server's removal then meets nothing here. Before, the write was kept beside twice and the moved name
   * left, the link groups differed at the end and the client resynced (chaos s61 seed 9251;
   * test/long/link-written-moved-removed.test.ts). True when done.
   */
  #toHeir(r: KmlRecord, local: readonly LmlRecord[]): boolean {
    const db = this.#d.db;
    const o = db.objectByFid(r.fid);
    if (r.kind !== 'unlink' || o?.type !== 'file' || o.ino === null) return false;
    if (local.length === 0 || !local.every((x) => x.kind === 'write' || x.kind === 'truncate' || x.kind === 'setattr' || x.kind === 'rename')) return false;
    const changes = local.filter((x) => x.kind !== 'rename');
    const lastMove = local.filter((x) => x.kind === 'rename').at(-1);
    // (A pending link made to the moved name names it by this fid: not here.)
    if (lastMove !== undefined && (lastMove.newPath === null || db.pendingLinkTo(r.fid))) return false;
    if (lstatOrNull(join(this.#d.root, o.path))?.ino !== o.ino) return false;
    const heirs = db.objectsByIno(o.ino).filter((x) => x.fid !== o.fid && x.type === 'file' && x.version !== NO_VERSION &&
      lstatOrNull(join(this.#d.root, x.path))?.ino === o.ino);
    for (const x of heirs) {
      const names = this.#heirNamesThen(x, changes);
      const linkName = lastMove === undefined ? x.path : this.#heirNamesThen(x, [lastMove])?.get(lastMove.seq);
      if (names === undefined || linkName === undefined) continue;
      const linkTo = { ...x, path: linkName };
      const heir = { ...x, path: names.get(changes.at(-1)?.seq ?? -1n) ?? x.path };
      if (changes.length > 0) db.moveChangesTo(r.fid, x, names);
      const kept = lastMove === undefined ? null : lastMove.newPath;
      if (lastMove !== undefined) db.movesToLink(r.fid, x.fid, linkTo.path);
      const how = changes.length === 0 ? '' : `what was written here through it goes through ${heir.path}, another name of the file`;
      const moved = kept === null ? '' : `its move here to ${kept} makes that name a hard link of ${linkTo.path}`;
      this.#record(r, r.path, changes.length === 0 ? 'rename/unlink' : 'write/unlink', 'merged', kept ?? heir.path, 'resolved', `removed on the server; ${[how, moved].filter((y) => y !== '').join('; ')}`);
      this.#d.log.info({ path: r.path, heir: heir.path, linked: kept, tid: formatTid(r.tid) },
        'conflict: a name of a hard-linked file changed here was removed on the server; the changes go through another name');
      return true;
    }
    return false;
  }

  /**
   * The name `x`, another name of the inode, had at the time of each of the changes `local` (seq -> name: the
   * name each ships under as its change); undefined when it cannot take them: removed here, or a pending move of
   * a directory above it came between. Changes made before its first pending move go at that move's old name,
   * the others at the new name of the last move before them. Before, a name with a pending move took no
   * changes, and a write through the name the server removed was kept beside twice while the inode here held
   * it under the moved name (chaos s58 seed 9279, c2: "other content", a resync;
   * test/long/link-written-other-removed.test.ts); then, changes on both sides of a move of it found no name,
   * and a write kept beside the removed name stayed in the inode under the moved one with nothing pending to say
   * so (chaos s75 seed 9254, c2: "other content, other mode", a resync; test/long/link-written-moved-chmod.test.ts).
   */
  #heirNamesThen(x: ObjectRow, local: readonly LmlRecord[]): Map<bigint, string> | undefined {
    const db = this.#d.db;
    const own = db.localRecordsOf(x.fid);
    if (own.some((y) => y.kind === 'unlink')) return undefined;
    const moves = own.filter((y) => y.kind === 'rename' && y.newPath !== null);
    const names = new Map<bigint, string>();
    for (const c of local) {
      if (moves.length === 0) {
        names.set(c.seq, x.path);
        continue;
      }
      const before = moves.filter((m) => m.seq < c.seq).at(-1);
      const [name, from, to] = before === undefined ? [moves[0]!.path, c.seq, moves[0]!.seq] : [before.newPath!, before.seq, c.seq];
      if (db.pendingRenames().some((y) => y.seq > from && y.seq < to && y.fid !== x.fid && isUnder(name, y.newPath ?? y.path))) return undefined;
      names.set(c.seq, name);
    }
    return names;
  }

  /** The server removes a directory that holds objects made here: move them out beside it. */
  #emptyForRmdir(r: KmlRecord): void {
    const db = this.#d.db;
    const below = db.objectsBelow(r.path).filter((o) => !o.path.slice(r.path.length + 1).includes('/'));
    for (const o of below) {
      const to = this.#conflictPath(joinRel(parentOf(r.path), baseName(o.path)), r.tid);
      this.#move(o.path, to);
      db.relocateLocal(o.fid, to);
      this.#touched = true;
      this.#record(r, o.path, 'gained/rmdir', 'keep-both', to, 'open', null);
      this.#d.log.warn({ path: o.path, keptAs: to, tid: formatTid(r.tid) }, 'conflict: the server removed a directory that gained entries here');
    }
    this.#besideRemoved(r);
  }

  /**
   * Pending records that still give a name in the directory the server removes: what was made or moved into it
   * here and left it since (removed again, moved on), or an older name of what was just set beside it. The
   * server has no such directory any more and would refuse them for ever ("parent … does not exist here", a
   * resync; chaos seeds 9205, 9214, 9215). Like what the directory still held, they give the name beside it
   * instead, at the names of their time, and the object's later records there follow (FilesetDb.renameInLml);
   * nothing is on disk any more to move.
   */
  #besideRemoved(r: KmlRecord): void {
    const db = this.#d.db;
    const given = new Set<string>(); // names handed out here that nothing holds yet
    for (const x of db.pendingInto(r.fid)) {
      const name = x.kind === 'rename' ? x.newPath : ['create', 'mkdir', 'symlink', 'link'].includes(x.kind) ? x.path : null;
      if (name === null || !name.includes('/')) continue;
      // Its object is set beside the directory here already (#emptyForRmdir), and no pending move of its own
      // follows: the record gives the name it has now. Before, it named the place beside the directory's name
      // of its time, which differed where the directory had moved here (inside the moved object itself: a cycle
      // the server refused, a resync; chaos s44 seed 9230; test/long/removed-dir-moved-over.test.ts).
      const now = db.objectByFid(x.fid);
      const movesOn = db.localRecordsOf(x.fid).some((y) => y.seq > x.seq && y.kind === 'rename');
      // (Only where no pending move of a directory above it came after: the record's name is of its time.)
      const above = now !== undefined && db.pendingRenames().some((y) => y.seq > x.seq && y.newPath !== null && isUnder(now.path, y.newPath));
      if (now !== undefined && !movesOn && !above && !isUnder(now.path, r.path)) {
        const dirNow = parentOf(now.path) === '' ? undefined : db.objectByPath(parentOf(now.path));
        db.renameInLml(x.fid, x.seq, name, now.path);
        db.setLmlParent(x.seq, parentOf(now.path) === '' ? ROOT_FID : dirNow?.type === 'dir' ? dirNow.fid : null);
        this.#touched = true;
        this.#d.log.info({ seq: x.seq.toString(), kind: x.kind, path: name, to: now.path, tid: formatTid(r.tid) }, 'a pending record named a directory the server removed: it names where its object is now');
        continue;
      }
      const besideThen = parentOf(parentOf(name));
      const besideNow = db.nameAfter(besideThen, x.seq);
      const aside = conflictName(joinRel(besideNow, baseName(name)), this.#d.node, r.tid as Tid,
        (p) => given.has(p) || db.objectByPath(p) !== undefined || lstatOrNull(join(this.#d.root, p)) !== null);
      given.add(aside);
      const to = joinRel(besideThen, baseName(aside));
      const dir = besideNow === '' ? undefined : db.objectByPath(besideNow);
      db.renameInLml(x.fid, x.seq, name, to);
      db.setLmlParent(x.seq, besideNow === '' ? ROOT_FID : dir?.type === 'dir' ? dir.fid : null);
      this.#touched = true;
      this.#d.log.info({ seq: x.seq.toString(), kind: x.kind, path: name, to, tid: formatTid(r.tid) }, 'a pending record named a directory the server removed: it names the place beside it');
    }
  }

  #decide(r: Pick<KmlRecord, 'origin' | 'mtimeMs'>, path: string, kind: ConflictKind, local: ObjectRow | undefined): Decision {
    const policy = this.#d.policy();
    const facts = {
      kind, path, localNode: this.#d.node, remoteNode: r.origin, localMtimeMs: local?.mtimeMs ?? 0, remoteMtimeMs: r.mtimeMs,
    };
    let answer: string | undefined;
    if (policy.name === 'hook') answer = this.#runHook(kind, path, local);
    return decide(policy, facts, answer);
  }

  /** The site's script: `HOOK KIND PATH LOCAL_FILE` prints local, remote or both. */
  #runHook(kind: string, path: string, local: ObjectRow | undefined): string | undefined {
    const hook = this.#d.hook();
    if (hook === null) return undefined;
    const localFile = local === undefined ? '' : join(this.#d.root, local.path);
    const r = spawnSync(hook, [kind, path, localFile], { encoding: 'utf8', timeout: 10_000 });
    if (r.status !== 0) {
      this.#d.log.error({ hook, status: r.status, err: r.stderr?.slice(0, 200) }, 'conflict hook failed; keeping both');
      return undefined;
    }
    return r.stdout.trim();
  }

  #record(r: Pick<KmlRecord, 'tid' | 'origin'>, path: string, kind: string, decision: string, kept: string | null, status: 'open' | 'resolved', resolution: string | null): void {
    this.#count++;
    this.#d.db.addConflict({
      time: this.#d.clock.now(), path, kind, policy: formatPolicy(this.#d.policy()), decision, remoteTid: r.tid as Tid, remoteNode: r.origin,
      kept, status, resolution,
    });
  }

  /**
   * The server's mode and owner of `o` as its version left them: the last record of it (or through another name
   * of its inode) that says them; a move says none (it keeps them, FilesetDb). `r`'s when the journal no longer
   * holds one.
   */
  #serverAttrs(o: ObjectRow, r: KmlRecord): { mode: number; uid: number; gid: number } {
    const at = this.#attrsRecord(o.fid, o.version) ?? r;
    return { mode: at.mode, uid: at.uid, gid: at.gid };
  }

  /** The record that says the attributes of `fid` at `version` (see #serverAttrs), or undefined when the journal holds none. */
  #attrsRecord(fid: Fid, version: Tid): KmlRecord | undefined {
    const db = this.#d.db;
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

  /** Keep a copy of a file in the conflicts folder (never replicated); returns its path. */
  #keepFile(relNow: string, name: string, tid: bigint): string {
    mkdirSync(this.#d.conflictsDir, { recursive: true, mode: 0o700 });
    const to = join(this.#d.conflictsDir, `${formatTid(tid).slice(2)}-${Date.now().toString(36)}-${baseName(name)}`);
    copyFileSync(join(this.#d.root, relNow), to);
    return to;
  }

  #conflictPath(name: string, tid: bigint): string {
    const db = this.#d.db;
    return conflictName(name, this.#d.node, tid as Tid, (p) => db.objectByPath(p) !== undefined || lstatOrNull(join(this.#d.root, p)) !== null);
  }

  #restoreBase(d: LmlRecord | RecordDraft, version: Tid, type: 'file' | 'dir' | 'symlink'): void {
    const st = lstatOrNull(join(this.#d.root, d.path));
    const kind = type === 'dir' ? 'mkdir' : type === 'symlink' ? 'symlink' : 'create';
    this.#d.db.commitCopy(
      { ...d, kind, newPath: null, preVersion: NO_VERSION, target: type === 'symlink' ? d.target : null, origin: d.origin as NodeId, fid: d.fid as Fid },
      version,
      st === null ? null : { ino: st.ino, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, racy: true },
    );
  }

  #move(from: string, to: string): void {
    const st = lstatOrNull(join(this.#d.root, from));
    if (st === null) return; // gone meanwhile: nothing to move
    // The move changes a hard-linked file's change time under its other names: they stay as journaled.
    const others = st.type === 'file' && st.nlink > 1 ? namesAsJournaled(this.#d.db, this.#d.root, st.ino, this.#d.db.objectByPath(from)?.fid ?? null) : [];
    this.#d.guard.hold(from);
    this.#d.guard.hold(to);
    try {
      // A file never over one a program made at `to` a moment ago (see moveNoReplace): the record is tried again.
      if (st.type === 'dir') renameSync(join(this.#d.root, from), join(this.#d.root, to));
      else if (!moveNoReplace(join(this.#d.root, from), join(this.#d.root, to))) throw IntersyncError.CONFLICT(to, 'an unjournaled file has this name here');
    } finally {
      this.#d.guard.release(from);
      this.#d.guard.release(to);
    }
    renewNames(this.#d.db, this.#d.root, others);
  }

  /** A directory on disk here (the root is one). */
  #dirOnDisk(path: string): boolean {
    return path === '' || lstatOrNull(join(this.#d.root, path))?.type === 'dir';
  }

  #mkdir(path: string, mode: number): void {
    this.#d.guard.hold(path);
    try {
      mkdirSync(join(this.#d.root, path), { mode });
    } finally {
      this.#d.guard.release(path);
    }
  }

  /** Remove what this step placed at `path`, held from capture. */
  #removeHeld(path: string): void {
    this.#d.guard.hold(path);
    try {
      rmSync(join(this.#d.root, path), { recursive: true, force: true });
    } finally {
      this.#d.guard.release(path);
    }
  }

  #remove(path: string): void {
    this.#redone.add(path);
    const abs = join(this.#d.root, path);
    if (existsSync(abs)) rmSync(abs, { recursive: true, force: true });
  }

  // Redo steps change the tree without the echo guard: capture journals them as local changes.
  #unguardedRename(from: string, to: string): void {
    const a = join(this.#d.root, from);
    const b = join(this.#d.root, to);
    this.#redone.add(from).add(to);
    if (existsSync(a) && !existsSync(b) && !isUnder(to, from) && !moveNoReplace(a, b)) this.#d.log.warn({ path: from, to }, 'a local change not redone: a program made its name meanwhile');
  }

  #chmod(path: string, mode: number): void {
    this.#redone.add(path);
    const abs = join(this.#d.root, path);
    if (existsSync(abs)) chmodSync(abs, mode);
  }

  /** Content back at `path`; a file there keeps its mode (copyFile would give it the saved copy's, undoing a remote chmod). */
  #putBack(saved: string, path: string): void {
    const abs = join(this.#d.root, path);
    if (!existsSync(join(abs, '..'))) {
      // Its directory went with the server's change: beside it in the nearest one that is left, never dropped.
      this.#placeBeside(saved, path, this.#unplaced.get(saved)?.tid ?? 0n);
      return;
    }
    const there = lstatOrNull(abs);
    // A local write landed at the name after this step saved its content (while the server's record applied,
    // before this redo): it is the newer, and stays; the saved content goes beside it. Known by what the name
    // holds: neither the saved content nor what the journal says the record left there. Before, the saved
    // (older) content was copied over it, and capture journaled that: the write was on no node (chaos s66
    // seed 9303, c1; test/conflict-redo-window.test.ts).
    if (there?.type === 'file' && this.#writtenSince(abs, there.size, saved, path)) {
      this.#placeBeside(saved, path, this.#unplaced.get(saved)?.tid ?? 0n);
      return;
    }
    this.#redone.add(path);
    copyFileSync(saved, abs);
    if (there?.type === 'file') chmodSync(abs, there.mode);
    unlinkSync(saved);
    this.#settle(saved);
  }

  /** True when the file at `abs` (of `size`) holds neither the content saved at `saved` nor what the journal has at `path`. */
  #writtenSince(abs: string, size: number, saved: string, path: string): boolean {
    const row = this.#d.db.objectByPath(path);
    const now = hashFileSync(abs);
    if (now === null) return false; // gone a moment ago: nothing there to keep
    if (size === statSync(saved).size && now === hashFileSync(saved)) return false;
    return !(row?.type === 'file' && row.hash !== null && size === row.size && now === row.hash);
  }

  /**
   * Local contents saved by the conflict step and not in the tree again yet: saved file -> its name, the TID, and
   * the in-flight note that says so in the journal (a start after a crash puts them back: ConflictResolver#recover).
   */
  readonly #unplaced = new Map<string, { name: string; tid: bigint; note: number | null }>();

  #save(saved: string, name: string, tid: bigint): void {
    const note = this.#d.db.markInflight(JSON.stringify({ via: 'conflict', saved, name, tid: formatTid(tid) }));
    this.#unplaced.set(saved, { name, tid, note });
  }

  /** A saved content is where it belongs now (in the tree again, or in the conflicts folder by the policy). */
  #settle(saved: string): void {
    const u = this.#unplaced.get(saved);
    if (u === undefined) return;
    if (u.note !== null) this.#d.db.clearInflight(u.note);
    this.#unplaced.delete(saved);
  }

  /**
   * At start, an in-flight note of a local content the conflict step saved and had not put back when the process
   * died (between dropping the pending records and redoing them once the server's record applied): it comes back
   * into the tree beside its name, as a local file capture journals. Not when its name holds that very content
   * and the journal does not say so (capture journals it there). Returns false when the note is not one of these.
   * Before, the content stayed in the conflicts folder only: c1 killed 100 ms after its conflict step for the
   * server's move of a file written here off line, and the write was on no node (chaos s45 seed 9291).
   */
  recover(intent: unknown): boolean {
    const n = intent as { via?: unknown; saved?: unknown; name?: unknown; tid?: unknown };
    if (n.via !== 'conflict' || typeof n.saved !== 'string' || typeof n.name !== 'string' || typeof n.tid !== 'string') return false;
    if (!n.saved.startsWith(`${this.#d.conflictsDir}/`) || !existsSync(n.saved)) return true;
    const hash = hashFileSync(n.saved);
    const here = lstatOrNull(join(this.#d.root, n.name));
    if (here?.type === 'file' && hash !== null && hashFileSync(join(this.#d.root, n.name)) === hash && this.#d.db.objectByPath(n.name)?.hash !== hash) {
      unlinkSync(n.saved);
      return true;
    }
    const tid = parseTid(n.tid) ?? NO_VERSION;
    this.#unplaced.set(n.saved, { name: n.name, tid, note: null });
    this.#placeBeside(n.saved, n.name, tid);
    return true;
  }

  /**
   * The server's record did not apply after its conflict step: the local contents that step saved (to put
   * them back once the record applied) come back into the tree now, beside their names, as local changes.
   * Without this they stayed in the conflicts folder only, and the next try found nothing pending to keep.
   */
  rescue(): void {
    for (const [saved, { name, tid }] of [...this.#unplaced]) {
      if (!existsSync(saved)) {
        this.#settle(saved);
        continue;
      }
      this.#placeBeside(saved, name, tid);
    }
  }

  #placeBeside(saved: string, name: string, tid: bigint): void {
    let dir = parentOf(name);
    while (dir !== '' && lstatOrNull(join(this.#d.root, dir))?.type !== 'dir') dir = parentOf(dir);
    const to = this.#conflictPath(joinRel(dir, baseName(name)), tid);
    this.#redone.add(to);
    copyFileSync(saved, join(this.#d.root, to));
    unlinkSync(saved);
    this.#settle(saved);
    this.#d.log.warn({ path: name, keptAs: to }, 'conflict: the local version is kept beside (its record did not apply as planned)');
  }
}
