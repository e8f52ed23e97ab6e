/**
 * Echo suppression. The apply path holds a path while it writes a change that
 * came from a peer; capture defers every event on a held path and looks at it
 * again once released. By then the object table already holds the applied
 * state and stat identity, so the change compares equal and makes no record:
 * what the apply path writes never comes back out of Presto as a local change.
 */
export class EchoGuard {
  readonly #held = new Map<string, number>();
  readonly #onRelease: Array<(path: string) => void> = [];

  hold(path: string): void {
    this.#held.set(path, (this.#held.get(path) ?? 0) + 1);
  }

  release(path: string): void {
    const n = (this.#held.get(path) ?? 0) - 1;
    if (n > 0) {
      this.#held.set(path, n);
      return;
    }
    this.#held.delete(path);
    for (const cb of this.#onRelease) cb(path);
  }

  /** Run `fn` with `paths` held; they are released even when it throws. */
  async around<T>(paths: readonly string[], fn: () => Promise<T> | T): Promise<T> {
    for (const p of paths) this.hold(p);
    try {
      return await fn();
    } finally {
      for (const p of paths) this.release(p);
    }
  }

  isHeld(path: string): boolean {
    return this.#held.has(path);
  }

  get size(): number {
    return this.#held.size;
  }

  onRelease(cb: (path: string) => void): void {
    this.#onRelease.push(cb);
  }
}
