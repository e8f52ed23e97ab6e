import { closeSync, constants, copyFileSync, fstatSync, openSync, renameSync, rmSync, chmodSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { conflictName } from '#core/conflict-name.js';
import { formatTid, type NodeId, type Tid } from '#core/ids.js';
import type { RecordDraft } from '#core/record.js';
import { fromStats, lstatOrNull, type DiskStat } from '#fsio/disk.js';
import type { ApplyDeps } from './apply-deps.js';
import { tmpName } from './tmp-folder.js';

/**
 * The file a peer's write, truncate or removal replaces, held open from the apply path's check ("not written here
 * since it was journaled") until the change is in place. A local program may write it in that moment: through
 * the name being replaced, or, for a hard-linked file, through any of the names the apply path renames the new
 * file over in turn. That write goes into this inode, which no name holds any more, and capture never sees it.
 * Held open, the inode is still there to read: the apply path keeps what it holds beside the name, where
 * capture journals it as a local file (chaos s44 seed 9222: a truncate through one of 13 names of an inode,
 * made while the server's write of another was applied, was on no node; test/late-write.test.ts).
 */
export class HeldFile {
  readonly #fd: number;
  /** The file when the check looked at it. */
  readonly stat: DiskStat;

  private constructor(fd: number, stat: DiskStat) {
    this.#fd = fd;
    this.stat = stat;
  }

  /** The regular file at `abs`, held open; null when there is none (gone, a symlink, a directory, a pipe). */
  static open(abs: string): HeldFile | null {
    let fd: number;
    try {
      fd = openSync(abs, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch {
      return null;
    }
    const st = fromStats(fstatSync(fd, { bigint: true }));
    if (st.type !== 'file') {
      closeSync(fd);
      return null;
    }
    return new HeldFile(fd, st);
  }

  /**
   * Whether the inode was written since the check. Its mtime and size suffice where the journal vouched for the
   * file (the check compared its identity with a row not racy, so its last write was at least a racy window before):
   * a write now moves the mtime to another tick. A file written within the window of the check (a racy row) may be
   * written again in the same tick unseen, the one case this does not catch.
   */
  writtenSince(): boolean {
    const now = fromStats(fstatSync(this.#fd, { bigint: true }));
    return now.mtimeNs !== this.stat.mtimeNs || now.size !== this.stat.size;
  }

  /**
   * Keep what the inode holds at `name` in `root` (or beside it, at a conflict name, when `name` is taken), through the
   * temp file `tmp`: not held from capture, so capture journals it as a file made here. Returns where it went.
   */
  keep(root: string, tmp: string, name: string, node: NodeId, tid: Tid): string {
    const now = fromStats(fstatSync(this.#fd, { bigint: true }));
    const taken = (p: string): boolean => lstatOrNull(join(root, p)) !== null;
    const at = taken(name) ? conflictName(name, node, tid, taken) : name;
    try {
      copyFileSync(this.#procPath(), tmp);
      chmodSync(tmp, now.mode);
      renameSync(tmp, join(root, at));
    } catch (e) {
      rmSync(tmp, { force: true });
      throw e;
    }
    return at;
  }

  /** How many names the inode has now, in the tree or outside it (a temp link of the apply path's). */
  links(): number {
    return fromStats(fstatSync(this.#fd, { bigint: true })).nlink;
  }

  /**
   * Put the content at `from` (the new file, in place) into this inode too, with `d`'s mode and mtime: for a name
   * of it that a program moved or linked while the apply path gave the new file the names it knew (disk-change.ts).
   */
  fill(from: string, d: { readonly mode: number; readonly mtimeMs: number }): void {
    copyFileSync(from, this.#procPath());
    chmodSync(this.#procPath(), d.mode);
    utimesSync(this.#procPath(), d.mtimeMs / 1000, d.mtimeMs / 1000);
  }

  close(): void {
    closeSync(this.#fd);
  }

  /** The open file by its descriptor: readable after its last name is gone. */
  #procPath(): string {
    return `/proc/self/fd/${this.#fd}`;
  }
}

/**
 * A local write that landed in the file `d` replaced or removed, between the check and the change (`held`):
 * kept as a file made here, at the name when `d` removed it (a removal loses no write, as in the conflict
 * step), else beside it at a conflict name. Capture journals it like any local file.
 */
export function keepLateWrite(deps: ApplyDeps, d: RecordDraft, held: HeldFile): void {
  try {
    if (!held.writtenSince()) return;
    const tid = deps.db.lastTid;
    const at = held.keep(deps.root, tmpName(deps.tmpDir), d.path, deps.db.meta.nodeId, tid);
    deps.log.warn({ path: d.path, keptAs: at, tid: formatTid(tid) }, 'a local write landed while a peer\'s change of the file was applied: kept as a file made here');
  } catch (e) {
    deps.log.error({ path: d.path, err: (e as Error).message }, 'cannot keep a local write that landed while a peer\'s change was applied');
  }
}
