import { formatTid, type Tid } from '#core/ids.js';
import { baseName, joinRel, parentOf } from '#core/paths.js';

/**
 * The name a losing version is kept under: `<name>.conflict-<node>-<tid><.ext>`,
 * the extension last so the copy still opens in its program. `taken` says
 * whether a name is in use; a counter is added until one is free. The tag of an earlier conflict in the
 * name is replaced, not repeated.
 */
export function conflictName(path: string, node: string, tid: Tid, taken: (p: string) => boolean): string {
  const dir = parentOf(path);
  // A copy of a copy keeps one tag, the newest: names must not grow with each conflict (ENAMETOOLONG).
  const base = baseName(path).replace(/\.conflict-[0-9a-f]{16}-[0-9a-f]+(?:-\d+)?/g, '');
  const dot = base.lastIndexOf('.');
  const stem = dot > 0 ? base.slice(0, dot) : base;
  const ext = dot > 0 ? base.slice(dot) : '';
  const tag = `${node}-${formatTid(tid).slice(2).replace(/^0+(?=.)/, '')}`;
  for (let n = 0; ; n++) {
    const candidate = joinRel(dir, `${stem}.conflict-${tag}${n === 0 ? '' : `-${n}`}${ext}`);
    if (!taken(candidate)) return candidate;
  }
}
