import { FsThread } from './fs-thread.js';

/** The apply path's file-system thread (fs-thread.ts), shared by its users: the first starts it, the last stops it. */
export class SharedFsThread {
  #fs: FsThread | null = null;
  #users = 0;

  /** Start the file-system thread, or count one more user of it (it boots while the caller prepares its work). */
  acquire(): void {
    this.#fs ??= new FsThread();
    this.#users++;
  }

  /** One user fewer; the last one stops the thread. */
  async release(): Promise<void> {
    if (this.#users === 0) return;
    if (--this.#users > 0) return;
    const t = this.#fs;
    this.#fs = null;
    await t?.close();
  }

  /** The running thread: acquire() first. */
  running(): FsThread {
    if (this.#fs === null) throw new Error('the file-system thread is not running: acquireThread() first');
    return this.#fs;
  }
}
