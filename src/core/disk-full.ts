import type { Clock } from './clock.js';
import { IntersyncError, isDiskFull } from './errors.js';

/** What `intersync status` shows while this node's own disk refuses writes for want of space. */
export interface DiskFullStatus {
  readonly code: 'DISK_FULL';
  /** Wall-clock ms of the first refusal of this spell. */
  readonly since: number;
  /** What failed for want of space: the last message of each step whose refusal stands. */
  readonly steps: readonly string[];
  readonly hint: string;
}

/** How long a step's refusal stands without a new one: a step that stopped trying no longer says the disk is full. */
const STALE_MS = 30_000;

/**
 * A node's disk-full state: a state, not a fault. Each step that writes (capture's journal, the apply path,
 * a resync, the status file, a server's reintegration) notes a failure here when it is this node's disk
 * that is full, and says ok when it writes again; the node is full while some step's refusal stands.
 * Invariants: only this node's own ENOSPC/EDQUOT/SQLITE_FULL count (a peer's DISK_FULL answer is the peer's
 * state); `onChange` is called once when the node becomes full and once when it is not any more, so the
 * log says each once however often the steps retry.
 */
export class DiskFullState {
  readonly #clock: Clock;
  readonly #onChange: (full: DiskFullStatus | null) => void;
  readonly #steps = new Map<string, { at: number; message: string }>();
  #since: number | null = null;

  constructor(clock: Clock, onChange: (full: DiskFullStatus | null) => void = () => undefined) {
    this.#clock = clock;
    this.#onChange = onChange;
  }

  /**
   * When `e` says this node's disk is full: note it for `step` and return it as a DISK_FULL error (the cause
   * kept; `what` names what failed in its message). Otherwise null, and nothing changes.
   */
  note(step: string, e: unknown, what = step): IntersyncError | null {
    if (!isDiskFull(e, { local: true })) return null;
    const err = e instanceof IntersyncError && e.code === 'DISK_FULL' ? e : IntersyncError.DISK_FULL(what, e);
    this.#steps.set(step, { at: this.#clock.monotonic(), message: err.message });
    if (this.#since === null) {
      this.#since = this.#clock.now();
      this.#onChange(this.status());
    }
    return err;
  }

  /** `step` wrote again: its refusal no longer stands. */
  ok(step: string): void {
    if (this.#steps.delete(step)) this.#settle();
  }

  /** Null while no refusal stands. */
  status(): DiskFullStatus | null {
    this.#expire();
    if (this.#since === null) return null;
    return {
      code: 'DISK_FULL', since: this.#since, steps: [...this.#steps.values()].map((s) => s.message),
      hint: IntersyncError.DISK_FULL('').hint ?? '',
    };
  }

  get full(): boolean {
    return this.status() !== null;
  }

  #expire(): void {
    const now = this.#clock.monotonic();
    let dropped = false;
    for (const [step, s] of this.#steps) {
      if (now - s.at > STALE_MS) {
        this.#steps.delete(step);
        dropped = true;
      }
    }
    if (dropped) this.#settle();
  }

  #settle(): void {
    if (this.#steps.size > 0 || this.#since === null) return;
    this.#since = null;
    this.#onChange(null);
  }
}
