import type { Logger } from 'pino';
import { IntersyncError } from '#core/errors.js';
import { asTid, parseTid, type Tid } from '#core/ids.js';
import type { RecordDraft } from '#core/record.js';
import type { BlockMap } from '#fsio/blocks.js';
import { PeerClient } from '#net/peer-client.js';
import type { Frame } from '#net/protocol/frames.js';
import type { RateLimit } from '#net/rate-limit.js';
import type { Snapshot } from '#net/snapshot-source.js';
import { ensureCredential, initialBearer, pinOf, type ClientTrust } from '#daemon/enrolment.js';
import type { StatePaths } from '#journal/state-dir.js';
import type { MasterHello, MirrorMaster } from './master.js';

/*
 * A mirror's master behind an intersync daemon: the server's own routes, as a client uses them (PeerClient): hello,
 * the forwarded record stream (GET /kml?follow), the copy stream and snapshot, content and blocks, and the ack of
 * what the slave applied (POST /ack), so the server counts the slave as one of its nodes (status, retention). The
 * slave enrols as a node of its own (not replicating) with a join token's invitation or the fileset secret, and keeps
 * its credential in the state directory as a client does (daemon/enrolment.ts). Content bytes are counted as they
 * are read; the bandwidth limit is the PeerClient's own (every body it reads).
 */
export class RemoteMaster implements MirrorMaster {
  readonly where: string;
  readonly #client: PeerClient;
  readonly #node: string;
  readonly #sp: StatePaths;
  readonly #trust: ClientTrust;
  readonly #log: Logger;
  #lastTid: Tid = asTid(0n);
  #acking: Promise<void> = Promise.resolve();
  sent = 0;

  constructor(o: { url: string; where: string; uuid?: string; trust: ClientTrust; statePaths: StatePaths; node: string; limit: RateLimit | null; log: Logger }) {
    this.where = o.where;
    this.#node = o.node;
    this.#sp = o.statePaths;
    this.#trust = o.trust;
    this.#log = o.log;
    const pin = pinOf(o.statePaths, o.trust);
    this.#client = new PeerClient(o.url, initialBearer(o.statePaths, o.trust), {
      ...(o.uuid === undefined ? {} : { uuid: o.uuid }), ...(pin === undefined ? {} : { pin }), bwlimit: o.limit,
    });
  }

  /** Enrol (or take the credential kept), then the server's hello: its node, fileset, uuid and last TID. */
  async hello(): Promise<MasterHello> {
    await ensureCredential(this.#client, this.#sp, this.#node, false, this.#trust);
    const h = await this.#client.hello(this.#node, false);
    const tid = parseTid(h.lastTid);
    if (tid === undefined) throw IntersyncError.PROTOCOL(`the server's hello names no TID (${h.lastTid})`);
    this.#seen(tid);
    return { node: h.node, uuid: h.uuid, fileset: h.fileset, tid };
  }

  #seen(tid: Tid | undefined): void {
    if (tid !== undefined && tid > this.#lastTid) this.#lastTid = tid;
  }

  async* follow(since: Tid, signal: AbortSignal): AsyncGenerator<readonly Frame[]> {
    for await (const run of this.#client.follow(since, this.#node, signal)) {
      for (const f of run) {
        if (f.type === 'record') {
          this.sent += f.payload?.length ?? 0;
          this.#seen(typeof f.header.last === 'string' ? parseTid(f.header.last) : undefined);
        } else if ((f.type === 'ping' || f.type === 'hello') && typeof f.header.tid === 'string') {
          this.#seen(parseTid(f.header.tid));
        }
      }
      yield run;
    }
  }

  lastTid(): Tid {
    return this.#lastTid;
  }

  firstAfterTime(): number | null {
    return null;
  }

  changedAfter(): null {
    return null;
  }

  applied(tid: Tid): void {
    // One ack at a time, in order; a failed one is only logged (the next one says more).
    this.#acking = this.#acking.then(() => this.#client.ack(this.#node, tid)).catch((e: unknown) => {
      this.#log.warn({ err: (e as Error).message }, 'ack to the master failed');
    });
  }

  async snapshot(since: Tid): Promise<Snapshot> {
    const s = await this.#client.snapshot(since);
    this.#seen(parseTid(s.tid));
    return s;
  }

  async* copyStream(since: Tid): AsyncGenerator<Frame> {
    for await (const f of this.#client.copyStream(since)) {
      if (f.type === 'entry') this.sent += f.payload?.length ?? 0;
      if (f.type === 'hello' && typeof f.header.tid === 'string') this.#seen(parseTid(f.header.tid));
      yield f;
    }
  }

  async content(fids: readonly string[]): Promise<Map<string, { hash: string | null; data: Buffer | null }>> {
    const got = await this.#client.content(fids);
    for (const v of got.values()) this.sent += v.data?.length ?? 0;
    return got;
  }

  blockMap(d: RecordDraft): Promise<BlockMap> {
    return this.#client.blockMap(d.fid);
  }

  async* blocks(d: RecordDraft, map: BlockMap, indexes: readonly number[]): AsyncGenerator<Buffer> {
    for await (const b of this.#client.blocks(d.fid, map, indexes)) {
      this.sent += b.length;
      yield b;
    }
  }

  async close(): Promise<void> {
    await this.#acking;
    await this.#client.close();
  }
}
