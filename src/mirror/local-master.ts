import { setTimeout as sleep } from 'node:timers/promises';
import { formatDigest } from '#core/digest.js';
import { IntersyncError } from '#core/errors.js';
import { isInlineSize } from '#core/format.js';
import { asTid, formatTid, type Fid, type Tid } from '#core/ids.js';
import type { KmlRecord, RecordDraft } from '#core/record.js';
import { BlockMapCache, blockLength, type BlockMap } from '#fsio/blocks.js';
import { FilesetDb } from '#journal/fileset-db.js';
import type { FilesetPaths } from '#journal/layout.js';
import { ContentReader } from '#net/content-cache.js';
import { entriesOf, firstAfter, pagesOf } from '#net/copy-routes.js';
import type { Frame } from '#net/protocol/frames.js';
import { recordToWire } from '#net/protocol/wire-record.js';
import type { RateLimit } from '#net/rate-limit.js';
import type { Snapshot } from '#net/snapshot-source.js';
import type { MasterHello, MirrorMaster } from './master.js';

/*
 * A mirror's master on this machine: a fileset directory whose journal another process (its daemon) may be
 * writing. Read through a read-only connection of its store: the record stream after a TID (a RecordSource, as a
 * server's GET /kml is for a client), its object table at one TID for the first copy (a SnapshotSource, as GET
 * /copy and /snapshot are) and the content of its files (a ContentSource, as /content and /blocks are), read with
 * the server's own reader (net/content-cache.ts). Every byte of content handed over is counted (`sent`) and goes
 * through the bandwidth limit, when there is one.
 */

/** How often a caught-up stream looks for new records of the master (another process commits them). */
const POLL_MS = 50;
/** Records read from the master's journal at a time (as kml-stream.ts does). */
const READ_RECORDS = 256;

export class LocalMaster implements MirrorMaster {
  readonly paths: FilesetPaths;
  readonly where: string;
  readonly db: FilesetDb;
  readonly #reader: ContentReader;
  readonly #limit: RateLimit | null;
  /** Bytes of file content handed to the mirror (inline, copied, fetched, blocks). */
  sent = 0;

  constructor(paths: FilesetPaths, limit: RateLimit | null) {
    this.paths = paths;
    this.where = paths.dir;
    this.db = FilesetDb.open(paths.db, { readonly: true, check: false });
    this.#reader = new ContentReader(paths.dir, this.db, new BlockMapCache());
    this.#limit = limit;
  }

  close(): Promise<void> {
    this.db.close();
    return Promise.resolve();
  }

  /** The master's last TID now (its daemon commits in another process: read from the store, not the open state). */
  lastTid(): Tid {
    return asTid(BigInt(this.db.getMeta('last_tid') ?? '0'));
  }

  firstAfterTime(tid: Tid): number | null {
    return this.db.readKml(tid, 1)[0]?.time ?? null;
  }

  changedAfter(fid: string, tid: Tid): boolean {
    return this.db.hasLaterRecord(fid as Fid, tid);
  }

  applied(): void {
    // A local master keeps no account of its mirrors.
  }

  hello(): Promise<MasterHello> {
    const m = this.db.meta;
    return Promise.resolve({ node: m.nodeId, uuid: m.uuid, fileset: m.fileset, tid: this.lastTid() });
  }

  /** The records after `since` as runs of frames (as the server's stream sends them), then each new one as committed; a ping when idle. */
  async* follow(since: Tid, signal: AbortSignal): AsyncGenerator<Frame | readonly Frame[]> {
    const db = this.db;
    if (since < db.firstKeptTid - 1n) throw IntersyncError.RESYNC_NEEDED(formatTid(since), formatTid(db.firstKeptTid));
    yield { type: 'hello', header: { node: db.meta.nodeId, uuid: db.meta.uuid, tid: formatTid(this.lastTid()) }, payload: null };
    let cursor = since;
    let idle = 0;
    while (!signal.aborted) {
      const recs = db.readKml(cursor, READ_RECORDS);
      if (recs.length > 0) {
        const last = formatTid(this.lastTid());
        // Under a bandwidth limit a run goes as soon as it holds a piece's worth of content: the slave applies
        // (and a kill keeps) what was paid for, instead of waiting for the whole read.
        let run: Frame[] = [];
        let bytes = 0;
        for (const r of recs) {
          const payload = await this.#inline(r);
          run.push({ type: 'record', header: { r: recordToWire(r), last }, payload });
          bytes += payload?.length ?? 0;
          cursor = r.tid;
          if (this.#limit !== null && bytes >= this.#limit.piece) {
            yield run;
            run = [];
            bytes = 0;
          }
        }
        idle = 0;
        if (run.length > 0) yield run;
        continue;
      }
      // Caught up: the master's TID and digest (a sink with --once looks at it), every second while idle.
      if (idle % 20 === 0) yield { type: 'ping', header: { tid: formatTid(this.lastTid()), digest: db.getMeta('digest') ?? formatDigest(0n) }, payload: null };
      idle++;
      try {
        await sleep(POLL_MS, undefined, { signal });
      } catch {
        return;
      }
    }
  }

  /** A small file record's content when the master still holds exactly it (else the sink fetches what it holds now). */
  async #inline(r: KmlRecord): Promise<Buffer | null> {
    const buf = this.#reader.inline(r);
    if (buf !== null) await this.#count(buf.length);
    return buf;
  }

  async #count(n: number): Promise<void> {
    this.sent += n;
    if (this.#limit !== null && n > 0) await this.#limit.take(n);
  }

  snapshot(since: Tid): Promise<Snapshot> {
    const snap = this.db.snapshotReader();
    try {
      const next = firstAfter(this.db, since, snap.tid);
      return Promise.resolve({ tid: formatTid(snap.tid), digest: formatDigest(snap.digest), ...(next === null ? {} : { next }), entries: [...entriesOf(pagesOf(snap))] });
    } finally {
      snap.close();
    }
  }

  /** The object table at one TID with the content of its small files, as GET /copy frames it (net/copy-routes.ts). */
  async* copyStream(since: Tid): AsyncGenerator<Frame> {
    const db = this.db;
    const snap = db.snapshotReader();
    try {
      const next = firstAfter(db, since, snap.tid);
      yield {
        type: 'hello', payload: null,
        header: { node: db.meta.nodeId, uuid: db.meta.uuid, tid: formatTid(snap.tid), digest: formatDigest(snap.digest), entries: snap.entries, bytes: snap.bytes, ...(next === null ? {} : { next }) },
      };
      for (const o of entriesOf(pagesOf(snap))) {
        const inline = o.type === 'file' && o.linkOf === null && (o.size ?? 0) > 0 && isInlineSize(o.size ?? 0);
        if (!inline) {
          yield { type: 'entry', header: { e: o }, payload: null };
          continue;
        }
        let hash = o.hash;
        let buf = this.#reader.current(o);
        if (buf === null) {
          const now = db.contentRows([o.fid]).get(o.fid); // changed or removed since the TID
          buf = now === undefined ? null : this.#reader.current(now);
          hash = now?.hash ?? null;
        }
        await this.#count(buf?.length ?? 0);
        yield { type: 'entry', header: { e: o, hash, ok: buf !== null }, payload: buf };
      }
      yield { type: 'end', header: {}, payload: null };
    } finally {
      snap.close();
    }
  }

  async content(fids: readonly string[]): Promise<Map<string, { hash: string | null; data: Buffer | null }>> {
    const out = new Map<string, { hash: string | null; data: Buffer | null }>();
    const rows = this.db.contentRows(fids);
    for (const fid of new Set(fids)) {
      const o = rows.get(fid);
      const buf = o === undefined ? null : this.#reader.current(o);
      await this.#count(buf?.length ?? 0);
      out.set(fid, { hash: o?.hash ?? null, data: buf });
    }
    return out;
  }

  /** The current content's block map of `d`'s object; CONTENT_GONE when the master holds no file there now (removed or moving). */
  async blockMap(d: RecordDraft): Promise<BlockMap> {
    let got: Awaited<ReturnType<ContentReader['blockMap']>>;
    try {
      got = await this.#reader.blockMap(d.fid);
    } catch {
      got = null; // removed or replaced while read: its capture has not journaled it yet
    }
    if (got === null) throw IntersyncError.CONTENT_GONE(d.fid);
    return got.map;
  }

  /** The blocks asked for, one buffer per block (as PeerClient#blocks yields them), cut from the reader's runs. */
  async* blocks(d: RecordDraft, map: BlockMap, indexes: readonly number[]): AsyncGenerator<Buffer> {
    const got = await this.#reader.blockMap(d.fid);
    if (got === null || got.map.hash !== map.hash) throw IntersyncError.CONTENT_GONE(map.hash);
    let k = 0;
    const runs = this.#reader.blocks(got.path, map, indexes);
    for (;;) {
      let next: IteratorResult<Buffer>;
      try {
        next = runs.next();
      } catch {
        throw IntersyncError.CONTENT_GONE(map.hash); // changed or removed while read: a later record brings it
      }
      if (next.done === true) return;
      const run = next.value;
      for (let at = 0; at < run.length; k++) {
        const n = blockLength(map, indexes[k]!);
        await this.#count(n);
        yield run.subarray(at, at + n);
        at += n;
      }
    }
  }
}
