/** Runs async sections one at a time, in arrival order. */
export class Mutex {
  #tail: Promise<void> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(fn);
    this.#tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}

/**
 * A wake-up signal: wait() resolves at the next fire() or after `ms`. A fire()
 * that finds nobody waiting is remembered and ends the next wait() at once, so
 * a producer that fires between a consumer's check and its wait is never lost.
 */
export class Signal {
  #waiters: Array<() => void> = [];
  #pending = false;

  fire(): void {
    if (this.#waiters.length === 0) {
      this.#pending = true;
      return;
    }
    const w = this.#waiters;
    this.#waiters = [];
    for (const cb of w) cb();
  }

  wait(ms: number): Promise<void> {
    if (this.#pending) {
      this.#pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        const i = this.#waiters.indexOf(done);
        if (i >= 0) this.#waiters.splice(i, 1);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.#waiters.push(done);
    });
  }
}
