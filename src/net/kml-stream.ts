import { formatDigest } from '#core/digest.js';
import { formatTid, type Tid } from '#core/ids.js';
import type { Signal } from '#core/mutex.js';
import type { KmlRecord } from '#core/record.js';
import type { FilesetDb } from '#journal/fileset-db.js';
import { waitingAfter } from '#journal/in-flight.js';
import { encodeFrame, helloFrame } from './protocol/frames.js';
import { recordToWire } from './protocol/wire-record.js';

/** A follower with nothing to receive hears a ping this often (the server's last TID and its state digest). */
export const PING_MS = 10_000;
/** Records read from the journal at a time. */
const READ_RECORDS = 256;
/** A run's frames are written together up to about this many bytes. */
const RUN_BYTES = 256 << 10;

export interface KmlStreamOptions {
  readonly db: FilesetDb;
  /** The content that travels inline with a record (a small file's bytes), or null. */
  readonly inline: (r: KmlRecord) => Buffer | null;
  /** Write one frame to the peer (paced by the bandwidth limit); rejects once the connection is gone. */
  readonly write: (frame: Buffer) => Promise<void>;
  /** False once the peer has gone or the node is closing: the stream stops. */
  readonly open: () => boolean;
  /** Fired at each new commit, at a queued recall and when the connection closes. */
  readonly wake: Signal;
  /** The hook of the token table: the scopes whose write tokens this peer must give back, taken from the queue. */
  readonly recalls: () => string | undefined;
  /** Told of each record sent (metrics). */
  readonly onRecord?: () => void;
}

/**
 * The producer end of the record stream: the records after `since`, in TID order, then (with `follow`) each new
 * one as it is committed, with a ping when there is nothing to send. First a hello: this node, the fileset and
 * its last TID, and what the peer misses (journal/in-flight.ts). Resolves when the stream is done (`follow`
 * false: caught up) or the peer gone; the caller ends or cuts the connection. The server's forwarded stream
 * is one use; a mirror's master will be another.
 */
export async function streamKml(o: KmlStreamOptions, since: Tid, follow: boolean): Promise<void> {
  const db = o.db;
  // What this peer misses, counted as the status counts it: the first missing record's TID and time (its lag),
  // and the files and bytes to come. Optional fields: a client that does not know them reads the hello as before.
  const first = db.lastTid > since ? db.readKml(since, 1)[0] : undefined;
  await o.write(helloFrame({
    node: db.meta.nodeId, uuid: db.meta.uuid, tid: formatTid(db.lastTid),
    ...(first === undefined ? {} : { next: { tid: formatTid(first.tid), time: first.time }, waiting: waitingAfter(db, since) }),
  }));
  let cursor = since;
  for (;;) {
    for (let scope = o.open() ? o.recalls() : undefined; scope !== undefined; scope = o.open() ? o.recalls() : undefined) {
      await o.write(encodeFrame('recall', { scope }));
    }
    if (!o.open()) return;
    const recs = db.readKml(cursor, READ_RECORDS);
    // The records read go out as runs, one write each (up to RUN_BYTES): the follower hands what arrives together
    // to its sink as one run. A lone record is a run of one and leaves at once.
    let run: Buffer[] = [];
    let runBytes = 0;
    for (const r of recs) {
      if (!o.open()) return;
      // `last`: the server's last TID as this record leaves, so a peer busy applying it knows how far behind it is.
      const f = encodeFrame('record', { r: recordToWire(r), last: formatTid(db.lastTid) }, o.inline(r));
      run.push(f);
      runBytes += f.length;
      o.onRecord?.();
      cursor = r.tid;
      if (runBytes >= RUN_BYTES) {
        await o.write(run.length === 1 ? run[0]! : Buffer.concat(run, runBytes));
        run = [];
        runBytes = 0;
      }
    }
    if (run.length > 0) {
      if (!o.open()) return;
      await o.write(run.length === 1 ? run[0]! : Buffer.concat(run, runBytes));
    }
    if (recs.length === READ_RECORDS) continue;
    if (!follow) return;
    // The state digest at that TID lets a caught-up peer with nothing pending check it holds the same state.
    await o.write(encodeFrame('ping', { tid: formatTid(db.lastTid), digest: formatDigest(db.digest) }));
    await o.wake.wait(PING_MS);
  }
}
