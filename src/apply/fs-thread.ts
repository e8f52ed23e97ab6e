import { Worker } from 'node:worker_threads';
import { IntersyncError, type ErrorCode } from '#core/errors.js';
import type { ObjectType } from '#core/record.js';
import type { StatIdentity } from '#journal/fileset-db.js';
import type { DiskStat } from '#fsio/disk.js';
import type { NewFile } from './new-file.js';

/** New files to create: names, records and their contents end to end. */
export interface WriteJob {
  readonly kind: 'write';
  readonly id: number;
  readonly files: ReadonlyArray<{ readonly abs: string; readonly d: NewFile }>;
  /** Where each file's content ends in `data`. */
  readonly ends: Uint32Array;
  readonly data: Uint8Array;
}

/** Names to lstat. */
export interface StatJob {
  readonly kind: 'lstat';
  readonly id: number;
  readonly paths: readonly string[];
}

/** Small files to read and hash (the first journaling of a big tree: capture's reads, off its thread). */
export interface HashJob {
  readonly kind: 'hash';
  readonly id: number;
  readonly paths: readonly string[];
}

export type FsJob = WriteJob | StatJob | HashJob;

/** Why a file was not written, across the thread boundary: an IntersyncError's code, or a system call's errno. */
export interface WriteFailure {
  readonly failed: true;
  readonly code: ErrorCode | null;
  readonly errno: string | null;
  readonly message: string;
}

/** Per file of a write job, in its order: the new file's identity, or why it was not written (nothing is left at its name). */
export interface WriteReply {
  readonly kind: 'write';
  readonly id: number;
  readonly done: Array<StatIdentity | WriteFailure>;
}

/** A stat job's answer, packed (one typed array per field, index = the path's); type 0 is "nothing there". */
export interface StatReply {
  readonly kind: 'lstat';
  readonly id: number;
  readonly type: Uint8Array;
  readonly ino: BigUint64Array;
  /** mode, uid, gid, nlink: four per path. */
  readonly ids: Uint32Array;
  readonly size: Float64Array;
  readonly mtimeMs: Float64Array;
  readonly mtimeNs: BigInt64Array;
  readonly ctimeNs: BigInt64Array;
  /** A path whose lstat failed otherwise than by its absence: the first such error. */
  readonly error: { readonly at: number; readonly errno: string | null; readonly message: string } | null;
}

/**
 * A hash job's answer, per path in its order: the SHA-256 of what was read (null: gone, or not a file any more) and
 * the path's lstat right after the read, packed as a stat job's (type 0: nothing there).
 */
export interface HashReply extends Omit<StatReply, 'kind'> {
  readonly kind: 'hash';
  readonly hashes: Array<string | null>;
}

export type FsReply = WriteReply | StatReply | HashReply;

export const STAT_TYPES: ReadonlyArray<DiskStat['type'] | null> = [null, 'file', 'dir', 'symlink', 'other'];

/** The error the thread met, as this thread would have thrown it. */
export function failureError(f: Pick<WriteFailure, 'code' | 'errno' | 'message'>): Error {
  if (f.code !== null) return new IntersyncError(f.code, f.message);
  return Object.assign(new Error(f.message), f.errno === null ? {} : { code: f.errno });
}

/**
 * The apply path's file-system thread: it creates new files (open, write,
 * times, stat, close: the kernel's share of a first copy) and lstats many
 * names (most of a large start-up scan's), while this thread decodes, reads the
 * journal and commits. Jobs run one after the other, in the order given.
 */
export class FsThread {
  readonly #worker: Worker;
  readonly #waiting = new Map<number, { ok: (r: FsReply) => void; fail: (e: Error) => void }>();
  #next = 1;
  #dead: Error | null = null;

  constructor() {
    const ts = import.meta.url.endsWith('.ts');
    const url = new URL(ts ? './fs-thread-worker.ts' : './fs-thread-worker.js', import.meta.url);
    // Under tsx (tests, benchmarks) Node 20 gives a worker no loader hooks: it registers tsx before it loads the thread.
    this.#worker = ts
      ? new Worker(`import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(url.href)}); })`, { eval: true })
      : new Worker(url);
    this.#worker.unref(); // it keeps the process alive only while a job is out (see #post)
    this.#worker.on('message', (r: FsReply) => {
      const w = this.#waiting.get(r.id);
      this.#waiting.delete(r.id);
      if (this.#waiting.size === 0) this.#worker.unref();
      w?.ok(r);
    });
    const die = (e: Error): void => {
      this.#dead ??= e;
      for (const w of this.#waiting.values()) w.fail(e);
      this.#waiting.clear();
    };
    const hint = { hint: 'a bug or a lack of memory; the next start resumes' };
    this.#worker.on('error', (e) => die(new IntersyncError('IO', `the file-system thread failed: ${e.message}`, hint)));
    this.#worker.on('exit', (code) => die(new IntersyncError('IO', `the file-system thread stopped (exit ${code})`, hint)));
  }

  /** Create `files` (with `contents`, one per file); resolves once all are tried, in order. */
  async write(files: WriteJob['files'], contents: readonly Uint8Array[]): Promise<WriteReply['done']> {
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
    const r = await this.#post({ kind: 'write', id: this.#next++, files, ends, data }, [data.buffer, ends.buffer]);
    return (r as WriteReply).done;
  }

  /** lstat each of `paths` (absolute): its stat, or null where nothing is. */
  async lstat(paths: readonly string[]): Promise<Array<DiskStat | null>> {
    return unpackStats((await this.#post({ kind: 'lstat', id: this.#next++, paths }, [])) as StatReply, paths.length);
  }

  /**
   * Read and hash each of `paths` (absolute, small files: read whole), and lstat it after the read: the caller
   * compares that stat with its own from before (a file changed while read is not journaled from this read).
   */
  async hash(paths: readonly string[]): Promise<Array<{ hash: string | null; after: DiskStat | null }>> {
    const r = (await this.#post({ kind: 'hash', id: this.#next++, paths }, [])) as HashReply;
    const after = unpackStats(r, paths.length);
    return after.map((st, i) => ({ hash: r.hashes[i] ?? null, after: st }));
  }

  #post(job: FsJob, transfer: ArrayBuffer[]): Promise<FsReply> {
    if (this.#dead !== null) return Promise.reject(this.#dead);
    return new Promise((ok, fail) => {
      if (this.#waiting.size === 0) this.#worker.ref();
      this.#waiting.set(job.id, { ok, fail });
      this.#worker.postMessage(job, transfer);
    });
  }

  async close(): Promise<void> {
    await this.#worker.terminate();
  }
}

/** The numeric code of a stat type, for StatReply. */
export function statTypeCode(t: ObjectType | 'other'): number {
  return STAT_TYPES.indexOf(t);
}

/** The stats of a stat (or hash) job's answer, in its paths' order; an lstat that failed otherwise than by absence throws. */
function unpackStats(r: Omit<StatReply, 'kind'>, n: number): Array<DiskStat | null> {
  if (r.error !== null) throw failureError({ code: null, errno: r.error.errno, message: r.error.message });
  const out: Array<DiskStat | null> = new Array<DiskStat | null>(n);
  for (let i = 0; i < n; i++) {
    const type = STAT_TYPES[r.type[i]!] ?? null;
    out[i] = type === null ? null : {
      type, ino: r.ino[i]!.toString(), mode: r.ids[4 * i]!, uid: r.ids[4 * i + 1]!, gid: r.ids[4 * i + 2]!, nlink: r.ids[4 * i + 3]!,
      size: r.size[i]!, mtimeMs: r.mtimeMs[i]!, mtimeNs: r.mtimeNs[i]!, ctimeNs: r.ctimeNs[i]!,
    };
  }
  return out;
}
