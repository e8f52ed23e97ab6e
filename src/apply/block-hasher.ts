import { Worker } from 'node:worker_threads';

/**
 * The worker's code, plain CommonJS (evaluated as is, so it runs the same under tsx and from dist/): each
 * message is a list of blocks, each answered with the first 128 bits of its SHA-256 in hex.
 */
const WORKER = `
const { parentPort } = require('node:worker_threads');
const crypto = require('node:crypto');
const sha = typeof crypto.hash === 'function'
  ? (b) => crypto.hash('sha256', b, 'hex')
  : (b) => crypto.createHash('sha256').update(b).digest('hex');
parentPort.on('message', (m) => {
  parentPort.postMessage({ id: m.id, hashes: m.blocks.map((b) => sha(b).slice(0, 32)) });
});
`;

/**
 * Block hashes on a thread of their own, so that reading a large file hashes it twice at the speed of
 * once (the whole-file hash on the caller's thread, the block hashes here) and a delta's fetched blocks
 * are checked while the caller goes on receiving and writing. One worker per process, started by its
 * first use; it never keeps the process alive. (WebCrypto's digest, also off the main thread, costs
 * more on it to start a job than hashing the block there.)
 */
export class BlockHasher {
  static #shared: BlockHasher | undefined;
  readonly #worker: Worker;
  readonly #waiting = new Map<number, { ok: (h: string[]) => void; fail: (e: Error) => void }>();
  #next = 0;

  private constructor() {
    this.#worker = new Worker(WORKER, { eval: true });
    this.#worker.unref();
    this.#worker.on('message', (m: { id: number; hashes: string[] }) => {
      const w = this.#waiting.get(m.id);
      this.#waiting.delete(m.id);
      if (this.#waiting.size === 0) this.#worker.unref(); // held only while an answer is awaited
      w?.ok(m.hashes);
    });
    this.#worker.on('error', (e) => this.#failAll(e));
    this.#worker.on('exit', () => this.#failAll(new Error('block hasher stopped')));
  }

  static shared(): BlockHasher {
    BlockHasher.#shared ??= new BlockHasher();
    return BlockHasher.#shared;
  }

  /** The block hash of each of `blocks`. Each is copied at once: the caller may reuse its buffers when this returns. */
  hash(blocks: readonly Uint8Array[]): Promise<string[]> {
    const copies = blocks.map((b) => new Uint8Array(b)); // a view alone (posting a view would clone its whole buffer)
    const id = this.#next++;
    return new Promise((ok, fail) => {
      if (this.#waiting.size === 0) this.#worker.ref();
      this.#waiting.set(id, { ok, fail });
      this.#worker.postMessage({ id, blocks: copies }, copies.map((c) => c.buffer));
    });
  }

  #failAll(e: Error): void {
    if (BlockHasher.#shared === this) BlockHasher.#shared = undefined;
    for (const w of this.#waiting.values()) w.fail(e);
    this.#waiting.clear();
  }
}
