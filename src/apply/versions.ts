/**
 * Versions of what peers overwrite or delete (Syncthing's "trash can" and "simple" versioning): before the
 * apply path replaces or removes a file for a peer's record, the old content goes to the fileset's version
 * store, `.intermezzo/<fileset>/versions/`, laid out as the tree with one file per version:
 *
 *     versions/<dir of path>/<name>~<YYYYMMDDTHHMMSS.mmmZ>~<TID or ->~<sha256, 12 hex, or ->~<r|d>
 *
 * (the time it was replaced, the TID of the peer's record that replaced it, the start of the old content's
 * hash, r replaced or d deleted). No copy is made: the apply path already renames a temp file over the name,
 * so a hard link of the old inode taken before (keepAside, tmp-folder.ts) is all the store needs; a removal of a
 * file's last name is a rename into the store. The store only ever holds inodes no name of the tree has: a
 * hard-linked file's removal keeps no version (its content lives on under its other names), and its write,
 * which gives every name the new inode, leaves the old one to the store. Empty files keep no version.
 * Only the apply path writes here, so a change made on this node is never versioned; `intersync restore`
 * writes a version back into the tree as an ordinary local change (cli/version-cmds.ts).
 */
import { copyFileSync, linkSync, lstatSync, mkdirSync, readdirSync, renameSync, rmSync, rmdirSync, type Dirent } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { IntersyncError } from '#core/errors.js';
import { formatTid, type Tid } from '#core/ids.js';
import type { RecordDraft, KmlRecord } from '#core/record.js';
import type { FilesetDb, ObjectRow } from '#journal/fileset-db.js';
import { lstatOrNull } from '#fsio/disk.js';

export type VersioningMode = 'off' | 'trash' | 'simple';
export const VERSIONING_MODES: readonly VersioningMode[] = ['off', 'trash', 'simple'];

/** How long or how many: `30d` (s, m, h, d, w) keeps versions younger than that; `10` keeps the newest 10 per file. */
export type VersionsKeep = { readonly ageMs: number } | { readonly count: number };

export interface VersioningSettings {
  readonly mode: VersioningMode;
  readonly keep: VersionsKeep;
}

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** `30d`, `12h`, `10`: undefined when it is none of them. */
export function parseKeep(text: string): VersionsKeep | undefined {
  const age = /^([0-9]{1,6})([smhdw])$/.exec(text);
  if (age !== null && Number(age[1]) > 0) return { ageMs: Number(age[1]) * UNIT_MS[age[2]!]! };
  if (/^[0-9]{1,6}$/.test(text) && Number(text) > 0) return { count: Number(text) };
  return undefined;
}

export function versioningSettings(mode: string, keep: string): VersioningSettings {
  if (!(VERSIONING_MODES as readonly string[]).includes(mode)) throw IntersyncError.BAD_ARGUMENT(`--versioning ${mode} is not off, trash or simple`);
  const k = parseKeep(keep);
  if (k === undefined) throw IntersyncError.BAD_ARGUMENT(`--versions-keep ${keep} is neither an age (30d, 12h, 90m) nor a number of copies (10)`);
  return { mode: mode as VersioningMode, keep: k };
}

/** One version in the store. */
export interface Version {
  /** The path in the tree it was at. */
  readonly path: string;
  /** When a peer's change replaced or removed it (ms since the epoch). */
  readonly time: number;
  readonly tid: string | null;
  /** The first 12 hex digits of its SHA-256, when the journal knew it. */
  readonly hash: string | null;
  readonly how: 'replaced' | 'deleted';
  readonly size: number;
  /** The file in the store. */
  readonly file: string;
}

export function versionsDir(meta: string): string {
  return join(meta, 'versions');
}

/** Where old content waits for its change to be journaled (beside the store: any name can be a tree's). */
function incomingDir(meta: string): string {
  return join(meta, 'versions.incoming');
}
const NAME_MAX = 255;
/** "~20261206T022652.123Z~0x0000000000000010~0123456789ab~r" */
const SUFFIX_BYTES = 1 + 20 + 1 + 18 + 1 + 12 + 2;

function stamp(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, '');
}

function parseStamp(s: string): number | null {
  const m = /^([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})\.([0-9]{3})Z$/.exec(s);
  return m === null ? null : Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!, +m[7]!);
}

/**
 * The store's name for a base name: itself, or (past what a directory entry holds with the suffix) its first
 * bytes; two long names that share them share their versions' listing, the price of a store without an index.
 */
function storeBase(base: string): string {
  const room = NAME_MAX - SUFFIX_BYTES;
  if (Buffer.byteLength(base) <= room) return base;
  let cut = base.slice(0, room);
  while (Buffer.byteLength(cut) > room) cut = cut.slice(0, -1);
  return cut;
}

function parseEntry(name: string): { base: string; time: number; tid: string | null; hash: string | null; how: Version['how'] } | null {
  const f = name.split('~');
  if (f.length < 5) return null;
  const [t, tid, hash, how] = f.slice(-4) as [string, string, string, string];
  const time = parseStamp(t);
  if (time === null || (how !== 'r' && how !== 'd')) return null;
  return { base: f.slice(0, -4).join('~'), time, tid: tid === '-' ? null : tid, hash: hash === '-' ? null : hash, how: how === 'r' ? 'replaced' : 'deleted' };
}

/** Every version of `path` in the store under `meta`, newest first. */
export function listVersions(meta: string, path: string): Version[] {
  const root = versionsDir(meta);
  const slash = path.lastIndexOf('/');
  const dir = slash < 0 ? root : join(root, path.slice(0, slash));
  const base = storeBase(path.slice(slash + 1));
  // Only this name's entries are looked at (a directory of the store holds its neighbours' versions too).
  return entriesOf(dir, slash < 0 ? '' : path.slice(0, slash), undefined, `${base}~`).filter((v) => storeBase(v.path.slice(slash + 1)) === base).sort(newestFirst);
}

/** Every version in the store, grouped by path (newest first in each). */
export function allVersions(meta: string): Map<string, Version[]> {
  const out = new Map<string, Version[]>();
  const walk = (abs: string, rel: string): void => {
    for (const v of entriesOf(abs, rel, (sub) => walk(join(abs, sub), rel === '' ? sub : `${rel}/${sub}`))) {
      const list = out.get(v.path) ?? [];
      list.push(v);
      out.set(v.path, list);
    }
  };
  walk(versionsDir(meta), '');
  for (const list of out.values()) list.sort(newestFirst);
  return out;
}

/** The count and bytes of the store (`intersync status`). */
export function versionStats(meta: string): { count: number; bytes: number } {
  let count = 0;
  let bytes = 0;
  for (const list of allVersions(meta).values()) {
    count += list.length;
    for (const v of list) bytes += v.size;
  }
  return { count, bytes };
}

function newestFirst(a: Version, b: Version): number {
  return b.time - a.time || (b.tid ?? '').localeCompare(a.tid ?? '');
}

function entriesOf(abs: string, rel: string, onDir?: (name: string) => void, prefix = ''): Version[] {
  let ents: Dirent[];
  try {
    ents = readdirSync(abs, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
    throw e;
  }
  const out: Version[] = [];
  for (const e of ents) {
    if (e.isDirectory()) {
      onDir?.(e.name);
      continue;
    }
    const p = e.isFile() && e.name.startsWith(prefix) ? parseEntry(e.name) : null;
    if (p === null) continue;
    const file = join(abs, e.name);
    let size: number;
    try {
      size = lstatSync(file).size;
    } catch {
      continue; // pruned meanwhile
    }
    out.push({ path: rel === '' ? p.base : `${rel}/${p.base}`, time: p.time, tid: p.tid, hash: p.hash, how: p.how, size, file });
  }
  return out;
}

/** What a peer's change about to replace or remove a file keeps of it: filled by the apply path's steps, filed by end(). */
export interface PendingVersion {
  /** A link of the old inode the apply path made before renaming over the name (its keepAside): the store takes it. */
  take(link: string): boolean;
  /** A removal: the file moves into the store instead of being unlinked; false when it keeps no version (then unlink it). */
  moveIn(abs: string): boolean;
  /** The old content is about to be written over in place (a hard-linked inode with names the journal does not know). */
  copyOf(abs: string): void;
  /** The change is journaled. */
  committed(): void;
  /** File what was kept (with the record's TID once committed), or drop it when the change did not happen. */
  end(): void;
}

/**
 * The store of one fileset on one node, written by the apply path (begin) and pruned as the daemon runs:
 * a file's versions at each new one, the whole store at start and every `sweepMs`.
 */
export class VersionStore {
  readonly #meta: string;
  readonly #root: string;
  readonly #incoming: string;
  readonly #settings: VersioningSettings;
  readonly #log: Logger;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;

  constructor(meta: string, settings: VersioningSettings, log: Logger, now: () => number = Date.now) {
    this.#meta = meta;
    this.#root = versionsDir(meta);
    this.#incoming = incomingDir(meta);
    this.#settings = settings;
    this.#log = log;
    this.#now = now;
    rmSync(this.#incoming, { recursive: true, force: true }); // a change cut short by a crash
    mkdirSync(this.#incoming, { recursive: true, mode: 0o700 });
    mkdirSync(this.#root, { recursive: true, mode: 0o700 });
  }

  get settings(): VersioningSettings {
    return this.#settings;
  }

  /** Prune now and every `sweepMs` (an unref'd timer: stop() ends it). */
  startPruning(sweepMs = 3_600_000): void {
    this.prune();
    this.#timer = setInterval(() => this.prune(), sweepMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /**
   * A peer's record `d` is about to change the disk at `abs`: what of the old file to keep, or null when the
   * change replaces or removes no file content (a rename, a directory, a symlink, an empty file).
   */
  begin(d: RecordDraft, db: FilesetDb, abs: string): PendingVersion | null {
    if (this.#settings.mode === 'off' || (d.kind !== 'write' && d.kind !== 'truncate' && d.kind !== 'unlink')) return null;
    const st = lstatOrNull(abs);
    if (st === null || st.type !== 'file' || st.size === 0) return null;
    const row = db.objectByFid(d.fid);
    // The journal's hash is the old content's when the file is as journaled (the apply path refuses the change otherwise).
    const hash = row !== undefined && sameFile(row, st) && row.hash !== null ? row.hash.slice(0, 12) : null;
    const lastTid = db.lastTid;
    const how = d.kind === 'unlink' ? 'd' : 'r';
    let held: string | null = null;
    let committed = false;
    const hold = (): string => join(this.#incoming, `${process.pid}-${randomBytes(6).toString('hex')}`);
    // Into the store's waiting room (the same file system); null when that fails: the caller goes on without a version.
    const moved = (from: string): string | null => {
      const to = hold();
      try {
        renameSync(from, to);
        return to;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.#log.warn({ path: d.path, err: (e as Error).message }, 'versions: cannot keep the old content');
        return null;
      }
    };
    return {
      take: (link) => {
        if (held !== null) return false;
        held = moved(link);
        return held !== null;
      },
      // Only a file's last name: the store holds no inode a name of the tree has.
      moveIn: (at) => {
        const now = lstatOrNull(at);
        if (held !== null || now === null || now.type !== 'file' || now.nlink !== 1 || now.size === 0) return false;
        held = moved(at);
        return held !== null;
      },
      copyOf: (at) => {
        if (held !== null) return;
        const to = hold();
        try {
          copyFileSync(at, to);
          held = to;
        } catch (e) {
          rmSync(to, { force: true });
          this.#log.warn({ path: d.path, err: (e as Error).message }, 'versions: cannot keep a copy of the old content');
        }
      },
      committed: () => {
        committed = true;
      },
      end: () => {
        if (held === null) return;
        const tid = committed ? ((d as Partial<KmlRecord>).tid ?? (db.lastTid !== lastTid ? db.lastTid : null)) : null;
        try {
          this.#file(held, d.path, tid, hash, how);
        } catch (e) {
          rmSync(held, { force: true });
          this.#log.warn({ path: d.path, err: (e as Error).message }, 'versions: cannot file the old content');
        }
      },
    };
  }

  #file(held: string, path: string, tid: Tid | null, hash: string | null, how: 'r' | 'd'): void {
    const slash = path.lastIndexOf('/');
    const dir = slash < 0 ? this.#root : join(this.#root, path.slice(0, slash));
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const base = storeBase(path.slice(slash + 1));
    let t = this.#now();
    let to: string;
    // Two versions of a name in one millisecond: the later one a millisecond on (the store has no other index).
    for (;; t++) {
      to = join(dir, `${base}~${stamp(t)}~${tid === null ? '-' : formatTid(tid)}~${hash ?? '-'}~${how}`);
      if (lstatOrNull(to) === null) break;
    }
    // A link, not a rename: a name taken meanwhile fails (EEXIST) instead of being replaced.
    linkSync(held, to);
    rmSync(held, { force: true });
    this.#log.info({ path, tid: tid === null ? null : formatTid(tid), how: how === 'r' ? 'replaced' : 'deleted' }, 'version kept');
    this.#pruneList(listVersions(this.#meta, path));
  }

  /** Apply the keep rule to the whole store; returns how many versions were removed. */
  prune(): number {
    let removed = 0;
    try {
      for (const list of allVersions(this.#meta).values()) removed += this.#pruneList(list);
      if (lstatOrNull(this.#root) !== null) removeEmptyDirs(this.#root, true);
    } catch (e) {
      this.#log.warn({ err: (e as Error).message }, 'versions: prune failed');
    }
    if (removed > 0) this.#log.info({ removed }, 'versions pruned');
    return removed;
  }

  /** One file's versions, newest first: trash keeps the newest, simple the newest N; an age keeps none older. */
  #pruneList(list: readonly Version[]): number {
    const k = this.#settings.keep;
    const now = this.#now();
    let n = 0;
    list.forEach((v, i) => {
      const drop = (this.#settings.mode === 'trash' && i > 0) || ('count' in k && i >= k.count) || ('ageMs' in k && now - v.time > k.ageMs);
      if (!drop) return;
      rmSync(v.file, { force: true });
      n++;
    });
    return n;
  }
}

function sameFile(row: ObjectRow, st: { ino: string; mtimeNs: bigint; ctimeNs: bigint; size: number }): boolean {
  return row.ino === st.ino && row.mtimeNs === st.mtimeNs && row.ctimeNs === st.ctimeNs && row.size === st.size;
}

function removeEmptyDirs(abs: string, top: boolean): boolean {
  let empty = true;
  for (const e of readdirSync(abs, { withFileTypes: true })) {
    if (e.isDirectory() && removeEmptyDirs(join(abs, e.name), false)) continue;
    empty = false;
  }
  if (empty && !top) {
    try {
      rmdirSync(abs);
    } catch {
      return false; // a version filed meanwhile
    }
  }
  return empty;
}
