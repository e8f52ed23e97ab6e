import { Worker } from 'node:worker_threads';
import { IntersyncError, type ErrorCode } from '#core/errors.js';
import type { StatIdentity } from '#journal/fileset-db.js';
import type { NewFile } from './new-file.js';

/** New files for the writer thread: names, records and their contents end to end. */
export interface WriteJob {
  readonly id: number;
  readonly files: ReadonlyArray<{ readonly abs: string; readonly d: NewFile }>;
  /** Where each file's content ends in `data`. */
  readonly ends: Uint32Array;
  readonly data: Uint8Array;
}

/** Why a file was not written, across the thread boundary: an IntersyncError's code, or a system call's errno. */
export interface WriteFailure {
  readonly failed: true;
  readonly code: ErrorCode | null;
  readonly errno: string | null;
  readonly message: string;
}

/** Per file of a job, in its order: the new file's identity, or why it was not written (nothing is left at its name). */
export interface WriteReply {
  readonly id: number;
  readonly done: Array<StatIdentity | WriteFailure>;
}

/** The error the writer thread met, as this thread would have thrown it. */
export function failureError(f: WriteFailure): Error {
  if (f.code !== null) return new IntersyncError(f.code, f.message);
  return Object.assign(new Error(f.message), f.errno === null ? {} : { code: f.errno });
}

/**
 * A thread that creates new files (open, write, times, stat, close: the
 * kernel's share of a first copy), so that this thread can decode and
 * journal while the kernel works. Jobs run one after the other, in the order
 * given; each resolves with its files' identities or errors.
 */
export class WriterThread {
  readonly #worker: Worker;
  readonly #waiting = new Map<number, { ok: (r: WriteReply['done']) => void; fail: (e: Error) => void }>();
  #next = 1;
  #dead: Error | null = null;

  constructor() {
    const ts = import.meta.url.endsWith('.ts');
    const url = new URL(ts ? './writer-thread.ts' : './writer-thread.js', import.meta.url);
    // Under tsx (tests, benchmarks) Node 20 gives a worker no loader hooks: it registers tsx before it loads the thread.
    this.#worker = ts
      ? new Worker(`import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(url.href)}); })`, { eval: true })
      : new Worker(url);
    this.#worker.unref(); // it keeps the process alive only while a job is out (see write)
    this.#worker.on('message', (r: WriteReply) => {
      const w = this.#waiting.get(r.id);
      this.#waiting.delete(r.id);
      if (this.#waiting.size === 0) this.#worker.unref();
      w?.ok(r.done);
    });
    const die = (e: Error): void => {
      this.#dead ??= e;
      for (const w of this.#waiting.values()) w.fail(e);
      this.#waiting.clear();
    };
    const hint = { hint: 'a bug or a lack of memory; the next start resumes the copy' };
    this.#worker.on('error', (e) => die(new IntersyncError('IO', `the writer thread failed: ${e.message}`, hint)));
    this.#worker.on('exit', (code) => die(new IntersyncError('IO', `the writer thread stopped (exit ${code})`, hint)));
  }

  /** Create `files` (with `contents`, one per file); resolves once all are tried, in order. */
  write(files: WriteJob['files'], contents: readonly Uint8Array[]): Promise<WriteReply['done']> {
    if (this.#dead !== null) return Promise.reject(this.#dead);
    let size = 0;
    for (const c of contents) size += c.length;
    const data = new Uint8Array(size);
    const ends = new Uint32Array(contents.length);
    let at = 0;
    for (let i = 0; i < contents.length; i++) {
      data.set(contents[i]!, at);
      at += contents[i]!.length;
      ends[i] = at;
    }
    const job: WriteJob = { id: this.#next++, files, ends, data };
    return new Promise((ok, fail) => {
      if (this.#waiting.size === 0) this.#worker.ref();
      this.#waiting.set(job.id, { ok, fail });
      this.#worker.postMessage(job, [data.buffer, ends.buffer]);
    });
  }

  async close(): Promise<void> {
    await this.#worker.terminate();
  }
}
