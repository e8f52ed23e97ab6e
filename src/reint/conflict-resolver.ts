import { formatTid, type Tid } from '#core/ids.js';
import type { KmlRecord, LmlRecord } from '#core/record.js';
import { breakCycle, nameStep, reclaim, setAside } from './conflict-names.js';
import { objectStep } from './conflict-object.js';
import { emptyForRmdir, parentStep } from './conflict-parents.js';
import { recover, rescue } from './conflict-redo.js';
import { restoreRemoved } from './conflict-restore-removed.js';
import { resolverState, type Redo, type ResolverDeps, type ResolverState } from './conflict-state.js';

export type { Redo, ResolverDeps } from './conflict-state.js';

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
 *
 * The steps are functions over one ResolverState (conflict-state.ts), which this class owns and passes to
 * each: the name step (conflict-names.ts), the parent step (conflict-parents.ts), the object step
 * (conflict-object.ts; hard links in conflict-links.ts), a refused removal (conflict-restore-removed.ts),
 * saved content and the redo steps (conflict-redo.ts), the policy and the conflicts table
 * (conflict-decide.ts), the server's base state (conflict-base.ts) and the disk (conflict-disk.ts).
 */
export class ConflictResolver {
  readonly #s: ResolverState;

  constructor(d: ResolverDeps) {
    this.#s = resolverState(d);
  }

  get count(): number {
    return this.#s.count;
  }

  /**
   * The names redo steps, rescue and reclaim changed since the last call: the caller has capture journal them
   * at once. Before, capture met them at its next event only, and for that moment the node said it had nothing
   * pending while a local version kept beside was on disk and in no journal (CI, test/written-while-fetched).
   */
  takeRedone(): string[] {
    const names = [...this.#s.redone];
    this.#s.redone.clear();
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
    this.#s.touched = false;
    this.#s.applied = false;
    this.#s.sent = sent;
    const redo: Redo[] = [];
    const absorbed = await nameStep(this.#s, r, redo);
    if (absorbed) return { applied: [] };
    await parentStep(this.#s, r);
    await objectStep(this.#s, r, redo);
    if (this.#s.applied) return { applied: redo };
    this.#missedVersion(r);
    // Where the directory is here (the step may have left it where it is, `stay`). Not here (removed here too):
    // what holds its name here is another object, whose entries are not the removed directory's. Before, they
    // were moved beside it as entries it gained (chaos s53 seed 9260; test/long/removed-both-taken.test.ts).
    const dir = r.kind === 'rmdir' ? this.#s.d.db.objectByFid(r.fid) : undefined;
    if (dir?.type === 'dir') emptyForRmdir(this.#s, { ...r, path: dir.path });
    return redo.length === 0 && !this.#s.touched ? null : redo;
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
    const db = this.#s.d.db;
    const o = db.objectByFid(r.fid);
    if (o === undefined || o.version >= r.preVersion || db.hasPendingLocal(r.fid)) return;
    if (o.type === 'file' && o.ino !== null && db.objectsByIno(o.ino).some((x) => x.fid !== o.fid && db.hasPendingLocal(x.fid))) return;
    this.#s.d.log.warn({ path: r.path, tid: formatTid(r.tid), here: formatTid(o.version), server: formatTid(r.preVersion) }, 'a version of the object given on the server through another name was missed here: taken');
    db.takeServerVersion(r.fid, r.preVersion);
  }

  /** Undo a local move that makes the server's move of a directory one into itself; true when it did (conflict-names.ts). */
  breakCycle(sent: KmlRecord): boolean {
    return breakCycle(this.#s, sent);
  }

  /** Set a local object the server refuses for its name beside that name; where it went, or null (conflict-names.ts). */
  setAside(x: LmlRecord, serverTid: Tid): string | null {
    return setAside(this.#s, x, serverTid);
  }

  /** Settle a refused removal of a file changed on the server since: true when it did (conflict-restore-removed.ts). */
  restoreRemoved(x: LmlRecord, current: Tid): Promise<boolean> {
    return restoreRemoved(this.#s, x, current);
  }

  /** Move a local object set aside from a name back to it, once the server's record freed the name (conflict-names.ts). */
  reclaim(r: KmlRecord): void {
    reclaim(this.#s, r);
  }

  /** Put back a local content saved by a conflict step the process died in; false when `intent` is no such note (conflict-redo.ts). */
  recover(intent: unknown): boolean {
    return recover(this.#s, intent);
  }

  /** Put the local contents saved for a record that did not apply back in the tree, beside their names (conflict-redo.ts). */
  rescue(): void {
    rescue(this.#s);
  }
}
