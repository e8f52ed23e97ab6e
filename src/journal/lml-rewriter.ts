import { NO_VERSION, ROOT_FID, type Fid } from '#core/ids.js';
import type { LmlRecord } from '#core/record.js';
import { baseName, joinRel, parentOf } from '#core/paths.js';
import type { FilesetTables } from './fileset-tables.js';
import type { ObjectTable } from './object-table.js';
import { CREATE_KINDS, toLml, type ObjectRow, type Row } from './rows.js';
import type { Statements } from './statements.js';

/**
 * The client's pending records (the LML) rewritten when what they name moves or changes hands: a move by
 * another hand than capture's carries the records that name the object along, era by era of the pending
 * renames above it; dropped moves take them back. Every method runs inside FilesetDb's transaction; the LML
 * sequence lives in `state`, which FilesetDb writes to meta and restores when a transaction rolls back.
 */
export class LmlRewriter {
  readonly #st: Statements;
  readonly #tables: FilesetTables;
  readonly #objects: ObjectTable;
  readonly #state: { lmlSeq: bigint };
  readonly #newFid: () => Fid;

  constructor(st: Statements, tables: FilesetTables, objects: ObjectTable, state: { lmlSeq: bigint }, newFid: () => Fid) {
    this.#st = st;
    this.#tables = tables;
    this.#objects = objects;
    this.#state = state;
    this.#newFid = newFid;
  }

  /** Client side: drop an object's pending local records (a conflict resolution takes them over). */
  dropLocal(fid: Fid): void {
    const moves = this.#tables.localRecordsOf(fid).filter((x) => x.kind === 'rename' && x.newPath !== null);
    this.#st.lmlDropFid.run(fid);
    this.#unmoveLml(moves);
  }

  /**
   * A directory's pending moves, dropped: the records of what is below it, made while a move had it at its
   * new name, name it at its name before the first of them (the LML no longer moves it). Before, a record
   * made between two moves of a directory kept the name only the dropped move gave it: a conflict step that
   * put the directory back at the server's name (its moves dropped) left a file made in it named where no
   * directory would be, and the server refused it for ever ("parent … does not exist here", a resync; chaos
   * seed 9206). Moves of directories above it are not followed: each era is its own moves'.
   */
  #unmoveLml(moves: readonly LmlRecord[]): void {
    if (moves.length === 0) return;
    const home = moves[0]!.path;
    for (const [i, x] of moves.entries()) {
      const from = x.newPath!;
      const until = moves[i + 1]?.seq ?? null;
      const below = (p: string | null): boolean => p !== null && p.startsWith(`${from}/`);
      const move = (p: string | null): string | null => (below(p) ? `${home}${p!.slice(from.length)}` : p);
      const naming = (this.#st.lmlNaming.all({ p: from }) as Row[]).map(toLml).filter((r) => r.seq > x.seq && (until === null || r.seq < until));
      for (const r of naming) {
        const np = move(r.path)!;
        const nn = move(r.newPath);
        if (np !== r.path || nn !== r.newPath) this.#st.lmlPaths.run(np, nn, r.seq);
        if (r.kind === 'link' && below(r.target)) this.#st.lmlTarget.run(move(r.target), r.seq);
      }
    }
  }

  /**
   * The pending content and attribute changes of one name of a hard-linked file become another name's
   * (`heir`, made against its version): the server removes the first name, and what was written lives on in
   * the inode under the other. Each goes at the heir's name of its time (`names`: seq -> name), or at its
   * path when `names` has none for it.
   */
  moveChangesTo(fid: Fid, heir: ObjectRow, names: ReadonlyMap<bigint, string>): void {
    for (const [seq, path] of names) this.#st.lmlToHeirAt.run({ seq, fid, heir: heir.fid, path, version: heir.version });
    this.#st.lmlToHeir.run({ fid, heir: heir.fid, path: heir.path, version: heir.version });
  }

  /**
   * Client side, conflict: the server removes a name of a hard-linked file that was moved here (its pending
   * moves, `fid`'s). The inode lives on under its other names there, and here under the moved name too: that
   * name becomes a new name of the inode, a link to `heir` (named `target`, its name at the last move), made
   * where and when the last move put it (in its place in the LML, a name of its time); the moves are dropped,
   * and the object row takes the new name's fid, made here (no version of the server's). Returns that fid.
   */
  movesToLink(fid: Fid, heir: Fid, target: string): Fid {
    const made = this.#newFid();
    const o = this.#tables.objectByFid(fid);
    const moves = this.#tables.localRecordsOf(fid).filter((r) => r.kind === 'rename');
    const last = moves.at(-1);
    if (o?.type !== 'file' || last?.newPath === undefined || last.newPath === null) throw new Error(`movesToLink: ${fid} is not a moved file here`);
    for (const r of moves) this.#st.lmlDelete.run(r.seq);
    this.#st.objectFid.run(made, NO_VERSION, fid);
    this.#st.lmlInsert.run({
      seq: last.seq, kind: 'link', fid: made, path: last.newPath, newPath: null, target, preVersion: NO_VERSION,
      mode: o.mode, uid: o.uid, gid: o.gid, mtimeMs: o.mtimeMs, size: o.size, hash: o.hash, origin: last.origin, time: last.time,
      parent: last.parent ?? null, targetFid: heir,
    } satisfies LmlRecord);
    return made;
  }

  /**
   * Client side: the pending record `seq` (refused, nothing after it sent since) goes last in the LML, under a
   * new sequence number (Reintegrator#emptiedLater). Refused records were never applied on the server, so a new
   * number is safe, as in recreateDir.
   */
  moveLmlToEnd(seq: bigint): void {
    const r = this.#tables.lmlRecord(seq);
    if (r === undefined) return;
    this.#st.lmlDelete.run(seq);
    this.#state.lmlSeq += 1n;
    this.#st.lmlInsert.run({ ...r, seq: this.#state.lmlSeq, parent: r.parent ?? null, targetFid: r.targetFid ?? null });
  }

  /**
   * Client side, conflict: the pending record `seq` of `fid` that makes or moves the object onto `from`
   * ships with `to` instead, and so do the object's later records at `from` (up to its next move).
   */
  renameInLml(fid: Fid, seq: bigint, from: string, to: string): void {
    let until: bigint | null = null; // the object's own move on from there, if pending
    for (const r of this.#tables.localRecordsOf(fid)) {
      if (r.seq < seq) continue;
      const np = r.path === from ? to : r.path;
      const nn = r.seq === seq && r.newPath === from ? to : r.newPath;
      if (np !== r.path || nn !== r.newPath) this.#st.lmlPaths.run(np, nn, r.seq);
      if (r.kind === 'rename' && r.path === from) {
        until = r.seq;
        break; // moved on from there
      }
    }
    // Meanwhile other records named it by that name too: entries made below it (a directory), hard links
    // made to it. They follow it, or they would name the server's object at `from`; up to the first record
    // after which `from` no longer names it (a directory above it moved, or another object took the name).
    // Only the pending renames and the records onto `from` can end that: not the whole LML.
    const ends = [
      ...this.#tables.pendingRenames().filter((r) => r.seq > seq && from.startsWith(`${r.path}/`)),
      ...this.#tables.pendingOnto(from).filter((r) => r.seq > seq && r.fid !== fid),
    ];
    for (const r of ends) if (until === null || r.seq < until) until = r.seq;
    const below = (p: string): string => (p.startsWith(`${from}/`) ? `${to}${p.slice(from.length)}` : p);
    for (const r of (this.#st.lmlNaming.all({ p: from }) as Row[]).map(toLml)) {
      if (r.fid === fid || r.seq <= seq || (until !== null && r.seq >= until)) continue;
      const np = below(r.path);
      const nn = r.newPath === null ? null : below(r.newPath);
      if (np !== r.path || nn !== r.newPath) this.#st.lmlPaths.run(np, nn, r.seq);
      if (r.kind === 'link' && r.target !== null) {
        const nt = r.target === from ? to : below(r.target);
        if (nt !== r.target) this.#st.lmlTarget.run(nt, r.seq);
      }
    }
  }

  /**
   * Pending local records name objects by path; an object moved by another hand than capture's (a server's
   * rename, a conflict step) carries them along: its own records, and those of whatever is below it (a
   * directory's entries), a hard link's target too. Another object's records at exactly that name describe
   * that other object and stay as they are. The LML replays after the server's records, so its paths are
   * the names after that move.
   */
  moveLml(fid: Fid, from: string, to: string): void {
    // Records older than a pending rename of a directory above it knew it by its name before that rename:
    // each era of names is rewritten on its own, `from` and `to` each at the names of then (a rename above
    // both moved both; one above one of them moved that one alone). Before, an era older than a rename above
    // it was rewritten only for a move within one directory: a file made in d/sub, d then moved to e, and
    // e/sub/a.txt set beside the removed e/sub (the conflict step's emptyForRmdir) kept "create d/sub/a.txt", which
    // the server refused for ever ("parent d/sub does not exist here", a resync; chaos seeds 9203, 9212).
    // A name given in another directory than before names that directory by fid too (RecordDraft.parent):
    // the one at `to`'s directory now, which each era's renames take back to its name of then.
    const dir = parentOf(to);
    const d = dir === '' ? undefined : this.#tables.objectByPath(dir);
    const parent = dir === parentOf(from) ? undefined : dir === '' ? ROOT_FID : d?.type === 'dir' ? d.fid : null;
    const renames = this.#tables.pendingRenames();
    const back = (p: string, x: LmlRecord): string => (p.startsWith(`${x.newPath!}/`) ? `${x.path}${p.slice(x.newPath!.length)}` : p);
    let f = from;
    let t = to;
    let hi: bigint | null = null;
    for (let i = renames.length - 1; ; i--) {
      let above: LmlRecord | undefined;
      for (; i >= 0; i--) {
        const x = renames[i]!;
        if ((hi === null || x.seq < hi) && x.newPath !== null && (f.startsWith(`${x.newPath}/`) || t.startsWith(`${x.newPath}/`))) {
          above = x;
          break;
        }
      }
      this.#moveLmlEra(fid, f, t, above?.seq ?? 0n, hi, parent, renames);
      if (above === undefined) break;
      f = back(f, above);
      t = back(t, above);
      hi = above.seq;
    }
    this.#renamedInItsDir(fid, from, to);
  }

  /**
   * A move within one directory (a conflict step setting the object beside under another name): the record that
   * last gives the object its name gives it in that directory by fid (RecordDraft.parent), which is where the
   * server places it whatever the record's path says of the directory. Where that path's directory part is
   * another than the eras above could follow (a directory moved by a conflict step, which no record shows), the
   * record kept the old name, and the server made the object under it, or set it beside under a conflict name
   * of its own, while this node held it under this one ("here at …", a resync; chaos s98 seed 9387, s97 9400).
   * The name within the directory is what changed: it changes in the record (and in the object's later records
   * at that name), the path's directory part as it was.
   */
  #renamedInItsDir(fid: Fid, from: string, to: string): void {
    if (parentOf(from) !== parentOf(to) || baseName(from) === baseName(to)) return;
    const dir = parentOf(to) === '' ? ROOT_FID : this.#tables.objectByPath(parentOf(to))?.fid;
    if (dir === undefined) return;
    const last = this.#tables.localRecordsOf(fid).filter((r) => (CREATE_KINDS.has(r.kind) && r.fid === fid) || (r.kind === 'rename' && r.newPath !== null)).at(-1);
    if (last === undefined || (last.parent ?? null) !== dir) return;
    const name = last.kind === 'rename' ? last.newPath! : last.path;
    if (baseName(name) !== baseName(from)) return;
    this.renameInLml(fid, last.seq, name, joinRel(parentOf(name), baseName(to)));
  }

  /**
   * moveLml for the records with lo < seq < hi (no upper bound when hi is null), which name it `from`.
   * `parent`: the directory the object's own records that name it `from` give it now (undefined: unchanged).
   * `renames`: the pending renames, as moveLml read them before it rewrote anything.
   */
  #moveLmlEra(fid: Fid, from: string, to: string, lo: bigint, hi: bigint | null, parent: Fid | null | undefined, renames: readonly LmlRecord[]): void {
    const move = (r: LmlRecord, p: string): string =>
      p === from ? (r.fid === fid ? to : p) : p.startsWith(`${from}/`) ? `${to}${p.slice(from.length)}` : p;
    // Only the records that name `from` or a name below it (not the whole LML).
    const naming = (this.#st.lmlNaming.all({ p: from }) as Row[]).map(toLml).filter((r) => r.seq > lo && (hi === null || r.seq < hi));
    // Records older than the object's arrival at `from` name what was there then (a directory since moved
    // or removed, whose entries were made below it): they stay. The arrival is its own pending create or
    // move onto `from`, or else it came after the last pending record that took another object away.
    let since = 0n;
    for (const r of naming) {
      const arrives = r.fid === fid && ((r.kind === 'rename' && r.newPath === from) || (CREATE_KINDS.has(r.kind) && r.path === from));
      const leaves = r.fid !== fid && r.path === from && (r.kind === 'rename' || r.kind === 'unlink' || r.kind === 'rmdir');
      if (arrives && r.seq > since) since = r.seq;
      if (leaves && r.seq + 1n > since) since = r.seq + 1n;
    }
    // The name a record gives (a create's path, a rename's new name) names its directory by fid too (`parent`,
    // set when journaled): when that directory is another object, found here away from `to`, the name is in
    // it, whatever its path says. Before, such a name was moved along by its path alone (after a conflict
    // step's moves, which no record shows, had fooled `since`), and the next move of its own object missed it:
    // the server set the object aside under another name than this node's (chaos s53 seed 9242, c3).
    // The directory's name is taken at the record's time: back through the pending renames made after it (the
    // directory's own, or one above it). Before, its name now counted: a file made in d/sub, then `mv d/sub x`
    // here, and the server's `mv d e` kept "create d/sub/f" (sub was at x now, away from e), where the server
    // had sub at e/sub; a conflict step's later move of the file missed the record, and the server made the
    // file under another name than this node's (chaos s89 seed 9301, c2; test/lml-names.test.ts).
    const thenOf = (dir: string, seq: bigint): string => {
      let p = dir;
      for (let i = renames.length - 1; i >= 0; i--) {
        const x = renames[i]!;
        if (x.seq <= seq) break;
        if (x.newPath !== null && (p === x.newPath || p.startsWith(`${x.newPath}/`))) p = `${x.path}${p.slice(x.newPath.length)}`;
      }
      return p;
    };
    const within = (p: string, top: string): boolean => p === top || p.startsWith(`${top}/`);
    const elsewhere = (r: LmlRecord): boolean => {
      if (r.fid === fid || r.parent === undefined || r.parent === null || r.parent === fid) return false;
      const now = r.parent === ROOT_FID ? '' : this.#tables.objectByFid(r.parent)?.path;
      if (now === undefined || within(now, to)) return false;
      const then = thenOf(now, r.seq);
      return then === now || !within(then, from);
    };
    for (const r of naming) {
      // Its own records name it where it was each time (every move rewrote them): they follow it. Before, one
      // older than another object's departure from the name was left behind (that departure came while a
      // conflict step had this one beside the name), and shipped at a name it no longer had.
      if (r.seq < since && !(r.fid === fid && (r.path === from || r.newPath === from))) continue;
      const gives = r.kind === 'rename' ? r.newPath : CREATE_KINDS.has(r.kind) ? r.path : null;
      const keep = gives !== null && elsewhere(r);
      const np = keep && gives === r.path ? r.path : move(r, r.path);
      const nn = r.newPath === null ? null : keep ? r.newPath : move(r, r.newPath);
      if (np !== r.path || nn !== r.newPath) this.#st.lmlPaths.run(np, nn, r.seq);
      const named = r.fid === fid && ((r.kind === 'rename' && r.newPath === from) || (CREATE_KINDS.has(r.kind) && r.path === from));
      if (named && parent !== undefined && (r.parent ?? null) !== parent) this.#st.lmlParentOf.run(parent, r.seq);
      if (r.kind === 'link' && r.target !== null) {
        const nt = r.target === from || r.target.startsWith(`${from}/`) ? `${to}${r.target.slice(from.length)}` : r.target;
        if (nt !== r.target) this.#st.lmlTarget.run(nt, r.seq);
      }
    }
  }

  /**
   * Client side: the server refused a pending record because a directory above it, here as `fid`, does not
   * exist there (the server removed it while a conflict step kept it here, or never accepted it). The
   * directory becomes a new object of this node, made on the server by a mkdir that ships first: every
   * pending record keeps its order after it (they were refused or never sent, so new sequence numbers are
   * safe), and the directory's own later records follow from the new object. `at`: its name as the first
   * pending record knows it (the refused record's parent). Returns the new fid.
   */
  recreateDir(fid: Fid, at: string, now: number): Fid {
    const o = this.#tables.objectByFid(fid);
    if (o === undefined || o.type !== 'dir') throw new Error(`recreateDir: ${fid} is not a directory here`);
    const made = this.#newFid();
    const pending = this.#tables.readLml(0n, 10_000_000);
    for (const r of pending) this.#st.lmlDelete.run(r.seq);
    this.#st.objectFid.run(made, NO_VERSION, fid);
    this.#state.lmlSeq += 1n;
    this.#st.lmlInsert.run({
      seq: this.#state.lmlSeq, kind: 'mkdir', fid: made, path: at, newPath: null, target: null, preVersion: NO_VERSION,
      mode: o.mode, uid: o.uid, gid: o.gid, mtimeMs: o.mtimeMs, size: null, hash: null, origin: this.#tables.meta.nodeId, time: now,
      ...this.#objects.placedOf({ kind: 'mkdir', path: at, newPath: null, target: null }),
    } satisfies LmlRecord);
    for (const r of pending) {
      this.#state.lmlSeq += 1n;
      const mine = r.fid === fid;
      this.#st.lmlInsert.run({ ...r, seq: this.#state.lmlSeq, fid: mine ? made : r.fid, preVersion: mine ? NO_VERSION : r.preVersion, parent: r.parent === fid ? made : (r.parent ?? null), targetFid: r.targetFid ?? null });
    }
    return made;
  }
}
