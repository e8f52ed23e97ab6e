import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import ignoreModule, { type Ignore } from 'ignore';

// A CommonJS module whose types declare `export default`: its factory is also its own `default`.
const ignore = ignoreModule.default;
import { META_DIR } from '#core/format.js';
import { joinRel } from '#core/paths.js';
import { lstatOrNull } from '#fsio/disk.js';

/** The patterns file at the root of a fileset: gitignore syntax, replicated like any file. */
export const IGNORE_FILE = '.intersyncignore';

/** After this many looked-up paths the matcher is rebuilt: the `ignore` library caches every path it was asked. */
const CACHE_MAX = 100_000;

/** A directory holding more entries than this is not walked to see whether it holds ignored names only. */
const KEEP_WALK_MAX = 10_000;

export interface IgnoreStatus {
  /** Patterns in force: the config file's and `.intersyncignore`'s (comments and blank lines not counted). */
  readonly patterns: number;
  /** Ignored names met on disk by the last scan and the changes since (an ignored directory counts once). */
  readonly paths: number;
}

/**
 * The ignore patterns of one fileset: the `ignore` key of the config file plus the `.intersyncignore` at the
 * root of the backing directory, matched with gitignore rules (case-sensitive; a pattern ending in `/` only
 * matches directories; nothing below an ignored directory can be re-included). Capture asks it before it
 * watches, lists or journals a name, and the apply path before it refuses to remove a directory.
 *
 * Invariants: `.intersyncignore` itself and the metadata folder are never ignored (the first is what keeps the
 * nodes' patterns alike); `refresh()` is the only thing that changes the patterns read from the file, so a
 * batch of capture sees one set of patterns from start to end.
 */
export class IgnoreRules {
  readonly #root: string;
  #config: readonly string[];
  #fileText = '';
  #fileStamp = '';
  #ig: Ignore;
  #asked = 0;
  #count = 0;
  readonly #met = new Set<string>();

  constructor(root: string, config: readonly string[] = []) {
    this.#root = root;
    this.#config = [...config];
    this.#ig = this.#build();
    this.refresh();
  }

  /** True when there is no pattern at all (capture then asks nothing). */
  get empty(): boolean {
    return this.#count === 0;
  }

  /** `rel` (a path relative to the root, no leading slash) is ignored; `isDir` for patterns ending in `/`. */
  ignores(rel: string, isDir: boolean): boolean {
    if (this.#count === 0 || rel === '' || rel === IGNORE_FILE || rel === META_DIR || rel.startsWith(`${META_DIR}/`)) return false;
    if (++this.#asked > CACHE_MAX) this.#ig = this.#build();
    try {
      return this.#ig.ignores(isDir ? `${rel}/` : rel);
    } catch {
      return false; // a name the library refuses as not relative (a directory named `...`): never ignored
    }
  }

  /**
   * Read `.intersyncignore` again if its stat changed (a local edit, or a peer's record applied); true when
   * the patterns changed. Capture calls it before each batch, so an edit takes effect live: the caller then
   * rescans the tree (what the change un-ignores is journaled; what it ignores stops being journaled).
   */
  refresh(): boolean {
    const st = lstatOrNull(join(this.#root, IGNORE_FILE));
    const stamp = st === null || st.type !== 'file' ? '' : `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
    if (stamp === this.#fileStamp) return false;
    this.#fileStamp = stamp;
    let text = '';
    if (stamp !== '') {
      try {
        text = readFileSync(join(this.#root, IGNORE_FILE), 'utf8');
      } catch {
        text = ''; // gone meanwhile: its removal is the next change
      }
    }
    if (text === this.#fileText) return false;
    this.#fileText = text;
    this.#ig = this.#build();
    return true;
  }

  /** New patterns from the config file (SIGHUP); true when they changed. */
  setConfig(patterns: readonly string[]): boolean {
    if (patterns.length === this.#config.length && patterns.every((p, i) => p === this.#config[i])) return false;
    this.#config = [...patterns];
    this.#ig = this.#build();
    return true;
  }

  /** Capture met an ignored name (`present`: on disk now) or a name's ignored state went away: for status. */
  note(rel: string, present: boolean): void {
    if (present) this.#met.add(rel);
    else this.#met.delete(rel);
  }

  /** A full rescan starts: what it meets is counted afresh. */
  resetCount(): void {
    this.#met.clear();
  }

  status(): IgnoreStatus {
    return { patterns: this.#count, paths: this.#met.size };
  }

  /**
   * The directory `rel` holds only ignored names, or directories that themselves hold only ignored names (the
   * apply path asks before it refuses a peer's removal of a directory that is not empty here). Bounded: a
   * directory with more than 10,000 entries below it answers false.
   */
  holdsOnlyIgnored(rel: string): boolean {
    if (this.#count === 0) return false;
    let budget = KEEP_WALK_MAX;
    const walk = (dir: string): boolean => {
      let names: string[];
      try {
        names = readdirSync(join(this.#root, dir));
      } catch {
        return false;
      }
      for (const n of names) {
        if (--budget < 0) return false;
        const p = joinRel(dir, n);
        const isDir = lstatOrNull(join(this.#root, p))?.type === 'dir';
        if (this.ignores(p, isDir)) continue;
        if (!isDir || !walk(p)) return false;
      }
      return true;
    };
    return walk(rel);
  }

  #build(): Ignore {
    this.#asked = 0;
    const lines = [...this.#config, ...this.#fileText.split(/\r?\n/)];
    this.#count = lines.filter((l) => l.trim() !== '' && !l.startsWith('#')).length;
    return ignore({ ignoreCase: false }).add(lines);
  }
}
