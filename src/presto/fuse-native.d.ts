// The part of fuse-native (2.2.x, libfuse 2 high-level API) that src/presto/fuse-capture.ts uses; the package
// ships no types. Results: 0 or a negative errno; read and write answer with the byte count instead.
declare module 'fuse-native' {
  type Cb = (err: number) => void;
  type CbWith<T> = (err: number, value?: T) => void;

  export interface FuseStat {
    mode: number; uid: number; gid: number; size: number; dev: number; nlink: number; ino: number;
    rdev: number; blksize: number; blocks: number; atime: Date | number; mtime: Date | number; ctime: Date | number;
  }

  export interface FuseStatfs {
    bsize: number; frsize: number; blocks: number; bfree: number; bavail: number;
    files: number; ffree: number; favail: number; fsid: number; flag: number; namemax: number;
  }

  export interface FuseOps {
    init?(cb: Cb): void;
    statfs?(path: string, cb: CbWith<FuseStatfs>): void;
    getattr?(path: string, cb: CbWith<FuseStat>): void;
    fgetattr?(path: string, fd: number, cb: CbWith<FuseStat>): void;
    readdir?(path: string, cb: (err: number, names?: string[]) => void): void;
    open?(path: string, flags: number, cb: CbWith<number>): void;
    create?(path: string, mode: number, cb: CbWith<number>): void;
    read?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void): void;
    write?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void): void;
    flush?(path: string, fd: number, cb: Cb): void;
    release?(path: string, fd: number, cb: Cb): void;
    fsync?(path: string, datasync: boolean, fd: number, cb: Cb): void;
    truncate?(path: string, size: number, cb: Cb): void;
    ftruncate?(path: string, fd: number, size: number, cb: Cb): void;
    readlink?(path: string, cb: CbWith<string>): void;
    chown?(path: string, uid: number, gid: number, cb: Cb): void;
    chmod?(path: string, mode: number, cb: Cb): void;
    utimens?(path: string, atime: number, mtime: number, cb: Cb): void;
    unlink?(path: string, cb: Cb): void;
    rename?(src: string, dest: string, cb: Cb): void;
    link?(src: string, dest: string, cb: Cb): void;
    symlink?(target: string, path: string, cb: Cb): void;
    mkdir?(path: string, mode: number, cb: Cb): void;
    rmdir?(path: string, cb: Cb): void;
  }

  export interface FuseOptions {
    fsname?: string;
    subtype?: string;
    timeout?: false | number;
    force?: boolean;
    mkdir?: boolean;
    allowOther?: boolean;
    defaultPermissions?: boolean;
    debug?: boolean;
  }

  export default class Fuse {
    constructor(mnt: string, ops: FuseOps, opts?: FuseOptions);
    mount(cb: (err: Error | null) => void): void;
    unmount(cb: (err: Error | null) => void): void;
    static readonly ENOENT: number;
    static readonly EIO: number;
    static readonly EPERM: number;
  }
}
