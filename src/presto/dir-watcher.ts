import { watch as fsWatch, type FSWatcher } from 'node:fs';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

/** The watching primitive: Node's fs.watch by default, a fake or failing one in tests. */
export type WatchFn = (path: string, listener: (event: string, filename: string | Buffer | null) => void) => FSWatcher;

export interface DirWatcherEvents {
  /** Something changed at `name` inside the directory whose inode is `dirIno` (name null: the directory itself). */
  onEntry(dirIno: string, name: string | null): void;
  /** A directory could not be watched because the inotify limit is reached. */
  onLimit(path: string, limit: number | undefined): void;
  /** Any other failure to watch a directory. */
  onError(path: string, err: Error): void;
}

/**
 * One inotify watch per directory, keyed by the directory's inode, never by
 * its path: a watch survives renames of the directory and of its ancestors,
 * and the capture layer resolves the inode to the current path when it
 * processes the event. Directories that cannot be watched (inotify limit) are
 * remembered so the owner can rescan them until a watch succeeds.
 *
 * A watch whose directory may have gone is suspect. inotify drops the watch of a removed directory, and
 * fs.watch says nothing but an event named after the directory itself (libuv reports the watch's own
 * IN_DELETE_SELF, IN_MOVE_SELF and IN_IGNORED with the basename of the path it was made for). The file
 * system hands the freed inode number to the next directory made (ext4 at once), so a table keyed by inode
 * would take the new directory for watched: nothing made in it was journaled until the next start (chaos
 * seed 9201; `rm -rf build && mkdir build`). A suspect watch is not counted as one: the owner watches the
 * directory again (the kernel gives a live directory its old watch back), or drops it when the directory
 * is gone. An entry named like its directory (`a/a`) costs one such check, nothing more.
 */
export class DirWatcher {
  readonly #watchFn: WatchFn;
  readonly #events: DirWatcherEvents;
  readonly #watches = new Map<string, FSWatcher>();
  readonly #unwatched = new Map<string, string>(); // ino -> path when it failed
  readonly #suspect = new Set<string>(); // inodes whose watch may be of a removed directory
  readonly #firstName = new Map<string, string>(); // inode -> basename its kernel watch was first made for
  #closed = false;

  constructor(events: DirWatcherEvents, watchFn: WatchFn = defaultWatch) {
    this.#events = events;
    this.#watchFn = watchFn;
  }

  /**
   * Watch the directory at `absPath` with inode `ino`. A new watch is added
   * before the old one for the same inode is closed, so a re-watch after a
   * rename leaves no gap. Returns false when it could not be watched.
   */
  watch(ino: string, absPath: string): boolean {
    if (this.#closed) return false;
    let w: FSWatcher;
    // libuv shares one kernel watch between the watches of a directory (a re-watch after a rename) and names
    // the directory's own events after the path that watch was first made for: both names count.
    const own = basename(absPath);
    const first = this.#watches.has(ino) ? (this.#firstName.get(ino) ?? own) : own;
    try {
      w = this.#watchFn(absPath, (_event, filename) => {
        const name = filename === null ? null : filename.toString();
        if ((name === own || name === first) && this.#watches.get(ino) === w) {
          // The directory itself removed or moved (or an entry of the same name): look at it again.
          this.#suspect.add(ino);
          this.#events.onEntry(ino, null);
        }
        this.#events.onEntry(ino, name === '' ? null : name);
      });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return false; // gone already; its removal is an event of its parent
      this.#unwatched.set(ino, absPath);
      if (err.code === 'ENOSPC' || err.code === 'EMFILE') this.#events.onLimit(absPath, inotifyLimit());
      else this.#events.onError(absPath, err);
      return false;
    }
    w.on('error', (err) => {
      // The directory went away under the watch; its parent reports the removal.
      if (this.#watches.get(ino) === w) {
        this.#watches.delete(ino);
        this.#suspect.delete(ino);
        this.#firstName.delete(ino);
      }
      w.close();
      if ((err as NodeJS.ErrnoException).code !== 'EPERM' && (err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.#events.onError(absPath, err);
      }
    });
    const old = this.#watches.get(ino);
    this.#watches.set(ino, w);
    this.#firstName.set(ino, first);
    old?.close();
    this.#unwatched.delete(ino);
    this.#suspect.delete(ino);
    return true;
  }

  /** A live watch of the directory with this inode number (not one that may be of a removed directory). */
  isWatched(ino: string): boolean {
    return this.#watches.has(ino) && !this.#suspect.has(ino);
  }

  unwatch(ino: string): void {
    this.#watches.get(ino)?.close();
    this.#watches.delete(ino);
    this.#unwatched.delete(ino);
    this.#suspect.delete(ino);
    this.#firstName.delete(ino);
  }

  /** Inodes whose watch may be of a removed directory: the owner watches each again or drops it. */
  suspects(): readonly string[] {
    return [...this.#suspect];
  }

  /** Directories that could not be watched: inode -> path at the time. */
  unwatched(): ReadonlyMap<string, string> {
    return this.#unwatched;
  }

  get watchCount(): number {
    return this.#watches.size - this.#suspect.size;
  }

  close(): void {
    this.#closed = true;
    for (const w of this.#watches.values()) w.close();
    this.#watches.clear();
    this.#suspect.clear();
    this.#firstName.clear();
  }
}

const defaultWatch: WatchFn = (path, listener) => fsWatch(path, { persistent: true, encoding: 'utf8' }, listener);

/** The kernel's per-user inotify watch limit, when readable. */
export function inotifyLimit(): number | undefined {
  try {
    const n = Number(readFileSync('/proc/sys/fs/inotify/max_user_watches', 'utf8').trim());
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}
