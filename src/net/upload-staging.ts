import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Clock } from '#core/clock.js';
import { IntersyncError } from '#core/errors.js';

/**
 * Uploads staged on the server (`tmp/staged-<hash>`) wait for the record that names them. They are
 * bounded: the bytes staged and being received stay under a quota (an upload past it is refused with
 * QUOTA, retriable), and one not used (uploaded, asked about, or read by a reintegration) for `ttlMs`
 * is removed. The apply path moves a staged file into place when its record comes (no second copy of
 * a large file); a record that finds it gone (removed, or taken by another record of the same content)
 * is answered NEED_CONTENT and its client uploads again.
 */
export class UploadStaging {
  readonly #path: (hash: string) => string;
  readonly #clock: Clock;
  readonly #quota: number;
  readonly #ttlMs: number;
  /** Staged files: hash -> bytes and last use (monotonic ms). */
  readonly #staged = new Map<string, { bytes: number; used: number }>();
  /** Bytes reserved by uploads being received. */
  #receiving = 0;
  #bytes = 0;

  constructor(path: (hash: string) => string, clock: Clock, quota: number, ttlMs: number) {
    this.#path = path;
    this.#clock = clock;
    this.#quota = quota;
    this.#ttlMs = ttlMs;
    this.#adoptExisting();
  }

  /** Bytes staged now and reserved by uploads being received. */
  get bytes(): number {
    return this.#bytes + this.#receiving;
  }

  /** Reserve room for an upload of `size` bytes before receiving it; call the release function when it ends. */
  reserve(size: number): () => void {
    this.sweep();
    if (this.#bytes + this.#receiving + size > this.#quota) {
      throw IntersyncError.QUOTA('staged uploads', this.#quota);
    }
    this.#receiving += size;
    let done = false;
    return () => {
      if (!done) this.#receiving -= size;
      done = true;
    };
  }

  /** The upload of `hash` (`bytes` long) is staged at its path now. */
  staged(hash: string, bytes: number): void {
    const had = this.#staged.get(hash);
    if (had !== undefined) this.#bytes -= had.bytes;
    this.#staged.set(hash, { bytes, used: this.#clock.monotonic() });
    this.#bytes += bytes;
  }

  /** `hash` was asked about or used: it stays another TTL. */
  touch(hash: string): void {
    const e = this.#staged.get(hash);
    if (e !== undefined) e.used = this.#clock.monotonic();
  }

  /** Remove staged uploads unused for the TTL; returns how many went. */
  sweep(): number {
    const now = this.#clock.monotonic();
    let n = 0;
    for (const [hash, e] of this.#staged) {
      if (now - e.used < this.#ttlMs && existsSync(this.#path(hash))) continue; // else unused, or taken by its record
      rmSync(this.#path(hash), { force: true });
      this.#staged.delete(hash);
      this.#bytes -= e.bytes;
      n++;
    }
    return n;
  }

  /** Staged files already in the folder (the tmp folder is cleared at start, so normally none) count too. */
  #adoptExisting(): void {
    const probe = this.#path('x');
    const dir = dirname(probe);
    const prefix = basename(probe).slice(0, -1);
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      if (!name.startsWith(prefix) || !/^[0-9a-f]{64}$/.test(name.slice(prefix.length))) continue;
      try {
        this.staged(name.slice(prefix.length), statSync(`${dir}/${name}`).size);
      } catch {
        // gone meanwhile
      }
    }
  }
}
