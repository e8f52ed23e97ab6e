import { join } from 'node:path';
import type { KmlRecord } from '#core/record.js';
import { parentOf } from '#core/paths.js';
import { checkBytes } from '#apply/new-file.js';
import { placedHere, runPlaces } from '#apply/placed.js';
import { applyRun, type RunItem } from '#apply/record-applier.js';
import { lstatOrNull } from '#fsio/disk.js';
import type { RunRecord } from '#net/record-follower.js';
import { localNamesOf, renamesOver } from '#reint/local-names.js';
import { refusedFids } from '#copy/client-attrs.js';
import type { ClientState } from './client-state.js';
import { ForwardJournaler } from './forward-journaler.js';

/*
 * A client applies a run of forwarded records that each make a new name here (a deploy's new directories and
 * files) in one go: one transaction, notes first (apply/record-applier.ts applyRun), instead of each record's own
 * capture sync, conflict step, echo-guard hold and two commits (client-apply.ts). Only where those steps have
 * nothing to do, which is looked at record by record: nothing of this node waits to go up (no conflict step can
 * meet anything), the record is another node's, its object is not here, it has no hard-link group, and its name
 * is free in the journal and on disk in a directory that is on disk as journaled (capture has nothing to tell
 * about it). The first record that is not so ends the run; it and the rest take the one-record road.
 */

/** A record the run may take as far as the record alone tells (its place here is looked at when its turn comes). */
function newObject(s: ClientState, r: KmlRecord, payload: Buffer | null, since: bigint, refused: ReadonlySet<string>): boolean {
  if (r.tid <= since || r.origin === s.db.meta.nodeId) return false;
  if (r.kind !== 'mkdir' && !(r.kind === 'create' && payload !== null && r.hash !== null)) return false;
  if ((r.links ?? []).length > 0 || refused.has(r.fid)) return false;
  return s.db.objectByFid(r.fid) === undefined;
}

/**
 * Apply the longest head of `run` that is all new names here, as one run; returns how many records it applied
 * (0: the first is not one, or did not apply, and takes the one-record road). Synchronous: the caller holds the
 * exchange lock. Throws when the run failed as a whole (nothing of it applied).
 */
export function applyNewNames(s: ClientState, run: readonly RunRecord[]): number {
  const db = s.db;
  if (run.length < 2 || db.lmlCount() > 0) return 0;
  const peer = s.serverNode();
  const refused = refusedFids(db);
  let since = db.lastRcvdOf(peer);
  // In this node's names, as applyForwarded places a record. The policy and the directories found are read once
  // for the run: nothing else runs until it is applied (synchronous), and it only adds names.
  const policy = s.apply.attrs;
  const places = runPlaces(db);
  const place = (sent: KmlRecord): KmlRecord => s.apply.localize(placedHere(places, localNamesOf(sent, renamesOver(db, sent.tid)), (fid) => db.hasPendingLocal(fid)), policy);
  const items: Array<RunItem<KmlRecord, void>> = [];
  const sentOf = new Map<KmlRecord, KmlRecord>();
  for (const { r: sent, payload } of run) {
    if (!newObject(s, sent, payload, since, refused)) break;
    let r: KmlRecord;
    try {
      r = place(sent);
    } catch {
      break; // refused by this node's policy: the one-record road says so
    }
    if (r.kind === 'create') {
      try {
        checkBytes(r, payload!);
      } catch {
        break; // content that does not match its record: the one-record road refuses it
      }
    }
    // A new file is written straight at its name when its turn comes (ApplyPath#createInRun): no temp file.
    items.push({ d: r, staged: null, ...(r.kind === 'create' ? { bytes: payload! } : {}), j: new ForwardJournaler(s, peer) });
    sentOf.set(r, sent);
    since = sent.tid;
  }
  if (items.length < 2) return 0;
  // Its turn come (the records before it journaled, in the run's open transaction): still placed where it was,
  // its name free in the journal and on disk, its directory on disk as the journal has it.
  const fits = (d: KmlRecord): boolean => {
    const again = place(sentOf.get(d)!);
    if (again.path !== d.path || db.objectByPath(d.path) !== undefined || lstatOrNull(join(s.paths.dir, d.path)) !== null) return false;
    const dir = parentOf(d.path);
    if (dir === '') return true;
    const row = db.objectByPath(dir);
    const st = lstatOrNull(join(s.paths.dir, dir));
    return row?.type === 'dir' && st?.type === 'dir' && row.ino === st.ino;
  };
  return applyRun(s.apply, items, fits).applied.length;
}
