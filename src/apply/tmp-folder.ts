import { randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, rmSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { PendingVersion } from './versions.js';

/** A fresh temp path in the fileset's temp folder `tmpDir`, on the same file system as the tree. */
export function tmpName(tmpDir: string): string {
  return join(tmpDir, `apply-${process.pid}-${randomBytes(6).toString('hex')}`);
}

/** Where uploaded content waits for the record that names it. */
export function stagedPath(tmpDir: string, hash: string): string {
  return join(tmpDir, `staged-${hash}`);
}

/** A second name in the temp folder for the large file at `abs` about to be replaced, or null (its own fault: none needed). */
export function keepAside(tmpDir: string, abs: string): string | null {
  const keep = tmpName(tmpDir);
  try {
    linkSync(abs, keep);
    return keep;
  } catch {
    return null;
  }
}

/** The old inode's link keepAside made, once the new content is in place: a version (versions.ts), or freed. */
export function freeOld(old: string, version: PendingVersion | null): void {
  if (version?.take(old) !== true) void unlink(old).catch(() => undefined);
}

/** Remove temp files a killed process left behind. */
export function cleanTmp(tmpDir: string): void {
  rmSync(tmpDir, { recursive: true, force: true });
  mkdirSync(tmpDir, { recursive: true, mode: 0o700 });
}
