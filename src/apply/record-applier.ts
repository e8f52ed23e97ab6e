import { rmSync } from 'node:fs';
import { IntersyncError } from '#core/errors.js';
import type { RecordDraft } from '#core/record.js';
import type { StatIdentity } from '#fsio/disk.js';
import type { ApplyPath, ContentSource, Staged } from './apply-path.js';

/** The directions a peer's record comes from, as its in-flight note names them. */
export type Via = 'reint' | 'forward' | 'copy' | 'mirror';

/**
 * How one direction journals what the apply path applies for it; one implementation per direction: a server's
 * reintegration (net/reint-journaler.ts), a client's forwarded record (daemon/forward-journaler.ts), a first copy
 * or resync (copy/copy-journaler.ts), a mirror slave's record (mirror/mirror-journaler.ts). applyRecord calls `check`, then `ready`, then the disk change and `commit`.
 *
 * Invariants: `check`, `ready` and `commit` run in one tick with the disk change (no await between them), so
 * nothing changes the journal or the names between the check and the commit; `commit` journals the record `ready`
 * returned, which is the one the disk got; a direction that writes in-flight notes (`note`) reads them back at
 * start (Recovering), or a crash would leave a change on disk that no journal holds.
 */
export interface Journaler<D extends RecordDraft, R = void> {
  readonly via: Via;
  /**
   * Why `d` may not apply here now, or null, right before the change: the apply path's version check and the
   * direction's own refusals, in the direction's order. Default: ApplyPath#check.
   */
  check?(d: D): IntersyncError | null;
  /** The direction's last steps once nothing refused `d`, before the disk changes: the record as applied and journaled. Default: `d`. */
  ready?(d: D, staged: Staged | null): D;
  /** Journal `d` with the stat identity its change left (null: no object at its name). Throwing undoes the change. */
  commit(d: D, identity: StatIdentity | null): R;
  /** `d` as its in-flight note carries it (`r`, beside `via`); absent: the direction writes no note. */
  note?(d: D): unknown;
}

/** An in-flight note as written before a change reached the disk: `{ via, r }` from applyRecord, others from other steps. */
export interface InflightNote {
  readonly via?: unknown;
  readonly r?: unknown;
  /** A create of a run written straight at its name (ApplyPath#createInRun): a file left unfinished there is this process's. */
  readonly direct?: unknown;
}

/** What recoverInFlight (recovery.ts) asks of a Journaler whose in-flight notes it reads back at start. */
export interface Recovering<D extends RecordDraft> {
  /** The record of an in-flight note, or null when the note holds none to recover (handled otherwise). Throws on a note it cannot read. */
  fromNote(note: InflightNote): D | null;
  /** True when `d` was journaled before the process died: nothing to do. */
  journaled(d: D): boolean;
  /** Journal `d`, which reached the disk, with the identity its name has now (racy: read after the fact), and say so. */
  recovered(d: D, identity: StatIdentity | null): void;
}

/**
 * Where a record's content comes from: `inline` bytes (its frame's payload), else a local copy by hash, else a
 * block delta from `source`. With `standIn`, an empty stand-in when the source holds that content no longer
 * (ApplyPath#stageOrPlaceholder): a later record of the source brings or removes it.
 */
export interface Content {
  readonly inline: Buffer | null;
  readonly source: ContentSource | null;
  readonly standIn?: boolean;
}

/**
 * Apply one peer's record `d` and journal it through `j`: stage its content (when its kind has any), check
 * it, and change the disk with `j`'s commit in the same tick; returns what the commit returned. A refusal
 * removes the staged content and throws, unless `again` gives the record placed anew (the direction's names
 * caught up with its disk meanwhile): that one is staged and checked in its turn. Errors of the stage or the
 * change itself are thrown as they come (the apply path leaves nothing of the change behind).
 */
export async function applyRecord<D extends RecordDraft, R>(
  apply: ApplyPath, d: D, content: Content, j: Journaler<D, R>, again?: (refused: IntersyncError) => Promise<D | null>,
): Promise<R> {
  for (let at = d; ;) {
    // Through the instance's methods: a test wraps stageOrPlaceholder on the instance (written-while-fetched).
    const staged = !apply.needsContent(at) ? null
      : content.standIn === true ? (await apply.stageOrPlaceholder(at, content.inline, content.source)).staged
      : await apply.stage(at, content.inline, content.source);
    const err = refusal(apply, at, staged, j);
    if (err === null) return change(apply, at, staged, j);
    const next = again === undefined ? null : await again(err);
    if (next === null) throw err;
    at = next;
  }
}

/**
 * applyRecord with content staged already (or none), synchronously: for many records in one transaction (a
 * copy's run of entries). `staged` is consumed either way.
 */
export function applyStaged<D extends RecordDraft, R>(apply: ApplyPath, d: D, staged: Staged | null, j: Journaler<D, R>): R {
  const err = refusal(apply, d, staged, j);
  if (err !== null) throw err;
  return change(apply, d, staged, j);
}

/**
 * One record of a run (applyRun): the record as it will be applied, its content staged already (or none), its
 * Journaler. `bytes`: a create's content, checked against the record and held in memory, written straight at the
 * record's name when its turn comes (ApplyPath#createInRun) instead of staged and linked into place.
 */
export interface RunItem<D extends RecordDraft, R> {
  readonly d: D;
  readonly staged: Staged | null;
  readonly bytes?: Buffer;
  readonly j: Journaler<D, R>;
}

/** What applyRun did: the commits' results of the records applied (the first `applied.length`), and why it stopped short, if a check refused. */
export interface RunResult<R> {
  readonly applied: R[];
  readonly refused: IntersyncError | null;
}

/** The kinds a run may hold: new names, which a failure of the run can take back whole (undo.ts). */
const RUN_KINDS: ReadonlySet<string> = new Set(['create', 'mkdir', 'symlink']);

/**
 * Apply a run of peer records that each make a new name, synchronously: their in-flight notes in one transaction
 * first, then each record checked, changed on disk and journaled, in order, inside one SQLite transaction (one
 * WAL write for the run, not two per record); the caller flushes once for the run before it acknowledges. Each
 * record is checked once the ones before it are applied (in the open transaction): a directory made by the run is
 * there for the files in it. `fits` is the caller's last look at a record before its check (false ends the run
 * there, as a refusal does); the records after the end are not applied, their staged content removed, their notes
 * cleared. A change that fails on disk as a conflict (a name taken a moment ago) ends the run there too. Any
 * other failure (the journal's, the disk's) takes back every change the run made and throws: nothing of the run is
 * journaled or on disk. A crash in the middle leaves notes that the start-up recovery reads as for one record (and
 * a new file written straight at its name (`bytes`) and left unfinished is removed: recovery.ts).
 */
export function applyRun<D extends RecordDraft, R>(
  apply: ApplyPath, items: ReadonlyArray<RunItem<D, R>>, fits?: (d: D) => boolean,
): RunResult<R> {
  for (const it of items) if (!RUN_KINDS.has(it.d.kind)) throw new Error(`applyRun of a ${it.d.kind}: a run holds new names only`);
  const t0 = performance.now();
  const noted = items.map((it) => (it.j.note === undefined ? null
    : JSON.stringify({ via: it.j.via, r: it.j.note(it.d), ...(it.bytes === undefined ? {} : { direct: true }) })));
  const ids = apply.noteMany(noted.filter((x): x is string => x !== null));
  const noteOf: Array<number | null> = [];
  for (let k = 0, n = 0; k < items.length; k++) noteOf.push(noted[k] === null ? null : ids[n++]!);
  const applied: R[] = [];
  const made: D[] = [];
  let refused: IntersyncError | null = null;
  let tried = 0; // items handed to the apply path (which consumes their staged content, applied or not)
  // The directories found real on the way to a new file written straight at its name, once per run (confine): the
  // run is synchronous, and the caller's `fits` looks at each record's own directory on disk as its turn comes.
  const checkedDirs = new Set<string>();
  try {
    apply.batch(() => {
      for (const { d, staged, bytes, j } of items) {
        if (fits !== undefined && !fits(d)) break;
        const err = j.check === undefined ? apply.check(d) : j.check(d);
        if (err !== null) {
          refused = err;
          break;
        }
        const r = j.ready === undefined ? d : j.ready(d, staged);
        tried++;
        try {
          const commit = (identity: StatIdentity | null): void => {
            applied.push(j.commit(r, identity));
          };
          if (bytes !== undefined && r.kind === 'create') apply.createInRun(r, bytes, commit, noteOf[tried - 1]!, checkedDirs);
          else apply.apply(r, staged, commit, noteOf[tried - 1]!);
        } catch (e) {
          // A name taken on disk a moment ago: the run ends here, the records before it stand (if the journal
          // refused this one instead, the batch fails as a whole below).
          if (!(e instanceof IntersyncError) || e.code !== 'CONFLICT') throw e;
          refused = e;
          break;
        }
        made.push(r);
      }
      // The notes of what did not reach the disk go with the run's commit.
      apply.clearMany(noteOf.slice(made.length).filter((id): id is number => id !== null));
    });
  } catch (e) {
    // Rolled back: nothing of the run is journaled, so nothing of it may stay on disk.
    for (const r of made.reverse()) apply.undoNew(r);
    apply.clearMany(ids);
    throw e;
  } finally {
    for (let k = tried; k < items.length; k++) {
      const staged = items[k]!.staged;
      if (staged !== null) rmSync(staged.file, { force: true });
    }
  }
  apply.observeRun(applied.length, (performance.now() - t0) / 1000);
  return { applied, refused };
}

/** The check right before the change, in the same tick as the commit: on a refusal, the staged content goes. */
function refusal<D extends RecordDraft>(apply: ApplyPath, d: D, staged: Staged | null, j: Journaler<D, unknown>): IntersyncError | null {
  const err = j.check === undefined ? apply.check(d) : j.check(d);
  if (err !== null && staged !== null) rmSync(staged.file, { force: true });
  return err;
}

/** The direction's last steps, the disk change and its commit, with the in-flight note the direction keeps. */
function change<D extends RecordDraft, R>(apply: ApplyPath, d: D, staged: Staged | null, j: Journaler<D, R>): R {
  const r = j.ready === undefined ? d : j.ready(d, staged);
  let out: { value: R } | undefined;
  apply.apply(r, staged, (identity) => {
    out = { value: j.commit(r, identity) };
  }, j.note === undefined ? null : JSON.stringify({ via: j.via, r: j.note(r) }));
  return out!.value;
}
