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

/** A wake-up signal: wait() resolves at the next fire() or after `ms`. */
export class Signal {
  #waiters: Array<() => void> = [];

  fire(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const cb of w) cb();
  }

  wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      const waiters = this.#waiters;
      function done(): void {
        clearTimeout(t);
        const i = waiters.indexOf(done);
        if (i >= 0) waiters.splice(i, 1);
        resolve();
      }
      this.#waiters.push(done);
    });
  }
}
