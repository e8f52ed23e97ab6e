import { join } from 'node:path';
import type { Clock } from '#core/clock.js';
import type { FilesetDb } from '#journal/fileset-db.js';
import { lstatOrNull } from '#fsio/disk.js';

/** A held file is journaled at the latest after this many of its subtree's quiet times, even if never quiet. */
const MAX_HOLD_FACTOR = 10;

/**
 * Quiet times per subtree (`subtree-settle-ms` in the config): a file below a configured path is journaled only
 * once it has had no event for that path's time; the longest matching path wins, and a file below none of them
 * follows the fileset-wide `settle-ms` (capture's batch timer, unchanged).
 *
 * Invariants: only a regular file is held, and not one the journal knows under another name (a move into the
 * subtree, a hard link): that is journaled at once, one record with its old name's removal in the same batch; each
 * held key is released once, to the owner's `release`, when its own quiet time has passed since its last hint
 * or when it has waited MAX_HOLD_FACTOR quiet times since its first (a file written without a pause, a log,
 * still reaches the peers); `stop()` drops what is held (the start-up scan of the next start finds it).
 */
export class SubtreeSettle<T> {
  /** [path, ms], longest path first. */
  readonly #rules: ReadonlyArray<readonly [string, number]>;
  readonly #root: string;
  readonly #db: Pick<FilesetDb, 'objectsByIno'>;
  readonly #clock: Clock;
  readonly #release: (items: T[]) => void;
  readonly #held = new Map<string, { item: T; due: number; deadline: number }>();
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Infinity;

  constructor(rules: Readonly<Record<string, number>>, root: string, db: Pick<FilesetDb, 'objectsByIno'>, clock: Clock, release: (items: T[]) => void) {
    this.#rules = Object.entries(rules).map(([p, ms]) => [normalizeSubtree(p), ms] as const).sort((a, b) => b[0].length - a[0].length);
    this.#root = root;
    this.#db = db;
    this.#clock = clock;
    this.#release = release;
  }

  get empty(): boolean {
    return this.#rules.length === 0;
  }

  /** Held hints now. */
  get size(): number {
    return this.#held.size;
  }

  /** The quiet time of the subtree holding `path` (longest match), or undefined outside every configured one. */
  msFor(path: string): number | undefined {
    for (const [p, ms] of this.#rules) if (path === p || path.startsWith(`${p}/`)) return ms;
    return undefined;
  }

  /** Hold the hint `item` (known by `key`) of `path` when it is a file to hold (see above); false: not held. */
  offer(key: string, item: T, path: string): boolean {
    const ms = this.msFor(path);
    if (ms === undefined) return false;
    const st = lstatOrNull(join(this.#root, path));
    if (st?.type !== 'file' || this.#db.objectsByIno(st.ino).some((r) => r.path !== path)) return false;
    this.#hold(key, item, ms);
    return true;
  }

  /** Hold until `ms` quiet: a new hint of the same key starts its quiet time again. */
  #hold(key: string, item: T, ms: number): void {
    const now = this.#clock.monotonic();
    const cur = this.#held.get(key);
    const deadline = cur?.deadline ?? now + Math.max(ms * MAX_HOLD_FACTOR, 1000);
    const due = Math.min(now + ms, deadline);
    this.#held.set(key, { item, due, deadline });
    this.#arm(due);
  }

  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#held.clear();
  }

  #arm(at: number): void {
    if (this.#timer !== undefined && this.#timerAt <= at) return; // fires earlier, and re-arms for the rest
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => this.#fire(), Math.max(0, at - this.#clock.monotonic()));
  }

  #fire(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = this.#clock.monotonic();
    const out: T[] = [];
    let next = Infinity;
    for (const [key, h] of this.#held) {
      if (h.due <= now) {
        out.push(h.item);
        this.#held.delete(key);
      } else next = Math.min(next, h.due);
    }
    if (next !== Infinity) this.#arm(next);
    if (out.length > 0) this.#release(out);
  }
}

/** A subtree as the config names it: relative, no leading or trailing slash (`www/`, `/www` and `www` are one). */
export function normalizeSubtree(p: string): string {
  return p.split('/').filter((s) => s !== '' && s !== '.').join('/');
}
