import { asTid, formatTid, parseTid, type Fid } from '#core/ids.js';
import { IntersyncError } from '#core/errors.js';
import type { RecordDraft } from '#core/record.js';
import type { SnapshotEntry } from '#net/snapshot-source.js';
import { parseNext } from '#net/protocol/lag-fields.js';
import type { CopyDeps, CopyProgress, CopyResult } from './copy-deps.js';
import { finish, writebackEvery } from './copy-flush.js';
import { BATCH_BYTES, isInline, isLarge, type Inline } from './fetch-plan.js';
import { WRITING, admit, checkedEntry, directOf, hasContent, place, placeLarge, placeRun, type PlaceContext } from './place.js';

/**
 * A first copy into an empty table (and directory): one streamed response,
 * the object table at one TID in path order with the content of small files,
 * written as it comes (the server reads while this process writes); large
 * files follow as block transfers. A copy cut short is resumed from a
 * snapshot by the next start.
 */
export async function streamedCopy(d: CopyDeps): Promise<CopyResult> {
  const t0 = d.clock.monotonic();
  d.db.deferHashIndex();
  const p: CopyProgress = { files: 0, totalFiles: 0, bytes: 0, totalBytes: 0 };
  const writeback = writebackEvery(d, p);
  const pipe = new WriterPipe();
  d.apply.acquireThread(); // it boots while the server prepares the stream
  let read: StreamRead;
  try {
    read = await readCopyStream(d, p, pipe, writeback);
    await pipe.drain();
  } finally {
    await pipe.settle();
    await d.apply.releaseThread();
  }
  const { ctx, later } = read;
  for (const e of later) {
    if (isLarge(e)) await placeLarge(ctx, e);
    else placeRun(ctx, [[e, undefined]]);
    d.onProgress(p);
    writeback();
  }
  d.onProgress(p);
  return { tid: formatTid(ctx.tid), files: p.files, bytes: p.bytes, skipped: ctx.skipped, keptAside: [], ms: finish(d, ctx.tid, t0, read.t1) };
}

interface StreamRead {
  readonly ctx: PlaceContext;
  /** When the hello came. */
  readonly t1: number;
  /** Large files and hard links to them, for after the stream. */
  readonly later: readonly SnapshotEntry[];
}

/** Read the copy stream, placing its small entries in runs (through the file-system thread) as they come. */
async function readCopyStream(d: CopyDeps, p: CopyProgress, pipe: WriterPipe, writeback: () => void): Promise<StreamRead> {
  let ctx: PlaceContext | null = null;
  let t1 = 0;
  let run: Array<[SnapshotEntry, Inline | undefined]> = [];
  let runBytes = 0;
  // Large files (and hard links to them) are fetched once the stream is read: it never waits on a block transfer.
  const later: SnapshotEntry[] = [];
  const laterPaths = new Set<string>();
  for await (const f of d.client.copyStream(d.db.lastRcvdOf(d.serverNode))) {
    if (f.type === 'hello') {
      const at = typeof f.header.tid === 'string' ? parseTid(f.header.tid) : undefined;
      if (at === undefined || ctx !== null) throw IntersyncError.PROTOCOL('the copy stream must start with one hello naming its TID');
      ctx = { d, tid: at, fresh: true, p, skipped: 0, policy: d.apply.attrs, apart: new Set() };
      d.onServerTid?.(at, parseNext(f.header.next));
      p.totalFiles = Number(f.header.entries ?? 0);
      p.totalBytes = Number(f.header.bytes ?? 0);
      d.onProgress(p);
      t1 = d.clock.monotonic();
      continue;
    }
    if (ctx === null) throw IntersyncError.PROTOCOL('the copy stream must start with one hello naming its TID');
    if (f.type === 'end') {
      await placeRunPiped(ctx, pipe, run, writeback);
      return { ctx, t1, later };
    }
    if (f.type !== 'entry' || typeof f.header.e !== 'object' || f.header.e === null) throw IntersyncError.PROTOCOL(`unexpected ${f.type} frame in a copy stream`);
    const e = checkedEntry(d, f.header.e);
    if (e === null) {
      ctx.skipped++;
      continue;
    }
    if (isLarge(e) || (e.linkOf !== null && laterPaths.has(e.linkOf))) {
      later.push(e);
      laterPaths.add(e.path);
      continue;
    }
    const got = isInline(e) ? { hash: (f.header.hash as string | null) ?? null, data: f.header.ok === true ? (f.payload ?? Buffer.alloc(0)) : null } : undefined;
    run.push([e, got]);
    runBytes += got?.data?.length ?? 0;
    if (run.length >= STREAM_RUN_FILES || runBytes >= BATCH_BYTES) {
      await placeRunPiped(ctx, pipe, run, writeback);
      run = [];
      runBytes = 0;
    }
  }
  throw IntersyncError.PROTOCOL('the copy stream ended early');
}

/** Small files placed per transaction from the copy stream (or fewer, when their content reaches BATCH_BYTES). */
const STREAM_RUN_FILES = 1_000;

/**
 * Place a run of the copy stream. New files written straight at their names
 * go to the file-system thread, and are journaled when it has written them, while
 * this thread reads the next run. The rest is placed here first: directories
 * (the run's files are in them or in earlier ones), symlinks, files whose
 * content did not come. A run with a hard link waits for the thread (its
 * target may be with it) and is placed here whole.
 */
async function placeRunPiped(
  ctx: PlaceContext, pipe: WriterPipe, run: ReadonlyArray<[SnapshotEntry, Inline | undefined]>, writeback: () => void,
): Promise<void> {
  const { d, p } = ctx;
  const direct: Array<[SnapshotEntry, Inline | undefined]> = [];
  const here: Array<[SnapshotEntry, Inline | undefined]> = [];
  for (const [e, got] of run) {
    if (!ctx.fresh || (e.type === 'file' && e.linkOf !== null)) {
      await pipe.drain();
      placeRun(ctx, run);
      d.onProgress(p);
      writeback();
      return;
    }
    if (hasContent(e, got)) direct.push([e, got]);
    else here.push([e, got]);
  }
  const checkedDirs = new Set<string>();
  placeRun(ctx, here, checkedDirs, false); // its files have no content: none is written (and the note is the thread's runs')
  // Admitted once the run's directories are in place (confinement, the fileset's attribute policy).
  const files: Array<{ e: SnapshotEntry; got: Inline | undefined; d: RecordDraft; buf: Buffer }> = [];
  for (const [e, got] of direct) {
    const draft = admit(ctx, e, checkedDirs);
    const one = draft === null ? null : directOf(draft, e, got);
    if (one === null) ctx.skipped++;
    else files.push({ e, got, ...one });
  }
  if (files.length === 0) {
    d.onProgress(p);
    return;
  }
  await pipe.room(PIPE_RUNS);
  for (const f of files) pipe.writing.add(f.e.path);
  d.db.setMeta(WRITING, JSON.stringify([...pipe.writing]));
  pipe.add(d.apply.createDirectMany(files, (done) => {
    const again: Array<[SnapshotEntry, Inline | undefined]> = [];
    d.db.batch(() => {
      files.forEach((f, i) => {
        const r = done[i]!;
        if (r instanceof Error) {
          if (!(r instanceof IntersyncError) || r.code !== 'CONFLICT') throw r;
          again.push([f.e, f.got]); // something is at the name: placed here, below
          return;
        }
        d.db.commitCopyNew(f.d, asTid(BigInt(f.e.version)), r);
        if (f.d.hash !== f.e.hash) d.behind?.(f.e.fid as Fid, f.e.hash);
        p.files++;
        p.bytes += f.buf.length;
      });
      for (const f of files) pipe.writing.delete(f.e.path);
      d.db.setMeta(WRITING, JSON.stringify([...pipe.writing]));
    });
    // Not noted as WRITING: what is at those names is not this copy's (a crash must not remove it).
    if (again.length > 0) d.db.batch(() => again.forEach(([e, got]) => place(ctx, e, got, null, checkedDirs)));
    d.onProgress(p);
    writeback();
  }, checkedDirs));
}

/** Runs of new files with the file-system thread at once: one being written, one waiting (each up to BATCH_BYTES). */
const PIPE_RUNS = 2;

/** The runs with the file-system thread, journaled as they come back (in order); the first failure ends the copy. */
class WriterPipe {
  readonly #runs: Array<Promise<void>> = [];
  #failed: { e: unknown } | null = null;
  /** Names being written straight into place, in every run here (the WRITING note). */
  readonly writing = new Set<string>();

  add(run: Promise<void>): void {
    const settled = run.catch((e: unknown) => {
      this.#failed ??= { e };
    }).finally(() => {
      this.#runs.splice(this.#runs.indexOf(settled), 1);
    });
    this.#runs.push(settled);
  }

  /** Wait until fewer than `most` runs are here. */
  async room(most: number): Promise<void> {
    while (this.#runs.length >= most) await this.#runs[0];
    this.#check();
  }

  /** Wait for every run; throws the first failure. */
  async drain(): Promise<void> {
    await this.settle();
    this.#check();
  }

  /** Wait for every run, failed or not. */
  async settle(): Promise<void> {
    while (this.#runs.length > 0) await this.#runs[0];
  }

  #check(): void {
    if (this.#failed !== null) throw this.#failed.e;
  }
}
