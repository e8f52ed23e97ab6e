import { join } from 'node:path';
import type { SnapshotEntry } from '#net/snapshot-source.js';
import { lstatOrNull } from '#fsio/disk.js';

/**
 * The files of a snapshot whose hard-link grouping here is not the server's: names the server holds as one
 * inode that are apart here, or names that share an inode here while the server holds them apart. Equal
 * content does not make them equal: a later write through one name would show through the wrong names.
 * A resync places them again instead of keeping them. `here(e)`: the name holds entry e's object here.
 */
export function linkGroupsApart(root: string, entries: readonly SnapshotEntry[], here: (e: SnapshotEntry) => boolean): Set<string> {
  const apart = new Set<string>();
  const serverGroup = new Map<string, string>(); // path -> the group's first name on the server
  const byServerGroup = new Map<string, string[]>();
  const byLocalIno = new Map<string, string[]>();
  for (const e of entries) {
    if (e.type !== 'file') continue;
    const group = e.linkOf ?? e.path;
    serverGroup.set(e.path, group);
    push(byServerGroup, group, e.path);
    // Only what is this object here (not a local object made at the name of one removed here).
    const st = here(e) ? lstatOrNull(join(root, e.path)) : null;
    if (st?.type === 'file') push(byLocalIno, st.ino, e.path);
  }
  for (const paths of byLocalIno.values()) {
    if (new Set(paths.map((p) => serverGroup.get(p))).size > 1) for (const p of paths) apart.add(p);
  }
  for (const paths of byServerGroup.values()) {
    if (paths.length < 2) continue;
    const inos = new Set(paths.map((p) => lstatOrNull(join(root, p))?.ino ?? null));
    if (inos.size > 1 || inos.has(null)) for (const p of paths) apart.add(p);
  }
  return apart;
}

function push(m: Map<string, string[]>, k: string, v: string): void {
  const list = m.get(k);
  if (list === undefined) m.set(k, [v]);
  else list.push(v);
}
