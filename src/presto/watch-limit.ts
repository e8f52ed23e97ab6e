import type { Logger } from 'pino';
import type { Clock } from '#core/clock.js';
import { IntersyncError } from '#core/errors.js';
import type { WatchLimitStatus } from './capture.js';
import type { DirWatcher } from './dir-watcher.js';

/** What WatchLimit reads of WatchCapture's options (the options object itself is passed, read at each call). */
export interface WatchLimitOptions {
  readonly clock: Clock;
  /** A condition a person must hear about at once (printed by the daemon). */
  readonly onWarning?: (err: IntersyncError) => void;
  /** The status changed while the event loop may be held: publish it now. Called at most once a second. */
  readonly onStatusChange?: () => void;
}

/**
 * The inotify watch limit as WatchCapture meets it. Invariants: one error line and one warning when it is first
 * reached, each further directory left unwatched only at debug level (the status published at most once a
 * second); its status counts the unwatched directories when asked; it holds until every directory is watched
 * again (WatchCapture's poll of unwatched directories says when).
 */
export class WatchLimit {
  readonly #o: WatchLimitOptions;
  readonly #log: Logger;
  readonly #watcher: Pick<DirWatcher, 'unwatched'>;
  #watchLimit: WatchLimitStatus | null = null;
  #statusAt = 0;

  constructor(o: WatchLimitOptions, log: Logger, watcher: Pick<DirWatcher, 'unwatched'>) {
    this.#o = o;
    this.#log = log;
    this.#watcher = watcher;
  }

  /** The directory at `path` could not be watched: the limit (`limit`, when known) is reached. */
  reached(path: string, limit: number | undefined): void {
    const err = IntersyncError.WATCH_LIMIT(path, limit);
    const first = this.#watchLimit === null;
    this.#watchLimit = {
      since: this.#watchLimit?.since ?? this.#o.clock.now(), limit: limit ?? null,
      unwatchedDirs: this.#watcher.unwatched().size, hint: err.hint ?? '', // the failed one is in it already
    };
    // One error line when it starts; each further directory only at debug level, counted in status.
    if (first) {
      this.#log.error({ path, limit, code: err.code, hint: err.hint }, 'inotify watch limit reached');
      this.#o.onWarning?.(err);
    } else {
      this.#log.debug({ path, code: err.code }, 'directory not watched');
      const now = this.#o.clock.monotonic();
      if (now - this.#statusAt >= 1000) {
        this.#statusAt = now;
        this.#o.onStatusChange?.();
      }
    }
  }

  /** No directory is left unwatched: the limit no longer holds (logged once). */
  allWatched(): void {
    if (this.#watchLimit !== null) {
      this.#log.info('every directory is watched again');
      this.#watchLimit = null;
    }
  }

  status(): WatchLimitStatus | null {
    // Counted now, not when the last watch failed: status is right at every moment (issue 19).
    return this.#watchLimit === null ? null : { ...this.#watchLimit, unwatchedDirs: this.#watcher.unwatched().size };
  }
}
