import type { Logger } from 'pino';
import type { Clock } from '#core/clock.js';
import { formatTid } from '#core/ids.js';
import type { KmlRecord } from '#core/record.js';
import type { Staged } from '#apply/apply-path.js';
import type { InflightNote, Journaler, Recovering } from '#apply/record-applier.js';
import type { FilesetDb, StatIdentity } from '#journal/fileset-db.js';
import { parseWireRecord, recordToWire } from '#net/protocol/wire-record.js';

/**
 * The Journaler of a mirror slave: the master's record is journaled with the master's TID and moves the slave's
 * last_rcvd of the master (FilesetDb#commitRemote, as a client's forwarded record). The check is the apply
 * path's version check (the default): a slave has no changes of its own, so a record that does not apply means
 * the slave is not the master's state, and the sink stops. Content the master no longer held when it was read (a
 * later record changed it) is placed as the master holds it now and journaled as such (`placed`): the object is
 * behind until that later record comes, and the sink skips the digest check meanwhile.
 */
export class MirrorJournaler implements Journaler<KmlRecord>, Recovering<KmlRecord> {
  readonly via = 'mirror';
  readonly #db: FilesetDb;
  readonly #master: string;
  readonly #clock: Clock;
  readonly #log: Logger;
  /** Set by `ready`: what was placed instead of the record's content, if anything. */
  placed: { hash: string; size: number } | undefined;

  constructor(db: FilesetDb, master: string, clock: Clock, log: Logger) {
    this.#db = db;
    this.#master = master;
    this.#clock = clock;
    this.#log = log;
  }

  ready(r: KmlRecord, staged: Staged | null): KmlRecord {
    this.placed = staged !== null && staged.hash !== r.hash ? { hash: staged.hash, size: staged.size } : undefined;
    return r;
  }

  commit(r: KmlRecord, identity: StatIdentity | null): void {
    const content = this.placed;
    this.#db.commitRemote([{ record: r, identity, ...(content === undefined ? {} : { content }) }], this.#master, this.#clock.now());
  }

  note(r: KmlRecord): unknown {
    return recordToWire(r);
  }

  fromNote(note: InflightNote): KmlRecord | null {
    return parseWireRecord(note.r);
  }

  journaled(r: KmlRecord): boolean {
    return r.tid <= this.#db.lastRcvdOf(this.#master);
  }

  recovered(r: KmlRecord, identity: StatIdentity | null): void {
    this.#db.commitRemote([{ record: r, identity }], this.#master, this.#clock.now());
    this.#log.info({ tid: formatTid(r.tid), path: r.path }, 'recovered a master record that was in flight');
  }
}
