import {
  closeSync, fdatasyncSync, fstatSync, fsyncSync, ftruncateSync, lchownSync, linkSync, lstatSync, lutimesSync, mkdirSync,
  openSync, readSync, readdirSync, readlinkSync, renameSync, rmdirSync, statfsSync, symlinkSync, truncateSync,
  unlinkSync, writeSync, chmodSync, fchmodSync, constants, type Stats,
} from 'node:fs';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import type { FuseOps, FuseStat } from 'fuse-native';
import { META_DIR } from '#core/format.js';

/**
 * The mount's operations: each one passes through to the backing directory, as bindfs does, and a change
 * goes through MountJournal so that it is journaled before the answer reaches the program. Paths arrive as
 * FUSE gives them (`/a/b`, the mount's root `/`); the fileset's metadata folder is not shown and cannot be
 * made through the mount (it is never part of the fileset, and a program must not reach its database).
 */
export interface MountJournal {
  /** Make a change on disk with `fn`, then journal what it changed at `paths`; the answer waits for both. */
  change<T>(paths: readonly string[], fn: () => T): Promise<T>;
  /** Data was written (`bytes` in one call; 0: the file was cut) through `fd`, open at `path`: journaled when it is flushed. */
  written(fd: number, path: string, bytes: number): void;
  /** `fd` is flushed (close, fsync): journal the data written through it since, if any. */
  flushed(fd: number, path: string): Promise<void>;
  /** `fd` is released (the last close): forget it. */
  released(fd: number): void;
  /** A failure that is not an errno of the backing directory (a bug, or the journal): logged. */
  failed(op: string, path: string, err: unknown): void;
}

const ENOENT = -osConstants.errno.ENOENT;
const EPERM = -osConstants.errno.EPERM;
const EIO = -osConstants.errno.EIO;

/** `utimens` gets 1073 ms for UTIME_NOW and UTIME_OMIT: the binding turns their tv_nsec (2^30 - 1, - 2) into ms. */
const UTIME_SPECIAL_MS = 1073;

/**
 * The FUSE path as a relative path of the fileset ('' for the root), or null inside the metadata folder. An
 * operation on a file removed while open may come with no path: '' (its removal is journaled already).
 */
export function relOf(p: string | null | undefined): string | null {
  if (typeof p !== 'string') return '';
  const rel = p.replace(/^\/+/, '');
  return rel === META_DIR || rel.startsWith(`${META_DIR}/`) ? null : rel;
}

function errnoOf(e: unknown): number | null {
  const n = (e as NodeJS.ErrnoException | undefined)?.errno;
  return typeof n === 'number' && n !== 0 ? -Math.abs(n) : null;
}

function statOf(st: Stats): FuseStat {
  return {
    mode: st.mode, uid: st.uid, gid: st.gid, size: st.size, dev: st.dev, nlink: st.nlink, ino: st.ino, rdev: st.rdev,
    blksize: st.blksize, blocks: st.blocks, atime: st.atimeMs, mtime: st.mtimeMs, ctime: st.ctimeMs,
  };
}

/** The operations of a passthrough mount of `root`, journaling through `j`. */
export function passthroughOps(root: string, j: MountJournal): FuseOps {
  const abs = (rel: string): string => join(root, rel);

  /** Run a read-only step: its value, or the errno it failed with. */
  const look = <T>(op: string, p: string, cb: (err: number, v?: T) => void, fn: (rel: string) => T): void => {
    const rel = relOf(p);
    if (rel === null) return cb(ENOENT);
    let v: T;
    try {
      v = fn(rel);
    } catch (e) {
      const n = errnoOf(e);
      if (n === null) j.failed(op, p, e);
      return cb(n ?? EIO);
    }
    cb(0, v);
  };

  /** Run a change of `names` (FUSE paths) under the journal: the answer comes once it is journaled. */
  const change = <T>(op: string, names: readonly string[], cb: (err: number, v?: T) => void, fn: (rels: string[]) => T): void => {
    const rels = names.map(relOf);
    if (rels.some((r) => r === null || r === '')) return cb(EPERM);
    const ok = rels as string[];
    j.change(ok, () => fn(ok)).then(
      (v) => cb(0, v),
      (e: unknown) => {
        const n = errnoOf(e);
        if (n === null) j.failed(op, names[0]!, e);
        cb(n ?? EIO);
      },
    );
  };

  return {
    init: (cb) => cb(0),
    statfs: (_p, cb) => {
      try {
        const s = statfsSync(root);
        cb(0, { bsize: s.bsize, frsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, favail: s.ffree, fsid: 0, flag: 0, namemax: 255 });
      } catch (e) {
        cb(errnoOf(e) ?? EIO);
      }
    },
    getattr: (p, cb) => look('getattr', p, cb, (rel) => statOf(lstatSync(abs(rel)))),
    fgetattr: (p, fd, cb) => look('fgetattr', p, cb, () => statOf(fstatSync(fd))),
    readdir: (p, cb) => look('readdir', p, cb, (rel) => {
      const names = readdirSync(abs(rel));
      return ['.', '..', ...(rel === '' ? names.filter((n) => n !== META_DIR) : names)];
    }),
    readlink: (p, cb) => look('readlink', p, cb, (rel) => readlinkSync(abs(rel))),
    open: (p, flags, cb) => look('open', p, cb, (rel) => {
      const fd = openSync(abs(rel), flags);
      // atomic_o_trunc: an open that empties the file is a write, journaled with the data at its close.
      if ((flags & constants.O_TRUNC) !== 0) j.written(fd, rel, 0);
      return fd;
    }),
    // The file exists (empty) when the program gets its descriptor: journaled as made, its data at close.
    // The kernel applied the program's umask to `mode` already: set it as given, past this process's umask.
    create: (p, mode, cb) => change('create', [p], cb, ([rel]) => {
      const fd = openSync(abs(rel!), constants.O_CREAT | constants.O_RDWR | constants.O_EXCL, mode);
      if ((fstatSync(fd).mode & 0o7777) !== (mode & 0o7777)) fchmodSync(fd, mode & 0o7777);
      return fd;
    }),
    read: (p, fd, buf, len, pos, cb) => {
      try {
        cb(readSync(fd, buf, 0, len, pos));
      } catch (e) {
        cb(errnoOf(e) ?? EIO);
      }
    },
    write: (p, fd, buf, len, pos, cb) => {
      try {
        const n = writeSync(fd, buf, 0, len, pos);
        j.written(fd, relOf(p) ?? '', n);
        cb(n);
      } catch (e) {
        cb(errnoOf(e) ?? EIO);
      }
    },
    flush: (p, fd, cb) => {
      j.flushed(fd, relOf(p) ?? '').then(() => cb(0), (e: unknown) => {
        j.failed('flush', p, e);
        cb(0); // the data is on disk: the watcher's reconciler journals it (see docs/architecture.md)
      });
    },
    fsync: (p, datasync, fd, cb) => {
      try {
        if (datasync) fdatasyncSync(fd);
        else fsyncSync(fd);
      } catch (e) {
        return cb(errnoOf(e) ?? EIO);
      }
      j.flushed(fd, relOf(p) ?? '').then(() => cb(0), (e: unknown) => {
        j.failed('fsync', p, e);
        cb(0);
      });
    },
    release: (p, fd, cb) => {
      // A file still dirty here was written after its last flush (through a mapping): journaled now.
      j.flushed(fd, relOf(p) ?? '').catch((e: unknown) => j.failed('release', p, e)).finally(() => {
        j.released(fd);
        try {
          closeSync(fd);
        } catch (e) {
          return cb(errnoOf(e) ?? EIO);
        }
        cb(0);
      });
    },
    truncate: (p, size, cb) => change('truncate', [p], cb, ([rel]) => truncateSync(abs(rel!), size)),
    ftruncate: (p, fd, size, cb) => {
      try {
        ftruncateSync(fd, size);
        j.written(fd, relOf(p) ?? '', 0);
        cb(0);
      } catch (e) {
        cb(errnoOf(e) ?? EIO);
      }
    },
    chown: (p, uid, gid, cb) => change('chown', [p], cb, ([rel]) => lchownSync(abs(rel!), uid, gid)),
    chmod: (p, mode, cb) => change('chmod', [p], cb, ([rel]) => chmodSync(abs(rel!), mode)),
    utimens: (p, atime, mtime, cb) => change('utimens', [p], cb, ([rel]) => {
      const at = atime === UTIME_SPECIAL_MS ? Date.now() : atime;
      const mt = mtime === UTIME_SPECIAL_MS ? Date.now() : mtime;
      lutimesSync(abs(rel!), at / 1000, mt / 1000);
    }),
    unlink: (p, cb) => change('unlink', [p], cb, ([rel]) => unlinkSync(abs(rel!))),
    rmdir: (p, cb) => change('rmdir', [p], cb, ([rel]) => rmdirSync(abs(rel!))),
    mkdir: (p, mode, cb) => change('mkdir', [p], cb, ([rel]) => {
      mkdirSync(abs(rel!), { mode });
      if ((lstatSync(abs(rel!)).mode & 0o7777) !== (mode & 0o7777)) chmodSync(abs(rel!), mode & 0o7777);
    }),
    // Both names: the reconciler tells the move by the inode (one record, whatever the size of a directory).
    rename: (src, dest, cb) => change('rename', [src, dest], cb, ([from, to]) => renameSync(abs(from!), abs(to!))),
    link: (src, dest, cb) => change('link', [dest, src], cb, ([to, from]) => linkSync(abs(from!), abs(to!))),
    symlink: (target, p, cb) => change('symlink', [p], cb, ([rel]) => symlinkSync(target, abs(rel!))),
  };
}
