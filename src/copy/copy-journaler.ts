import type { IntersyncError } from '#core/errors.js';
import type { Tid } from '#core/ids.js';
import type { RecordDraft } from '#core/record.js';
import type { Journaler } from '#apply/record-applier.js';
import type { FilesetDb, StatIdentity } from '#journal/fileset-db.js';

/**
 * The Journaler of a first copy or a resync: a snapshot's entry is journaled at the server's version of it
 * (FilesetDb#commitCopy). No version check: place.ts admitted the entry against this node's state and made
 * room for it (admit, freeName), and the snapshot's version is the server's word. No in-flight note: a copy
 * cut by a crash is taken up again from a snapshot, which journals what it finds on disk already (place.ts).
 */
export class CopyJournaler implements Journaler<RecordDraft> {
  readonly via = 'copy';
  readonly #db: FilesetDb;
  readonly #version: Tid;

  /** `version`: the server's version of the entry, from the snapshot. */
  constructor(db: FilesetDb, version: Tid) {
    this.#db = db;
    this.#version = version;
  }

  check(): IntersyncError | null {
    return null;
  }

  commit(d: RecordDraft, identity: StatIdentity | null): void {
    this.#db.commitCopy(d, this.#version, identity);
  }
}
