import type { Logger } from 'pino';
import { IntersyncError } from '#core/errors.js';
import type { Tid } from '#core/ids.js';
import type { KmlRecord, LmlRecord } from '#core/record.js';
import type { ApplyPath } from '#apply/apply-path.js';
import { confine } from '#apply/confine.js';
import type { InflightNote, Journaler, Recovering } from '#apply/record-applier.js';
import type { FilesetDb, StatIdentity } from '#journal/fileset-db.js';
import { lmlToWire, parseWireLml } from './protocol/wire-record.js';
import { unseenChange } from './unseen-change.js';

/** What a server's Journaler works on: the fileset's journal, apply path, backing directory and log. */
export interface ReintDeps {
  readonly db: FilesetDb;
  readonly apply: ApplyPath;
  readonly root: string;
  readonly log: Logger;
}

/** The client a batch comes from: its node, and how far it had applied this node's records (`seen`; null: not said). */
export interface ReintFrom {
  readonly node: string;
  readonly seen: Tid | null;
}

/**
 * The Journaler of a server's reintegration: a client's LML record is journaled as a KML record of this node
 * with the client's origin sequence (answered with its TID), checked against what the client had not seen,
 * rebased on the version it applies on here; its in-flight note is the LML record, recovered at start by
 * FilesetNode (`daemon/fileset-node.ts`) through the same class.
 */
export class ReintJournaler implements Journaler<LmlRecord, KmlRecord>, Recovering<LmlRecord> {
  readonly via = 'reint';
  readonly #x: ReintDeps;
  readonly #from: ReintFrom | null;

  /** `from`: the client whose batch this is; none for the start-up recovery. */
  constructor(x: ReintDeps, from: ReintFrom | null = null) {
    this.#x = x;
    this.#from = from;
  }

  /** The apply path's check, then a change of the object the client had not seen, then a parent missing on disk here. */
  check(d: LmlRecord): IntersyncError | null {
    const seen = this.#from?.seen ?? null;
    return this.#x.apply.check(d) ?? (seen === null ? null : unseenChange(this.#x.db, d, seen, this.#from!.node)) ?? parentMissing(this.#x.root, d);
  }

  /** The record on the version it applies on here, and a setattr with this node's content of the object. */
  ready(d: LmlRecord): LmlRecord {
    const creates = d.kind === 'create' || d.kind === 'mkdir' || d.kind === 'symlink' || d.kind === 'link';
    const base = creates ? d.preVersion : (this.#x.apply.baseOf(d) ?? d.preVersion);
    // A setattr names the content as its origin had it; this node's is what the record leaves here, and a
    // directory or symlink has none (an origin astray that took one for a file must not make it one on the
    // clients that restore a missing file from the record: chaos seed 9212).
    const cur = d.kind === 'setattr' ? this.#x.db.objectByFid(d.fid) : undefined;
    return cur === undefined ? { ...d, preVersion: base }
      : { ...d, preVersion: base, size: cur.type === 'file' ? cur.size : null, hash: cur.type === 'file' ? cur.hash : null };
  }

  commit(d: LmlRecord, identity: StatIdentity | null): KmlRecord {
    return this.#x.db.commit([{ draft: d, identity, originSeq: d.seq }])[0]!;
  }

  note(d: LmlRecord): unknown {
    return lmlToWire(d);
  }

  fromNote(note: InflightNote): LmlRecord {
    return parseWireLml(note.r);
  }

  journaled(d: LmlRecord): boolean {
    return this.#x.db.kmlByOrigin(d.origin, d.seq) !== undefined;
  }

  recovered(d: LmlRecord, identity: StatIdentity | null): void {
    this.commit(d, identity);
    this.#x.log.info({ origin: d.origin, seq: d.seq.toString(), path: d.path }, 'recovered a reintegrated change that was in flight');
  }
}

/** The apply path's refusal of a name whose directory is not on disk here (see confine), or null. */
function parentMissing(root: string, d: { path: string; newPath: string | null }): IntersyncError | null {
  try {
    for (const name of d.newPath === null ? [d.path] : [d.path, d.newPath]) confine(root, name);
    return null;
  } catch (e) {
    if (e instanceof IntersyncError && e.reason?.kind === 'missing-parent') return e;
    return null; // anything else is the apply path's to say
  }
}
