import { lstatSync } from 'node:fs';
import { IntersyncError } from '#core/errors.js';
import { checkRelPath } from '#core/paths.js';

/**
 * The absolute path of `rel` inside `root`, for writing. `rel` must be a
 * normalised relative path, and every directory on the way must be a real
 * directory inside the tree: a symlink anywhere above the final name would
 * let a peer write outside the backing directory, so it is refused.
 * `checked`, for a run of writes by one caller, remembers the directories
 * found real so far (a first copy writes hundreds of files per directory).
 */
export function confine(root: string, rel: string, checked?: Set<string>): string {
  checkRelPath(rel); // normalised: joining is concatenating
  const base = root.endsWith('/') ? root : `${root}/`;
  const abs = base + rel;
  const cut = abs.lastIndexOf('/');
  if (cut < base.length || checked?.has(abs.slice(0, cut)) === true) return abs; // in the root, or its parent checked (and so every one above)
  const parts = rel.split('/');
  let cur = root;
  for (let i = 0; i < parts.length - 1; i++) {
    cur = i === 0 ? base + parts[0]! : `${cur}/${parts[i]!}`;
    if (checked?.has(cur) === true) continue;
    let st;
    try {
      st = lstatSync(cur);
    } catch {
      const parent = parts.slice(0, i + 1).join('/');
      throw IntersyncError.CONFLICT(rel, `parent ${parent} ${PARENT_MISSING}`, { kind: 'missing-parent', path: rel, parent });
    }
    if (st.isSymbolicLink()) throw IntersyncError.BAD_PATH(rel, `${parts.slice(0, i + 1).join('/')} is a symlink; refusing to write through it`);
    if (!st.isDirectory()) throw IntersyncError.CONFLICT(rel, `${parts.slice(0, i + 1).join('/')} is not a directory here`);
    checked?.add(cur);
  }
  return abs;
}

const PARENT_MISSING = 'does not exist here';
