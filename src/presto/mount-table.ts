import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { IntersyncError } from '#core/errors.js';

/**
 * The kernel's table of mounts (/proc/self/mountinfo), as far as the filter mount needs it: is a mount point
 * taken, by which `intersync mount` process, is that process still alive, and the cleaning of a mount left
 * behind by a daemon that died (a crash: the kernel keeps the mount, every access fails with ENOTCONN).
 * Nothing here touches the mount point itself: a stat of a stale FUSE mount fails, and one of our own live
 * mount from the process that serves it would wait on itself.
 */

/** The file system type our mounts have in the table (`-o subtype=intersync`). */
export const MOUNT_FSTYPE = 'fuse.intersync';
/** The source field of our mounts: `intersync#PID`, the process serving it (intersync umount signals it). */
const SOURCE_PREFIX = 'intersync#';

export interface MountEntry {
  readonly mountpoint: string;
  readonly fstype: string;
  readonly source: string;
  /** The serving process, for our own mounts (null for any other file system). */
  readonly pid: number | null;
}

/** The fsname a mount of this process gets, which the table shows as its source. */
export function sourceOfThisProcess(): string {
  return `${SOURCE_PREFIX}${process.pid}`;
}

/** mountinfo escapes space, tab, newline and backslash as \ooo octal. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Parse mountinfo text: `id parent maj:min root MOUNTPOINT opts [optional…] - FSTYPE SOURCE superopts`. */
export function parseMountInfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const dash = f.indexOf('-');
    if (dash < 6 || f.length < dash + 3) continue;
    const source = unescape(f[dash + 2]!);
    const fstype = f[dash + 1]!;
    const pid = fstype === MOUNT_FSTYPE && source.startsWith(SOURCE_PREFIX) ? Number(source.slice(SOURCE_PREFIX.length)) : NaN;
    out.push({ mountpoint: unescape(f[4]!), fstype, source, pid: Number.isSafeInteger(pid) && pid > 0 ? pid : null });
  }
  return out;
}

/** The mount on `mountpoint` (an absolute, resolved path), the last one when mounts are stacked. */
export function mountAt(mountpoint: string, table = readFileSync('/proc/self/mountinfo', 'utf8')): MountEntry | null {
  const hits = parseMountInfo(table).filter((e) => e.mountpoint === mountpoint);
  return hits.at(-1) ?? null;
}

/** Whether `pid` runs now (kill 0: EPERM means it runs as another user). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether `pid` runs and is an intersync process (after a crash and a reboot its number may be another's). */
export function servesMounts(pid: number): boolean {
  if (!alive(pid)) return false;
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return argv.includes('intersync') || /cli\/main\.[jt]s/.test(argv);
  } catch {
    return true; // gone a moment ago, or hidden: not ours to detach
  }
}

/**
 * Detach a FUSE mount whatever state its daemon is in: `fusermount -uz` (lazy: programs that still hold
 * files there keep them until they close them), and `umount -l` when fusermount is missing or refuses.
 */
export function detachMount(mountpoint: string): void {
  const tries: Array<[string, string[]]> = [['fusermount', ['-uz', mountpoint]], ['fusermount3', ['-uz', mountpoint]], ['umount', ['-l', mountpoint]]];
  let last: unknown;
  for (const [cmd, args] of tries) {
    try {
      execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      return;
    } catch (e) {
      last = e;
    }
  }
  throw IntersyncError.MOUNT_FAILED(mountpoint, 'it could not be unmounted (fusermount -uz and umount -l failed)', last);
}

/**
 * Make `mountpoint` free for a new mount: an intersync mount whose process is gone (a crash) is detached and
 * reported (true); a live one, or another file system, is refused with MOUNT_BUSY.
 */
export function cleanStaleMount(mountpoint: string): boolean {
  const e = mountAt(mountpoint);
  if (e === null) return false;
  if (e.fstype !== MOUNT_FSTYPE) throw IntersyncError.MOUNT_BUSY(mountpoint, `${e.fstype} from ${e.source}`);
  if (e.pid !== null && e.pid !== process.pid && servesMounts(e.pid)) throw IntersyncError.MOUNT_BUSY(mountpoint, `intersync mount, pid ${e.pid}`);
  detachMount(mountpoint);
  return true;
}
