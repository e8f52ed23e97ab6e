import type { Logger } from 'pino';
import type { Clock } from '#core/clock.js';
import { NO_VERSION, asTid, formatTid, parseTid, type Fid, type NodeId, type Tid } from '#core/ids.js';
import { IntersyncError } from '#core/errors.js';
import { conflictName } from '#core/conflict-name.js';
import { depthOf } from '#core/paths.js';
import type { RecordDraft } from '#core/record.js';
import { sha256Hex } from '#core/sha256.js';
import type { ApplyPath, ContentSource, Staged } from '#apply/apply-path.js';
import { isInlineSize } from '#core/format.js';
import type { FilesetDb } from '#journal/fileset-db.js';
import type { Snapshot, SnapshotEntry, SnapshotSource } from '#net/snapshot-source.js';
import { evacuate, keepIfChanged, keepUnacknowledged, misplaced, moveDir, pendingPutBack, protectLocal, putBackAside, type PutBack } from './resync-protect.js';
import { hashFileSync, lstatOrNull } from '#fsio/disk.js';
import { chmodSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { linkGroupsApart } from './link-groups.js';
import { confine } from '#apply/confine.js';
import { parseWireEntry } from '#net/protocol/wire-record.js';
import { modeChange, type AttrPolicy } from '#policy/attr-policy.js';
import { noteRefused } from './client-attrs.js';
import { join } from 'node:path';
import { parseNext } from '#net/protocol/lag-fields.js';

export interface CopyProgress {
  files: number;
  totalFiles: number;
  bytes: number;
  totalBytes: number;
}

/** A whole copy from the server: the first one (or its resumption after a kill), or a resync's. */
export type CopyKind = 'first copy' | 'resync';

/**
 * Who shows a copy's progress to a person (the CLI: a bar or lines). Invariant: each copy is `begin`, then
 * its reports in order, then `end`, also when it fails half-way; copies never overlap.
 */
export interface CopyObserver {
  begin(kind: CopyKind): void;
  progress(p: CopyProgress): void;
  end(): void;
}

export interface CopyDeps {
  readonly db: FilesetDb;
  readonly apply: ApplyPath;
  /** Where the copy comes from: the server (PeerClient). */
  readonly client: SnapshotSource;
  readonly source: ContentSource;
  readonly root: string;
  readonly serverNode: string;
  readonly log: Logger;
  readonly clock: Clock;
  readonly onProgress: (p: CopyProgress) => void;
  /**
   * The TID the copy brings this node to, once known, and the first record of the server's KML after this
   * node's last_rcvd when the server says (the snapshot's or copy stream's `next`; an older server does not):
   * where the lag counts from until the copy is in, for a first copy and a resync alike.
   */
  readonly onServerTid?: (tid: Tid, next: { tid: Tid; time: number } | null) => void;
  /** Objects whose pending records the server kept refusing (a resync): rebased on the snapshot, see protectLocal. */
  readonly stuck?: ReadonlySet<Fid>;
}

/** Batches grow from FIRST_BATCH_FILES (writing starts soon) to BATCH_FILES (few requests and transactions). */
const FIRST_BATCH_FILES = 250;
const BATCH_FILES = 2_000;
const BATCH_BYTES = 8 << 20;
/** Written back in the background every so many files or bytes, so that the final flush is short. */
const WRITEBACK_FILES = 4_000;
const WRITEBACK_BYTES = 64 << 20;
/** Content requests in flight while a batch is written. */
const PREFETCH = 2;

const yieldToIo = (): Promise<void> => new Promise((r) => setImmediate(r));

export interface CopyResult {
  tid: string;
  files: number;
  bytes: number;
  skipped: number;
  keptAside: string[];
  /** Where the time went: the snapshot request (or the copy stream's hello), placing the files, making them durable. */
  ms: { snapshot: number; place: number; flush: number };
}

/**
 * A client's first copy of the whole fileset, the server's object table at
 * one TID, through the apply path: streamed into an empty table, else from a
 * snapshot. Resumable: an object already here with the snapshot's fid and
 * content is skipped, leftovers of an older snapshot are removed, local
 * changes not accepted yet are protected. When done the forwarded stream
 * follows from that TID, so nothing changed on the server during the copy is
 * lost; the capture that starts after it journals what changed here meanwhile.
 */
export async function firstCopy(d: CopyDeps): Promise<CopyResult> {
  dropUnjournaled(d);
  if (d.db.objectCount() === 0 && d.db.lmlCount() === 0) return streamedCopy(d);
  const t0 = d.clock.monotonic();
  // This node's last_rcvd: the server names the first record after it, where the lag counts from during a resync.
  const raw = await d.client.snapshot(d.db.lastRcvdOf(d.serverNode));
  const t1 = d.clock.monotonic();
  const tid = parseTid(raw.tid);
  if (tid === undefined || !Array.isArray(raw.entries)) throw IntersyncError.PROTOCOL('the snapshot must name its TID and list its entries');
  d.onServerTid?.(tid, parseNext(raw.next));
  const policy = d.apply.attrs;
  const snap = { ...raw, entries: raw.entries.map((e) => checkedEntry(d, e)).filter((e): e is SnapshotEntry => e !== null) };
  const earlier = pendingPutBack(d);
  const { skip, putBack, entries, here } = protectLocal(d, snap.entries, tid, earlier);
  try {
    return await placeSnapshot(d, snap, tid, t0, t1, skip, putBack, entries, here, policy);
  } catch (e) {
    // Whatever was placed or not, the local versions saved above come back into the tree now (beside their
    // names), so a failed resync never holds them out of it; the next one places the rest.
    try {
      putBackAside(d, putBack, tid);
    } catch (e2) {
      d.log.error({ err: (e2 as Error).message }, 'resync: cannot put back the saved local versions yet; the next try will');
    }
    throw e;
  }
}

async function placeSnapshot(
  d: CopyDeps, snap: Snapshot, tid: Tid, t0: number, t1: number, skip: Set<string>, putBack: PutBack, entries: SnapshotEntry[],
  here: (e: SnapshotEntry) => SnapshotEntry, policy: AttrPolicy,
): Promise<CopyResult> {
  const inSnap = new Set(snap.entries.map((e) => e.fid));
  // Leftovers of an interrupted copy of an older snapshot (not local creations, which have no version yet).
  const leftovers = [...d.db.allObjects()].filter((o) => !inSnap.has(o.fid) && o.version !== NO_VERSION && !d.db.hasPendingLocal(o.fid));
  leftovers.sort((a, b) => depthOf(b.path) - depthOf(a.path));
  if (leftovers.length > 0) d.log.warn({ n: leftovers.length, removed: leftovers.slice(0, 20).map((o) => o.path) }, 'resync: objects the server does not have are removed here');
  for (const o of leftovers) {
    if (d.db.objectByFid(o.fid) === undefined) continue; // below a leftover directory removed already
    if (o.type === 'dir') evacuate(d, o.path, tid);
    else keepIfChanged(d, o.path, tid);
    rmSync(join(d.root, o.path), { recursive: true, force: true });
    d.db.forget(o.fid);
  }
  // A file or symlink made here with no pending record (the record went with an earlier step) would stay
  // here and nowhere else for good, through every resync: forgotten, the scan after the resync journals it
  // again as new, and it ships.
  for (const o of [...d.db.allObjects()]) {
    if (o.type !== 'dir' && o.version === NO_VERSION && !inSnap.has(o.fid) && !d.db.hasPendingLocal(o.fid)) {
      d.log.warn({ path: o.path, fid: o.fid }, 'resync: a local object with no pending record is journaled again as new');
      d.db.forget(o.fid);
    }
  }
  // Into an empty table (the usual first copy) no snapshot entry can be here already: no lookups needed,
  // and files are written straight at their names.
  const fresh = d.db.objectCount() === 0;
  if (fresh) d.db.deferHashIndex();
  // Names whose hard-link grouping here is not the server's are placed again, however equal their content.
  const apart = fresh ? new Set<string>() : linkGroupsApart(d.root, entries.filter((e) => !skip.has(e.fid)), (e) => d.db.objectByFid(e.fid as Fid)?.path === e.path);
  const have = (e: SnapshotEntry): boolean => {
    if (apart.has(e.path)) return false;
    const o = d.db.objectByFid(e.fid as Fid);
    // The mode as this fileset takes it from a peer (set-id bits may be dropped), not as the server has it.
    const mode = o === undefined || o.type === 'symlink' ? 0 : d.apply.localize(draftOf(e, d.serverNode as NodeId, 0), policy).mode;
    return o !== undefined && o.path === e.path && o.hash === e.hash && o.type === e.type && sameMode(o.mode, { ...e, mode }) && lstatOrNull(join(d.root, e.path)) !== null;
  };
  const todo = entries.filter((e) => !skip.has(e.fid) && (fresh || !have(e)));
  if (!fresh && todo.length > 0) {
    // What a resync changes, said: a person (or a test) can then tell how this node went astray.
    const why = (e: SnapshotEntry): string => {
      const o = d.db.objectByFid(e.fid as Fid);
      if (o === undefined) return 'not here';
      const all = [
        o.path === e.path ? null : `here at ${o.path}`,
        o.type === e.type ? null : `a ${o.type} here`,
        o.hash === e.hash ? null : 'other content',
        o.target === e.target ? null : 'other symlink target',
        o.mode === e.mode ? null : 'other mode',
        formatTid(o.version) === e.version ? null : `version ${formatTid(o.version)} here, ${e.version} there`,
        apart.has(e.path) ? 'hard links grouped otherwise' : null,
        lstatOrNull(join(d.root, o.path)) === null ? 'not on disk' : null,
      ].filter((x) => x !== null);
      return all.length === 0 ? 'differs' : all.join(', ');
    };
    d.log.warn({ n: todo.length, differs: todo.slice(0, 20).map((e) => `${e.path}: ${why(e)}`) }, 'resync: objects that differ from the server\'s are placed again');
  }
  const p: CopyProgress = { files: 0, totalFiles: todo.length, bytes: 0, totalBytes: todo.reduce((n, e) => n + (e.size ?? 0), 0) };
  d.onProgress(p);
  const batches = batchesOf(todo);
  const ctx: PlaceContext = { d, tid, fresh, p, skipped: snap.entries.length - todo.length, policy, apart, here, inSnap };
  // One request brings the content of many small files. The next batches' requests go out (the yield lets
  // them leave) before this batch is written, so the server reads them while this process writes.
  const inFlight: Array<Promise<Content>> = [];
  let asked = 0;
  const ask = (): void => {
    while (inFlight.length < PREFETCH && asked < batches.length) {
      const c = contentOf(d, batches[asked++]!);
      c.catch(() => undefined); // awaited in its turn; a failure then ends the copy
      inFlight.push(c);
    }
  };
  ask();
  const writeback = writebackEvery(d, p);
  for (const batch of batches) {
    const content = await inFlight.shift()!;
    ask();
    await yieldToIo();
    // Small entries are placed in runs, each run one transaction; a large file is staged on its own in between.
    let run: Array<[SnapshotEntry, Inline | undefined]> = [];
    for (const e of batch) {
      if (!isLarge(e)) {
        run.push([e, content.get(e.fid)]);
        continue;
      }
      placeRun(ctx, run);
      run = [];
      await placeLarge(ctx, e);
    }
    placeRun(ctx, run);
    d.onProgress(p);
    writeback();
  }
  // Kept local changes of objects a moved directory did not bring to the server's name: kept beside instead.
  const again = misplaced(d, skip, entries.map(here), putBack);
  if (again.length > 0) {
    const content = await contentOf(d, again);
    for (const e of again) {
      if (isLarge(e)) await placeLarge(ctx, e);
      else placeRun(ctx, [[e, content.get(e.fid)]]);
    }
  }
  const ms = finish(d, tid, t0, t1);
  // Local versions that lost their name come back beside it, as local changes capture will journal.
  const keptAside = putBackAside(d, putBack, tid);
  return { tid: snap.tid, files: p.files, bytes: p.bytes, skipped: ctx.skipped, keptAside, ms };
}

/**
 * A first copy into an empty table (and directory): one streamed response,
 * the object table at one TID in path order with the content of small files,
 * written as it comes (the server reads while this process writes); large
 * files follow as block transfers. A copy cut short is resumed from a
 * snapshot by the next start.
 */
async function streamedCopy(d: CopyDeps): Promise<CopyResult> {
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

/** Make the copy durable, then mark it done at `tid` (the stream follows from there); where the time went. */
function finish(d: CopyDeps, tid: Tid, t0: number, t1: number): CopyResult['ms'] {
  const t2 = d.clock.monotonic();
  d.apply.flush();
  d.db.finishCopy(d.serverNode, tid, d.clock.now());
  return { snapshot: Math.round(t1 - t0), place: Math.round(t2 - t1), flush: Math.round(d.clock.monotonic() - t2) };
}

/** Small files placed per transaction from the copy stream (or fewer, when their content reaches BATCH_BYTES). */
const STREAM_RUN_FILES = 1_000;

type Inline = { hash: string | null; data: Buffer | null };

/**
 * Place a run of small entries (with their content) in one transaction.
 * `note` false: none of them is a file written straight at its name, and
 * the WRITING note is left to the runs with the file-system thread.
 */
function placeRun(ctx: PlaceContext, run: ReadonlyArray<[SnapshotEntry, Inline | undefined]>, checkedDirs = new Set<string>(), note = true): void {
  if (run.length === 0) return;
  const { d, fresh } = ctx;
  // Names written directly are noted first, so that a start after a crash knows they are not the user's.
  const files = fresh && note ? run.filter(([e]) => e.type === 'file').map(([e]) => e.path) : [];
  if (files.length > 0) d.db.setMeta(WRITING, JSON.stringify(files));
  d.db.batch(() => {
    for (const [e, got] of run) place(ctx, e, got, null, checkedDirs);
    if (files.length > 0) d.db.setMeta(WRITING, '[]');
  });
}

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

/** A large file: staged on its own (block transfer), then placed. */
async function placeLarge(ctx: PlaceContext, entry: SnapshotEntry): Promise<void> {
  const { d } = ctx;
  const e = ctx.here?.(entry) ?? entry;
  const draft = admit(ctx, e);
  if (draft === null) {
    ctx.skipped++;
    return;
  }
  const staged = await d.apply.stage(draft, null, d.source);
  place(ctx, e, undefined, staged);
}

/** A check to call after each run: starts a background writeback every WRITEBACK_FILES files or WRITEBACK_BYTES bytes. */
function writebackEvery(d: CopyDeps, p: CopyProgress): () => void {
  let written = 0;
  let made = 0;
  return () => {
    if (p.bytes - written < WRITEBACK_BYTES && p.files - made < WRITEBACK_FILES) return;
    d.apply.startWriteback();
    written = p.bytes;
    made = p.files;
  };
}

const isLarge = (e: SnapshotEntry): boolean => e.type === 'file' && e.linkOf === null && !isInlineSize(e.size ?? 0);
const isInline = (e: SnapshotEntry): boolean => e.type === 'file' && e.linkOf === null && (e.size ?? 0) > 0 && isInlineSize(e.size ?? 0);

/** Runs of entries, each at most twice as long as the one before up to BATCH_FILES, whose inline content stays near BATCH_BYTES. */
function batchesOf(todo: readonly SnapshotEntry[]): SnapshotEntry[][] {
  const out: SnapshotEntry[][] = [];
  let batch: SnapshotEntry[] = [];
  let bytes = 0;
  let most = FIRST_BATCH_FILES;
  for (const e of todo) {
    if (batch.length >= most || (batch.length > 0 && bytes >= BATCH_BYTES)) {
      out.push(batch);
      batch = [];
      bytes = 0;
      most = Math.min(most * 2, BATCH_FILES);
    }
    batch.push(e);
    if (isInline(e)) bytes += e.size ?? 0;
  }
  if (batch.length > 0) out.push(batch);
  return out;
}

type Content = Map<string, Inline>;

function contentOf(d: CopyDeps, batch: readonly SnapshotEntry[]): Promise<Content> {
  const small = batch.filter(isInline);
  return small.length === 0 ? Promise.resolve(new Map()) : d.client.content(small.map((e) => e.fid));
}

interface PlaceContext {
  readonly d: CopyDeps;
  readonly tid: Tid;
  readonly fresh: boolean;
  readonly p: CopyProgress;
  skipped: number;
  /** The attribute policy of this copy (read once). */
  readonly policy: AttrPolicy;
  /** Files whose hard-link grouping here is not the server's (`linkGroupsApart`). */
  readonly apart: ReadonlySet<string>;
  /** A resync's entry at its name here as it is placed (resync-protect's localNamer); none for a first copy. */
  readonly here?: (e: SnapshotEntry) => SnapshotEntry;
  /** A resync's snapshot, by fid. */
  readonly inSnap?: ReadonlySet<string>;
}

/**
 * A resync's entry goes to a name another object holds here: that one moves beside under a conflict name,
 * with its pending records. A directory the server does not have (made here, or removed there) at the name
 * of one of the server's is taken for it: it becomes the server's, and its entries follow.
 */
function freeName(ctx: PlaceContext, e: SnapshotEntry): void {
  const { d, tid } = ctx;
  const holder = d.db.objectByPath(e.path);
  if (holder === undefined || holder.fid === e.fid) return;
  if (holder.type === 'dir' && e.type === 'dir' && ctx.inSnap?.has(holder.fid) !== true) {
    d.db.forget(holder.fid);
    return;
  }
  const to = conflictName(e.path, d.db.meta.nodeId, tid, (q) => d.db.objectByPath(q) !== undefined || lstatOrNull(join(d.root, q)) !== null);
  renameSync(join(d.root, e.path), join(d.root, to));
  d.db.relocateLocal(holder.fid, to);
  d.log.warn({ path: e.path, keptAs: to }, 'resync: a local object held this name; kept beside');
}

/**
 * Put one snapshot entry in place and journal it, synchronously (so that many
 * of them share one transaction). `got` is its inline content, `staged` the
 * content of a large file, staged already (consumed either way).
 */
function place(
  ctx: PlaceContext, entry: SnapshotEntry, got: Inline | undefined, staged: Staged | null, checkedDirs?: Set<string>,
): void {
  const { d, tid, p } = ctx;
  // At its name here now: a directory above it may have moved since the resync began.
  const e = ctx.here?.(entry) ?? entry;
  const version = asTid(BigInt(e.version));
  const drop = (): void => {
    if (staged !== null) rmSync(staged.file, { force: true });
  };
  const draft = admit(ctx, e, checkedDirs);
  if (draft === null) {
    drop();
    ctx.skipped++;
    return;
  }
  if (!ctx.fresh) {
    // An earlier attempt may have left this object here in an older state, or on disk but not journaled.
    const mine = d.db.objectByFid(e.fid as Fid);
    // A hard link whose other name is not that file here stays the file it is (rather than removed, then
    // left out for want of its content).
    if (mine !== undefined && mine.path === e.path && mine.type === e.type && (e.type === 'dir' || (mine.hash === e.hash && (e.linkOf === null || !linkable(d, e))))
      && (e.type !== 'symlink' || mine.target === e.target) && lstatOrNull(join(d.root, e.path)) !== null) {
      // Sharing its inode here with names the server holds apart: an inode of its own (the server's links to
      // it are made again after it).
      if (e.type === 'file' && ctx.apart.has(e.path) && (lstatOrNull(join(d.root, e.path))?.nlink ?? 1) > 1) ownInode(d, draft, e.path);
      // Here already but for its mode (a change of mode lost on the way): the mode is set, nothing fetched again.
      if (!sameMode(mine.mode, { ...e, mode: draft.mode })) chmodSync(join(d.root, e.path), draft.mode & 0o7777);
      const st = lstatOrNull(join(d.root, e.path));
      d.db.commitCopy(e.linkOf === null ? draft : { ...draft, kind: 'create', target: null }, version, st === null ? null : { ino: st.ino, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, racy: false });
      return;
    }
    // Another object holds the name here: out of the way first, so that this one can come to it as it is (a
    // directory moved with what it holds). Before, a directory of the server's kept with its pending move to
    // this name was forgotten with its move, and this one, unable to move here, was removed once its pending
    // entries were moved beside it.
    freeName(ctx, e);
    if (mine !== undefined && mine.type === 'dir' && e.type === 'dir' && moveDir(d, mine.path, e.path)) {
      // Moved on the server: moved here too, with what it holds (local changes below it are not the server's to remove).
      const st = lstatOrNull(join(d.root, e.path));
      d.db.commitCopy(draft, version, st === null ? null : { ino: st.ino, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, racy: false });
      return;
    }
    if (mine !== undefined) {
      if (mine.type === 'dir') evacuate(d, mine.path, tid);
      else keepUnacknowledged(d, mine, e, tid);
      rmSync(join(d.root, mine.path), { recursive: true, force: true });
      d.db.forget(mine.fid);
    }
    freeName(ctx, e); // below the object this one was here (removed just above), or made there meanwhile
  }
  if (ctx.fresh && draft.kind === 'create' && staged === null) {
    const direct = directOf(draft, e, got);
    if (direct === null) {
      ctx.skipped++; // gone from the server since the snapshot: the stream brings its removal
      return;
    }
    try {
      d.apply.createDirect(direct.d, direct.buf, (identity) => d.db.commitCopyNew(direct.d, version, identity), checkedDirs);
      p.files++;
      p.bytes += direct.buf.length;
      return;
    } catch (err) {
      if (!(err instanceof IntersyncError) || err.code !== 'CONFLICT') throw err; // else: something is at the name
    }
  }
  const there = lstatOrNull(join(d.root, e.path));
  if (there !== null && (ctx.fresh || d.db.objectByPath(e.path) === undefined)) {
    drop();
    if (e.type === 'dir' && there.type === 'dir') {
      d.db.commitCopy(draft, version, { ino: there.ino, mtimeNs: there.mtimeNs, ctimeNs: there.ctimeNs, racy: false });
      return;
    }
    const same = e.type === 'file' && there.type === 'file' && there.size === e.size && hashFileSync(join(d.root, e.path)) === e.hash;
    if (same) {
      d.db.commitCopy(draft, version, { ino: there.ino, mtimeNs: there.mtimeNs, ctimeNs: there.ctimeNs, racy: true });
      p.files++;
      return;
    }
    d.log.warn({ path: e.path }, 'first copy: a local file has this name; it is journaled and will conflict');
    ctx.skipped++;
    return;
  }
  let final = draft;
  if (draft.kind === 'link' && !linkable(d, e)) {
    // The name it links to is not that file here (kept elsewhere with local changes, or not placed): a file of
    // its own with the same content, from a local copy, rather than a failed resync; the next change through
    // either name on the server brings them back together.
    const copy = localCopyOf(d, e);
    if (copy === null) {
      d.log.warn({ path: e.path, linkOf: e.linkOf }, 'resync: a hard link whose other name is not here, and no local copy of its content: left out');
      ctx.skipped++;
      return;
    }
    final = { ...draft, kind: 'create', target: null };
    staged = d.apply.stageBytes(final, copy);
  }
  if (final.kind === 'create' && staged === null) {
    if (got !== undefined && got.data !== null && got.hash !== null) {
      final = { ...draft, hash: got.hash, size: got.data.length }; // newer than the snapshot: a later record says so
      staged = d.apply.stageBytes(final, got.data);
    } else if ((e.size ?? 0) === 0) {
      staged = d.apply.stageBytes(draft, Buffer.alloc(0));
    } else {
      ctx.skipped++; // gone from the server since the snapshot: the stream brings its removal
      return;
    }
  }
  d.apply.apply(final, staged, (identity) => d.db.commitCopy(final, version, identity));
  p.files++;
  p.bytes += e.size ?? 0;
}

/**
 * A new file (not a link) that can be written straight at its name, with the
 * record it is journaled as: its content came (an empty file needs none).
 * Null when it cannot: its content did not come (gone from the server).
 */
function directOf(draft: RecordDraft, e: SnapshotEntry, got: Inline | undefined): { d: RecordDraft; buf: Buffer } | null {
  if (!hasContent(e, got)) return null;
  if ((e.size ?? 0) === 0) return { d: draft, buf: Buffer.alloc(0) };
  if (got?.data == null || got.hash === null) return null;
  return { d: { ...draft, hash: got.hash, size: got.data.length }, buf: got.data };
}

/** A new file (not a link, not large) whose content came (an empty file needs none). */
function hasContent(e: SnapshotEntry, got: Inline | undefined): boolean {
  if (e.type !== 'file' || e.linkOf !== null || isLarge(e)) return false;
  return (e.size ?? 0) === 0 || (got?.data != null && got.hash !== null);
}

/** A snapshot entry as the server sent it, checked at the edge; null (logged) when it is malformed. */
function checkedEntry(d: CopyDeps, v: unknown): SnapshotEntry | null {
  try {
    return parseWireEntry(v);
  } catch (e) {
    if (!(e instanceof IntersyncError)) throw e;
    d.log.warn({ code: e.code, err: e.message }, 'first copy: entry refused');
    return null;
  }
}

/**
 * The record an entry is placed and journaled as, or null (logged) when this node refuses it: a
 * path that is not confined to the tree (through a symlink here), a hard link to a name that is not
 * a file here, an escaping symlink under safe-links. Set-id bits and owners as the fileset's
 * attribute policy allows. Every entry goes through here before it is journaled.
 */
function admit(ctx: PlaceContext, e: SnapshotEntry, checkedDirs?: Set<string>): RecordDraft | null {
  const { d } = ctx;
  try {
    confine(d.root, e.path, checkedDirs);
    if (e.linkOf !== null) {
      confine(d.root, e.linkOf, checkedDirs);
      // In a fresh copy the other name comes first, so a link to nothing is a bad snapshot; in a resync the
      // other name may be kept elsewhere here, which place() deals with (never a refusal for good: a refused
      // object's later records are skipped, and the node would stay apart from the server).
      if (ctx.fresh && d.db.objectByPath(e.linkOf)?.type !== 'file') throw IntersyncError.BAD_PATH(e.path, `hard link to ${e.linkOf}, which is not a file here`);
    }
    const draft = d.apply.localize(draftOf(e, d.serverNode as NodeId, d.clock.now()), ctx.policy);
    const mode = modeChange(draft.kind, e.mode, draft.mode);
    if (mode !== null) d.log[mode.warn ? 'warn' : 'info']({ path: e.path, mode: e.mode.toString(8), applied: draft.mode.toString(8) }, mode.message);
    return draft;
  } catch (err) {
    // In a fresh copy a missing parent is one refused here (or sent out of order): its entries are refused too.
    const refused = err instanceof IntersyncError && (err.code === 'BAD_PATH' || err.code === 'UNSAFE_LINK' || (ctx.fresh && err.code === 'CONFLICT'));
    if (!refused) throw err;
    d.log.warn({ path: e.path, code: err.code, err: err.message }, 'first copy: entry skipped');
    noteRefused(d.db, e.fid);
    return null;
  }
}

/** Meta key: the names a fresh copy is writing straight into place, until the batch is journaled. */
const WRITING = 'copy_writing';

/** A crashed fresh copy left files it was writing and had not journaled (maybe half written): remove them. */
export function dropUnjournaled(d: Pick<CopyDeps, 'db' | 'root'>): void {
  const noted = JSON.parse(d.db.getMeta(WRITING) ?? '[]') as string[];
  for (const path of noted) {
    const abs = join(d.root, path);
    if (d.db.objectByPath(path) === undefined && lstatOrNull(abs)?.type === 'file') rmSync(abs, { force: true });
  }
  if (noted.length > 0) d.db.setMeta(WRITING, '[]');
}

/** The record a snapshot entry is placed and journaled as (before the attribute policy). */
export function draftOf(e: SnapshotEntry, origin: NodeId, now: number): RecordDraft {
  const kind = e.type === 'dir' ? 'mkdir' : e.type === 'symlink' ? 'symlink' : e.linkOf !== null ? 'link' : 'create';
  return {
    kind, fid: e.fid as Fid, path: e.path, newPath: null, target: e.type === 'symlink' ? e.target : e.linkOf,
    preVersion: NO_VERSION, mode: e.mode, uid: e.uid, gid: e.gid, mtimeMs: e.mtimeMs,
    size: e.type === 'file' ? e.size : null, hash: e.type === 'file' ? e.hash : null, origin, time: now,
  };
}

/** A symlink's mode means nothing here (as in the digest); other modes must match. */
function sameMode(mode: number, e: SnapshotEntry): boolean {
  return e.type === 'symlink' || (mode & 0o7777) === (e.mode & 0o7777);
}

/** Give a file an inode of its own, with the server's content and attributes; the other names keep the old one. */
function ownInode(d: CopyDeps, draft: RecordDraft, path: string): void {
  const abs = join(d.root, path);
  try {
    const staged = d.apply.stageBytes(draft, readFileSync(abs)); // refused when the content is not the server's
    renameSync(staged.file, abs);
  } catch (e) {
    d.log.warn({ path, err: (e as Error).message }, 'resync: cannot give this name an inode of its own; it stays linked');
  }
}

/** The other name of a hard link to place is here, the same file (its content), so that a link to it is right. */
function linkable(d: CopyDeps, e: SnapshotEntry): boolean {
  if (e.linkOf === null) return false;
  const t = d.db.objectByPath(e.linkOf);
  return t !== undefined && t.type === 'file' && t.hash === e.hash && lstatOrNull(join(d.root, e.linkOf))?.type === 'file';
}

/** The bytes of a local file with the entry's content (not too large to hold), or null. */
function localCopyOf(d: CopyDeps, e: SnapshotEntry): Buffer | null {
  if (e.hash === null || (e.size ?? 0) > 64 << 20) return null;
  for (const o of d.db.objectsByHash(e.hash)) {
    if (o.type !== 'file') continue;
    try {
      const buf = readFileSync(join(d.root, o.path));
      if (sha256Hex(buf) === e.hash) return buf;
    } catch {
      // moved or removed meanwhile: try the next
    }
  }
  return null;
}
