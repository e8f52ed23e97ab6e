import { join } from 'node:path';
import type { Logger } from 'pino';
import { D_REINT } from '#core/debug.js';
import { formatTid, isNodeId, NO_VERSION, type Tid } from '#core/ids.js';
import { parentOf } from '#core/paths.js';
import type { LmlRecord } from '#core/record.js';
import { checkBytes } from '#apply/new-file.js';
import { placedHere, runPlaces } from '#apply/placed.js';
import { applyRun, type RunItem } from '#apply/record-applier.js';
import { lstatOrNull } from '#fsio/disk.js';
import type { KmlRecord } from '#core/record.js';
import type { Frame } from './protocol/frames.js';
import { parseWireLml, recordToWire } from './protocol/wire-record.js';
import { ReintJournaler } from './reint-journaler.js';
import type { ServedFileset } from './server-state.js';

/*
 * A server applies the head of a client's batch that makes new names here (a deploy written on a client) as one
 * run: its content checked, the notes in one transaction, the records checked and journaled in another
 * (apply/record-applier.ts applyRun), instead of each record's own capture sync, settle and two commits
 * (reint-routes.ts). Only records the one-record road would take without a word: the client's own new object
 * (create with its content inline, or mkdir), not journaled here yet, placed at the client's name, its name free
 * in the journal and on disk, its directory on disk as the journal has it (capture has nothing to tell, and no
 * settle is needed). Anything else ends the run and takes the one-record road, which says why.
 */

/** How many leading frames of `frames` were applied as a run of new names (their answers pushed to `results`); 0: none. */
export function applyNewNames(
  f: ServedFileset, node: string, seen: Tid | null, frames: readonly Frame[], results: Array<Record<string, unknown>>, log: Logger,
): number {
  const db = f.db;
  const items: Array<RunItem<LmlRecord, KmlRecord>> = [];
  const sentOf = new Map<LmlRecord, LmlRecord>();
  const seqs = new Set<bigint>();
  // Read once for the run: nothing else runs until it is applied (synchronous), and it only adds names.
  const policy = f.apply.attrs;
  const places = runPlaces(db);
  for (const frame of frames) {
    if (frame.type !== 'record') break;
    let sent: LmlRecord;
    try {
      sent = parseWireLml(frame.header.r);
    } catch {
      break;
    }
    if (sent.origin !== node || !isNodeId(sent.origin) || !sent.fid.startsWith(`${node}-`) || sent.preVersion !== NO_VERSION) break;
    if (sent.kind !== 'mkdir' && !(sent.kind === 'create' && frame.payload !== null && sent.hash !== null)) break;
    if (seqs.has(sent.seq) || db.kmlByOrigin(sent.origin, sent.seq) !== undefined || db.objectByFid(sent.fid) !== undefined) break;
    let d: LmlRecord;
    try {
      d = f.apply.localize(placedHere(places, sent), policy);
    } catch {
      break;
    }
    // Placed elsewhere here, or its mode changed by this fileset's policy: the one-record road logs it.
    if (d.path !== sent.path || d.mode !== sent.mode || d.uid !== sent.uid || d.gid !== sent.gid) break;
    if (d.kind === 'create') {
      try {
        checkBytes(d, frame.payload!);
      } catch {
        break;
      }
    }
    // A new file is written straight at its name when its turn comes (ApplyPath#createInRun): no temp file.
    items.push({ d, staged: null, ...(d.kind === 'create' ? { bytes: frame.payload! } : {}), j: new ReintJournaler(f, { node, seen }) });
    sentOf.set(d, sent);
    seqs.add(sent.seq);
  }
  if (items.length < 2) return 0;
  // Its turn come (the records before it journaled in the run's open transaction): placed where it was, its name
  // free in the journal and on disk, its directory on disk as the journal has it.
  const fits = (d: LmlRecord): boolean => {
    if (placedHere(places, sentOf.get(d)!).path !== d.path) return false;
    if (db.objectByPath(d.path) !== undefined || lstatOrNull(join(f.root, d.path)) !== null) return false;
    const dir = parentOf(d.path);
    if (dir === '') return true;
    const row = db.objectByPath(dir);
    const st = lstatOrNull(join(f.root, dir));
    return row?.type === 'dir' && st?.type === 'dir' && row.ino === st.ino;
  };
  let applied: KmlRecord[];
  try {
    applied = applyRun(f.apply, items, fits).applied;
  } catch (e) {
    // Nothing of the run applied: its first record takes the one-record road, which answers for the failure.
    log.warn({ records: items.length, err: (e as Error).message }, 'a run of new names failed as a whole; record by record');
    return 0;
  }
  if (applied.length > 0) f.disk?.ok('reint');
  applied.forEach((rec, i) => {
    const d = items[i]!.d;
    if ((f.debug & D_REINT) !== 0) log.debug({ seq: d.seq.toString(), tid: formatTid(rec.tid), kind: d.kind, path: d.path }, 'accepted');
    results.push({ seq: d.seq.toString(), status: 'accepted', r: recordToWire(rec) });
  });
  return applied.length;
}
