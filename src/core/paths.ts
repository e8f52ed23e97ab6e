import { IntersyncError } from './errors.js';
import { META_DIR } from './format.js';

/**
 * Paths inside a fileset are relative to the backing directory, '/'-separated,
 * normalised (no '', '.', '..' segments), without NUL, and never inside the
 * metadata folder. Every path that crosses an edge goes through checkRelPath.
 */
/** The longest name (one path segment) Linux file systems store, in bytes. */
export const NAME_MAX = 255;

export function checkRelPath(p: string): string {
  if (typeof p !== 'string' || p.length === 0) throw IntersyncError.BAD_PATH(String(p), 'empty');
  if (p.includes('\0')) throw IntersyncError.BAD_PATH(p, 'contains a NUL byte');
  if (p.startsWith('/')) throw IntersyncError.BAD_PATH(p, 'absolute');
  if (Buffer.byteLength(p) > 4096) throw IntersyncError.BAD_PATH(p.slice(0, 64), 'longer than 4096 bytes');
  const parts = p.split('/');
  for (const part of parts) {
    if (part === '' || part === '.' || part === '..') throw IntersyncError.BAD_PATH(p, `segment '${part}' not allowed`);
    if (part.length > NAME_MAX / 3 && Buffer.byteLength(part) > NAME_MAX) throw IntersyncError.NAME_REFUSED(p, `a name is longer than ${NAME_MAX} bytes`);
  }
  if (parts[0] === META_DIR) throw IntersyncError.BAD_PATH(p, `${META_DIR} is never replicated`);
  return p;
}

export function joinRel(parent: string, name: string): string {
  return parent === '' ? name : `${parent}/${name}`;
}

export function parentOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i < 0 ? '' : p.slice(0, i);
}

export function baseName(p: string): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

export function depthOf(p: string): number {
  let n = 0;
  for (let i = 0; i < p.length; i++) if (p.charCodeAt(i) === 47) n++;
  return n;
}

/** True when `p` is `dir` itself or lies below it. */
export function isUnder(p: string, dir: string): boolean {
  return p === dir || p.startsWith(`${dir}/`);
}
