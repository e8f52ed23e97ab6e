/**
 * Capped exponential backoff with jitter, the one used by every loop that retries a peer: the stream
 * follower, the reintegrator and a client's first contact. Each wait is the current step plus up to as
 * much again at random (so nodes cut at once do not come back at once); the step doubles up to the cap.
 * A full disk is looked at again every 2 s at most: space may come back any time.
 */
export const DISK_FULL_CAP_MS = 2000;
export const BACKOFF_CAP_MS = 10_000;

export class Backoff {
  #step: number;

  /** `random`: the jitter's source, [0, 1) (a test gives its own to know each wait). */
  constructor(readonly first: number, readonly cap = BACKOFF_CAP_MS, readonly random: () => number = Math.random) {
    this.#step = first;
  }

  /** The step the next wait is based on (without its jitter), for logs. */
  get step(): number {
    return this.#step;
  }

  /** The wait before the next try; then the step doubles, up to `cap` (DISK_FULL_CAP_MS when the disk is full). */
  next(diskFull = false): number {
    const wait = this.#step + this.random() * this.#step;
    this.#step = Math.min(this.#step * 2, diskFull ? DISK_FULL_CAP_MS : this.cap);
    return wait;
  }

  /** A try went through: the next failure waits the first step again. */
  reset(): void {
    this.#step = this.first;
  }
}
