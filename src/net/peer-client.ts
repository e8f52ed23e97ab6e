import { Agent, buildConnector, request, type Dispatcher } from 'undici';
import { X509Certificate } from 'node:crypto';
import { Readable } from 'node:stream';
import { IntersyncError } from '#core/errors.js';
import { readCredentialFile } from '#journal/state-dir.js';
import { PROTOCOL_VERSION } from '#core/format.js';
import { formatTid, type Tid } from '#core/ids.js';
import type { BlockMap } from '#fsio/blocks.js';
import type { TokenScopeMode } from '#policy/token-table.js';
import { blockLength } from '#fsio/blocks.js';
import { readFrameRuns, readFrames, type Frame } from './protocol/frames.js';
import type { Snapshot, SnapshotEntry, SnapshotSource } from './snapshot-source.js';
import { fromWire } from './protocol/wire-errors.js';
import { pinnedConnector } from './tls-pin.js';
import { WireBytes } from './wire-bytes.js';
import { bodyLimit, throttled, type RateLimit } from './rate-limit.js';

/**
 * The wait for an answer to a body of `bytes` sent at `limit`: the answer comes after the body, so the time to
 * send it at the limit (twice: others share the bucket) counts on top of `ms`. undici counts its headers timeout
 * from the start of the request and refreshes it only when the socket pushes back, which a paced body never does.
 */
function paced(limit: RateLimit | null, bytes: number, ms: number): number {
  return limit === null ? ms : ms + Math.ceil((2 * bytes * 1000) / limit.rate);
}

export interface HelloInfo {
  readonly proto: number;
  readonly fileset: string;
  readonly uuid: string;
  readonly node: string;
  readonly lastTid: string;
  readonly digest: string;
  readonly tokenScope: TokenScopeMode;
  readonly leaseMs: number;
  readonly conflictPolicy: string;
  /** The fileset's attribute policy (preserveSetid, preserveOwner, safeLinks), unchecked: `parseServerAttrs` reads it. */
  readonly attrs?: unknown;
  /** The server takes a reintegration batch sent while the one before it is answered (absent from an older server). */
  readonly pipeline?: boolean;
}

export type { Snapshot, SnapshotEntry };

/** The answer to an enrolment: this node's own credential (shown once), and the fileset it is for. */
export interface EnrolResult {
  readonly credential: string;
  readonly node: string;
  readonly replicate: boolean;
  readonly uuid: string;
  readonly fileset: string;
  readonly server: string;
}

export interface ReintResult {
  readonly results: Array<{ seq: string; status: 'accepted' | 'conflict' | 'need-content' | 'skipped' | 'retry'; r?: unknown; error?: { code: string; message: string; reason?: unknown } }>;
  readonly lastTid: string;
}

/**
 * The CA certificate a client trusts for an https server (--tls-ca), read once: a file missing, unreadable or
 * not a certificate in PEM is NO_CREDENTIAL naming it (before, `[INTERNAL] ENOENT … this is a bug`).
 */
function readCa(file: string): Buffer {
  const hint = 'give --tls-ca the PEM file of the CA that signed the server\'s certificate, readable by the user the daemon runs as; ' +
    'or join with a token from intersync invite, which pins the server\'s certificate with no CA';
  const pem = readCredentialFile('the --tls-ca certificate', file, hint);
  try {
    new X509Certificate(pem); // only its parse: a file that is not a certificate fails here, not at each connection
  } catch (e) {
    throw IntersyncError.NO_CREDENTIAL('the --tls-ca certificate', file, `is not a certificate in PEM (${(e as Error).message})`, hint, e);
  }
  return pem;
}

/**
 * The HTTP client of a fileset's server (undici, keep-alive). Every call
 * carries a bearer token (this node's credential once enrolled; before, the
 * fileset secret or an invitation); with a pin, only the server whose
 * certificate has that fingerprint is spoken to. An error answer comes back
 * as the IntersyncError the server sent, a network failure as
 * PEER_UNREACHABLE (retriable), a certificate that is not the pinned one as
 * TLS_PIN_MISMATCH (not retriable).
 */
export class PeerClient implements SnapshotSource {
  readonly url: string;
  /** Bytes read and written on this client's connections to the server. */
  readonly bytes = new WireBytes();
  readonly #origin: string;
  readonly #base: string;
  #bearer: string;
  readonly #agent: Agent;
  #uuid: string | null;
  /** The node's bandwidth limit (net/rate-limit.ts): every content body sent or received takes from it. */
  readonly bwlimit: RateLimit | null;

  constructor(url: string, bearer: string, opts: { uuid?: string; ca?: string; pin?: string; bwlimit?: RateLimit | null } = {}) {
    let u: URL;
    try {
      u = new URL(/^https?:\/\//.test(url) ? url : `http://${url}`);
    } catch {
      throw IntersyncError.BAD_ARGUMENT(`--server ${url} is not a URL`, 'write it as HOST[:PORT] or http://HOST:PORT');
    }
    if (u.port === '') u.port = '7777';
    this.url = u.origin;
    this.#origin = u.origin;
    this.#base = u.pathname.replace(/\/$/, '');
    this.#bearer = bearer;
    this.#uuid = opts.uuid ?? null;
    this.bwlimit = opts.bwlimit ?? null;
    const base = opts.pin !== undefined && u.protocol === 'https:' ? pinnedConnector(opts.pin, u.origin)
      : buildConnector(opts.ca === undefined ? {} : { ca: readCa(opts.ca) });
    // Every connection the agent opens is counted (bytes in and out, as the server counts its own).
    const counted: buildConnector.connector = (o, cb) => {
      base(o, (err, socket) => {
        if (err === null) {
          this.bytes.watchSocket(socket);
          cb(null, socket);
        } else cb(err, null);
      });
    };
    this.#agent = new Agent({ keepAliveTimeout: 30_000, connections: 8, connect: counted });
  }

  /** From now on, authenticate with this token (the node's credential, once enrolled). */
  set bearer(v: string) {
    this.#bearer = v;
  }

  set uuid(v: string) {
    this.#uuid = v;
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }

  #fs(path: string): string {
    if (this.#uuid === null) throw new Error('peer client: fileset uuid not known yet');
    return `${this.#base}/v1/filesets/${this.#uuid}${path}`;
  }

  async #call(method: Dispatcher.HttpMethod, path: string, o: { json?: unknown; body?: Readable | Buffer; timeoutMs?: number; signal?: AbortSignal } = {}): Promise<Dispatcher.ResponseData> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.#bearer}` };
    let body: string | Buffer | Readable | null = null;
    if (o.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(o.json);
    } else if (o.body !== undefined) {
      headers['content-type'] = 'application/octet-stream';
      body = o.body;
    }
    let res: Dispatcher.ResponseData;
    try {
      res = await request(`${this.#origin}${path}`, {
        method, headers, body, dispatcher: this.#agent,
        headersTimeout: o.timeoutMs ?? 60_000, bodyTimeout: o.timeoutMs ?? 60_000,
        ...(o.signal === undefined ? {} : { signal: o.signal }),
      });
    } catch (e) {
      const pinned = e instanceof IntersyncError ? e : (e as { cause?: unknown }).cause;
      if (pinned instanceof IntersyncError && pinned.code === 'TLS_PIN_MISMATCH') throw pinned;
      throw IntersyncError.PEER_UNREACHABLE(this.url, e);
    }
    if (res.statusCode >= 400) {
      let parsed: unknown;
      try {
        parsed = await res.body.json();
      } catch {
        parsed = null;
      }
      throw fromWire(res.statusCode, parsed);
    }
    return res;
  }

  async #json<T>(method: Dispatcher.HttpMethod, path: string, json?: unknown): Promise<T> {
    const res = await this.#call(method, path, json === undefined ? {} : { json });
    try {
      return (await res.body.json()) as T;
    } catch (e) {
      throw IntersyncError.PEER_UNREACHABLE(this.url, e);
    }
  }

  async hello(node: string, replicate: boolean): Promise<HelloInfo> {
    const h = await this.#json<HelloInfo>('POST', `${this.#base}/v1/hello`, { node, proto: PROTOCOL_VERSION, replicate });
    this.#uuid = h.uuid;
    return h;
  }

  /** Enrol this node (with the fileset secret or an invitation as the bearer): its own credential comes back. */
  enrol(node: string, replicate: boolean): Promise<EnrolResult> {
    return this.#json<EnrolResult>('POST', `${this.#base}/v1/enrol`, { node, proto: PROTOCOL_VERSION, replicate });
  }

  /** The whole fileset at one TID; `since` (this node's last_rcvd) makes the server name the first record it misses (`next`). */
  snapshot(since: Tid): Promise<Snapshot> {
    return this.#json<Snapshot>('GET', this.#fs(`/snapshot?since=${formatTid(since)}`));
  }

  /** The whole fileset at one TID, streamed for a first copy: hello (with `next` after `since`), an entry frame per object, end. */
  async *copyStream(since: Tid): AsyncGenerator<Frame> {
    const res = await this.#call('GET', this.#fs(`/copy?since=${formatTid(since)}`), { timeoutMs: 300_000 });
    try {
      yield* readFrames(throttled(res.body, this.bwlimit));
    } catch (e) {
      if (e instanceof IntersyncError) throw e;
      throw IntersyncError.PEER_UNREACHABLE(this.url, e); // cut in the middle
    }
  }

  /**
   * Current content of small objects: fid -> bytes (null when the server no longer holds them). The server
   * caps the bytes of one answer and says `more` at its end; the rest is asked for again until all came.
   */
  async content(fids: readonly string[]): Promise<Map<string, { hash: string | null; data: Buffer | null }>> {
    const out = new Map<string, { hash: string | null; data: Buffer | null }>();
    let rest = [...new Set(fids)];
    while (rest.length > 0) {
      const res = await this.#call('POST', this.#fs('/content'), { json: { fids: rest } });
      let more = false;
      let got = 0;
      for await (const f of readFrames(throttled(res.body, this.bwlimit))) {
        if (f.type === 'end') more = f.header.more === true;
        if (f.type !== 'content') continue;
        got++;
        out.set(String(f.header.fid), { hash: (f.header.hash as string | null) ?? null, data: f.header.ok === true ? (f.payload ?? Buffer.alloc(0)) : null });
      }
      if (!more) break;
      if (got === 0) throw IntersyncError.PROTOCOL('the server answered a content request with nothing and more to come');
      rest = rest.filter((fid) => !out.has(fid));
    }
    return out;
  }

  blockMap(fid: string): Promise<BlockMap> {
    return this.#json<BlockMap>('GET', this.#fs(`/blocks?fid=${encodeURIComponent(fid)}`));
  }

  /** Blocks `indexes` of the server's current content of `fid` (which must hash to `map.hash`). */
  async *blocks(fid: string, map: BlockMap, indexes: readonly number[]): AsyncGenerator<Buffer> {
    if (indexes.length === 0) return;
    const res = await this.#call('POST', this.#fs('/blocks'), { json: { fid, hash: map.hash, indexes }, timeoutMs: 300_000 });
    let k = 0;
    let pending: Buffer[] = [];
    let have = 0;
    for await (const chunk of throttled(res.body, this.bwlimit)) {
      let c = chunk;
      while (c.length > 0 && k < indexes.length) {
        const want = blockLength(map, indexes[k]!);
        const take = Math.min(want - have, c.length);
        pending.push(c.subarray(0, take));
        have += take;
        c = c.subarray(take);
        if (have === want) {
          yield Buffer.concat(pending);
          pending = [];
          have = 0;
          k++;
        }
      }
    }
    if (k !== indexes.length) throw IntersyncError.PROTOCOL(`server sent ${k} of ${indexes.length} blocks`);
  }

  async hasContent(hash: string): Promise<boolean> {
    try {
      await this.#call('HEAD', this.#fs(`/content/${hash}`));
      return true;
    } catch (e) {
      if (e instanceof IntersyncError && e.code !== 'PEER_UNREACHABLE' && e.code !== 'UNAUTHORIZED') return false;
      throw e;
    }
  }

  /**
   * Send a large file's frames (`bytes` of blocks: the answer may take that long at the limit); `onSent` hears
   * of the bytes the request body took (at the limit's pace).
   */
  async upload(fid: string, frames: AsyncIterable<Buffer>, o: { bytes?: number; onSent?: (n: number) => void } = {}): Promise<void> {
    const lim = bodyLimit(this.bwlimit, o.bytes ?? 0);
    const body = Readable.from(throttled(frames, lim, o.onSent), { highWaterMark: 1 });
    const res = await this.#call('POST', this.#fs(`/upload?fid=${encodeURIComponent(fid)}`), { body, timeoutMs: paced(lim, o.bytes ?? 0, 600_000) });
    await res.body.dump();
  }

  async reint(node: string, body: Buffer): Promise<ReintResult> {
    const lim = bodyLimit(this.bwlimit, body.length);
    const sent = lim === null ? body : Readable.from(throttled([body], lim), { highWaterMark: 1 });
    const res = await this.#call('POST', this.#fs(`/reint?node=${node}`), { body: sent, timeoutMs: paced(lim, body.length, 300_000) });
    return (await res.body.json()) as ReintResult;
  }

  async ack(node: string, tid: Tid): Promise<void> {
    await this.#json('POST', this.#fs('/ack'), { node, tid: formatTid(tid) });
  }

  async token(node: string, scope: string, op: 'acquire' | 'release', waitMs = 5000): Promise<{ granted?: boolean; expires?: number }> {
    return this.#json('POST', this.#fs('/token'), { node, scope, op, waitMs });
  }

  /** The server's records after `since` that it holds now, not following (a dry run's look: nothing registered). */
  async *records(since: Tid): AsyncGenerator<Frame> {
    const res = await this.#call('GET', this.#fs(`/kml?since=${formatTid(since)}`), { timeoutMs: 60_000 });
    yield* readFrames(res.body);
  }

  /** The forwarded record stream after `since`, following new records until aborted or cut: runs of frames as they arrive. */
  async *follow(since: Tid, node: string, signal: AbortSignal): AsyncGenerator<Frame[]> {
    const res = await this.#call('GET', this.#fs(`/kml?since=${formatTid(since)}&follow=1&node=${node}`), { timeoutMs: 45_000, signal });
    yield* readFrameRuns(throttled(res.body, this.bwlimit));
  }
}
