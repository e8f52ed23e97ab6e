import { readdirSync, realpathSync, statSync } from 'node:fs';
import type { Logger } from 'pino';
import type FuseType from 'fuse-native';
import { D_UPCALL } from '#core/debug.js';
import { IntersyncError } from '#core/errors.js';
import { Mutex } from '#core/mutex.js';
import { isUnder } from '#core/paths.js';
import type { Capture, CaptureStatus } from './capture.js';
import { passthroughOps, type MountJournal } from './fuse-ops.js';
import { cleanStaleMount, detachMount, mountAt, sourceOfThisProcess } from './mount-table.js';

export interface FuseCaptureOptions {
  /** The backing directory (DIR): where the files live; the mount passes every operation through to it. */
  readonly root: string;
  /** Where the fileset is shown: an existing, empty directory outside DIR. */
  readonly mountpoint: string;
  readonly log: Logger;
  readonly debug: number;
  /**
   * Journal now what changed at these names (relative paths): the watch capture's syncPaths, its reconciler
   * and journal (the server's KML or a client's LML). One road: the mount adds no record format or writer.
   */
  readonly journal: (paths: readonly string[]) => Promise<void>;
  /** The mount went away without stop() (umount from outside, fusermount -u): the daemon should stop. */
  readonly onGone?: () => void;
  /** How often the mount table is looked at for that (default 1000 ms). */
  readonly pollMs?: number;
}

/**
 * libfuse 2 options, passed in the fsname because fuse-native has no field for them (its options are joined
 * into one `-o` string): writes up to 128 KiB a call (the libfuse 2 ceiling), an open with O_TRUNC arriving
 * as one (so the emptying and the data make one record at close), the backing inode numbers, and no caching
 * of names or attributes: the apply path changes DIR under the mount and a program must see that at once.
 * Not hard_remove: with it, libfuse 2 fails every operation on a file removed while open (ENOENT), which
 * programs with unlinked temporary files rely on; without it, such a file is renamed to FUSE_HIDDEN.
 */
const LIBFUSE_OPTIONS = 'subtype=intersync,big_writes,max_write=131072,atomic_o_trunc,use_ino,attr_timeout=0,entry_timeout=0,negative_timeout=0';

/**
 * The names libfuse 2 gives a file removed while still open, until its last close removes it: an ignore
 * pattern of the daemon that runs a mount, so that the removal is journaled as one (the move to such a name
 * is a removal of the old one) and the hidden file is never journaled nor sent to peers.
 */
export const FUSE_HIDDEN = '.fuse_hidden*';

/**
 * Presto, fuse kind: a filter mount of the backing directory. Every operation a program makes on the mount
 * passes through to DIR; a change is journaled before its answer returns to the program (a file's data at
 * its close or fsync, not per write call), with the pre-version the object table holds: changes through the
 * mount run one at a time, each journaled before the next starts. It runs beside the watch capture on DIR,
 * which still catches what is changed in DIR behind the mount's back (docs/architecture.md says why).
 */
export class FuseCapture implements Capture {
  readonly kind = 'fuse';
  readonly #o: FuseCaptureOptions;
  readonly #log: Logger;
  readonly #lock = new Mutex();
  /** Descriptors written through since their last flush, and the name they were written at. */
  readonly #dirty = new Map<number, string>();
  #fuse: FuseType | null = null;
  #state: CaptureStatus['state'] = 'starting';
  #poll: NodeJS.Timeout | undefined;
  #changes = 0;
  #queued = 0;
  #lastError: string | null = null;
  /** Write calls through the mount: how many, their bytes, the largest (big_writes makes it up to 128 KiB). */
  readonly #writes = { calls: 0, bytes: 0, largest: 0 };

  constructor(o: FuseCaptureOptions) {
    this.#o = o;
    this.#log = o.log.child({ component: 'presto', capture: 'fuse', mountpoint: o.mountpoint });
  }

  /** Check the mount point, clean a stale mount left there by a crash, and mount. */
  async start(): Promise<void> {
    const mnt = this.#o.mountpoint;
    if (cleanStaleMount(mnt)) this.#log.warn({}, 'cleaned a stale mount left by a daemon that stopped without unmounting');
    checkMountpoint(this.#o.root, mnt);
    const Fuse = (await import('fuse-native').catch((e: unknown) => {
      throw IntersyncError.MOUNT_FAILED(mnt, `the FUSE binding does not load: ${(e as Error).message}`, e);
    })).default;
    const root = process.getuid?.() === 0;
    const fuse = new Fuse(mnt, passthroughOps(this.#o.root, this.#journalSide()), {
      fsname: `${sourceOfThisProcess()},${LIBFUSE_OPTIONS}`,
      // An operation waits as long as its journaling takes: a timeout would answer for a change not journaled yet.
      timeout: false,
      defaultPermissions: true, // the kernel checks modes, as on DIR
      allowOther: root, // other users see the mount as they see DIR (allow_other needs root or user_allow_other)
    });
    await new Promise<void>((res, rej) => fuse.mount((err) => (err === null ? res() : rej(IntersyncError.MOUNT_FAILED(mnt, err.message, err)))));
    this.#fuse = fuse;
    this.#state = 'watching';
    this.#log.info({ root: this.#o.root }, 'mounted');
    this.#poll = setInterval(() => this.#checkMounted(), this.#o.pollMs ?? 1000);
    this.#poll.unref();
  }

  /** Journal what was written and not closed yet, then unmount (lazily: open files stay usable until closed). */
  async stop(): Promise<void> {
    if (this.#state === 'stopped') return;
    const wasMounted = this.#fuse !== null;
    this.#state = 'stopped';
    if (this.#poll !== undefined) clearInterval(this.#poll);
    const dirty = [...new Set(this.#dirty.values())].filter((p) => p !== '');
    this.#dirty.clear();
    await this.#lock.run(() => this.#journalNow(dirty));
    const fuse = this.#fuse;
    this.#fuse = null;
    if (fuse === null || !wasMounted) return;
    await new Promise<void>((res) => fuse.unmount((err) => {
      if (err !== null && mountAt(this.#o.mountpoint)?.pid === process.pid) {
        try {
          detachMount(this.#o.mountpoint);
        } catch (e) {
          this.#log.error({ err: (e as Error).message }, 'unmount failed');
        }
      }
      res();
    }));
    this.#log.info({ changes: this.#changes, writeCalls: this.#writes.calls, writeBytes: this.#writes.bytes, largestWrite: this.#writes.largest }, 'unmounted');
  }

  async syncPaths(paths: readonly string[]): Promise<void> {
    await this.#lock.run(() => this.#journalNow(paths));
  }

  /** The watch capture beside the mount walks DIR; through the mount nothing is missed. */
  rescan(): void {}

  ignoreChanged(): void {}

  /** Resolves once every change that arrived so far is journaled. */
  async idle(): Promise<void> {
    await this.#lock.run(() => Promise.resolve());
  }

  status(): CaptureStatus {
    return {
      kind: this.kind, state: this.#state, watchedDirs: 0, pending: this.#queued + this.#dirty.size, records: this.#changes,
      lastScan: null, watchLimit: null, lastError: this.#lastError, ignored: null, progress: null,
    };
  }

  /** The journal as the operations see it (see MountJournal). */
  #journalSide(): MountJournal {
    return {
      change: async <T>(paths: readonly string[], fn: () => T): Promise<T> => {
        if (this.#state === 'stopped') throw Object.assign(new Error('the mount is stopping'), { errno: -5 });
        this.#queued++;
        try {
          return await this.#lock.run(async () => {
            const v = fn();
            await this.#journalNow(paths);
            return v;
          });
        } finally {
          this.#queued--;
        }
      },
      written: (fd, path, bytes) => {
        this.#dirty.set(fd, path);
        if (bytes === 0) return;
        this.#writes.calls++;
        this.#writes.bytes += bytes;
        this.#writes.largest = Math.max(this.#writes.largest, bytes);
      },
      flushed: async (fd, path) => {
        if (!this.#dirty.has(fd)) return;
        this.#dirty.delete(fd);
        if (path === '') return; // removed while open: its removal is journaled
        await this.#lock.run(() => this.#journalNow([path]));
      },
      released: (fd) => {
        this.#dirty.delete(fd);
      },
      failed: (op, path, err) => {
        this.#lastError = `${op} ${path}: ${(err as Error).message}`;
        this.#log.error({ op, path, err: (err as Error).message }, 'operation failed');
      },
    };
  }

  /**
   * Journal `paths` now. A failure (a full disk) is logged, not answered to the program: the change is on
   * disk, and the watch capture beside the mount has its event and journals it once it can.
   */
  async #journalNow(paths: readonly string[]): Promise<void> {
    if (paths.length === 0) return;
    if ((this.#o.debug & D_UPCALL) !== 0) this.#log.debug({ paths }, 'journal');
    try {
      await this.#o.journal(paths);
      this.#changes++;
    } catch (e) {
      this.#lastError = `journal ${paths.join(', ')}: ${(e as Error).message}`;
      this.#log.error({ paths, err: (e as Error).message }, 'journaling a change through the mount failed; the watcher retries');
    }
  }

  /** Unmounted from outside (umount, fusermount -u): stop the daemon as SIGTERM would. */
  #checkMounted(): void {
    if (this.#state !== 'watching') return;
    if (mountAt(this.#o.mountpoint)?.pid === process.pid) return;
    this.#log.info({ changes: this.#changes, writeCalls: this.#writes.calls, writeBytes: this.#writes.bytes, largestWrite: this.#writes.largest }, 'unmounted from outside; stopping');
    this.#state = 'stopped';
    this.#fuse = null;
    if (this.#poll !== undefined) clearInterval(this.#poll);
    this.#o.onGone?.();
  }
}

/**
 * The mount point must be an existing empty directory that is neither DIR, inside it (the watcher would walk
 * into the mount, and a stat of it from this process waits on itself), nor above it.
 */
function checkMountpoint(root: string, mnt: string): void {
  let st;
  try {
    st = statSync(mnt);
  } catch (e) {
    throw IntersyncError.MOUNT_FAILED(mnt, `it does not exist (${(e as NodeJS.ErrnoException).code ?? 'error'})`, e);
  }
  if (!st.isDirectory()) throw IntersyncError.NOT_A_DIRECTORY(mnt);
  const r = realpathSync(root);
  const m = realpathSync(mnt);
  if (isUnder(m, r) || isUnder(r, m)) throw IntersyncError.MOUNT_FAILED(mnt, `it is ${m === r ? 'DIR itself' : isUnder(m, r) ? 'inside DIR' : 'above DIR'}; choose a directory outside ${r}`);
  if (readdirSync(mnt).length > 0) throw IntersyncError.MOUNT_FAILED(mnt, 'it is not empty (what it holds would be hidden under the mount)');
}
