import { setTimeout as sleep } from 'node:timers/promises';
import { metrics } from '#core/metrics.js';
import { lstatSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Readable } from 'node:stream';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Clock } from '#core/clock.js';
import { D_HTTP, D_REINT } from '#core/debug.js';
import { formatDigest } from '#core/digest.js';
import { IntersyncError, isDiskFull } from '#core/errors.js';
import type { DiskFullState } from '#core/disk-full.js';
import { PROTOCOL_VERSION, isInlineSize } from '#core/format.js';
import { formatTid, isNodeId, NO_VERSION, parseTid, type Fid, type Tid } from '#core/ids.js';
import { Mutex, Signal } from '#core/mutex.js';
import { parentOf } from '#core/paths.js';
import type { RecordDraft } from '#core/record.js';
import type { ApplyPath, ContentSource } from '#apply/apply-path.js';
import { blockLength, type BlockMap } from '#fsio/blocks.js';
import { placedHere } from '#apply/placed.js';
import { confine } from '#apply/confine.js';
import type { FilesetDb, SnapshotReader, SnapshotRow } from '#journal/fileset-db.js';
import type { IdentityDb } from '#journal/identity-db.js';
import { Transfers, type TransferHandle } from '#core/transfers.js';
import { WireBytes } from './wire-bytes.js';
import type { SnapshotEntry } from './peer-client.js';
import { TokenTable, type TokenScopeMode } from '#policy/token-table.js';
import { modeChange } from '#policy/attr-policy.js';
import { ContentReader } from './content-cache.js';
import { throttled, writeLimited, type RateLimit } from './rate-limit.js';
import { ConnectionGuard, DEFAULT_LIMITS, RateLimitedLog, type EdgeLimits } from './edge-guard.js';
import { UploadStaging } from './upload-staging.js';
import { IdentityGate, NODE_HELLO_BODY, NODE_RE } from './identity-gate.js';
import { encodeFrame, helloFrame, readFrames, type Frame } from './protocol/frames.js';
import { lmlToWire, parseWireLml, recordToWire } from './protocol/wire-record.js';
import { unseenChange } from './unseen-change.js';
import { streamKml } from './kml-stream.js';
import { statusOf, toWire } from './protocol/wire-errors.js';

/** What the server needs of the node it serves (implemented by the daemon). */
export interface ServedFileset {
  readonly db: FilesetDb;
  readonly root: string;
  readonly apply: ApplyPath;
  readonly secret: string;
  /** Enrolled nodes and invitations (see identity-gate.ts). */
  readonly identity: IdentityDb;
  readonly log: Logger;
  readonly clock: Clock;
  readonly debug: number;
  readonly tokenScope: TokenScopeMode;
  readonly leaseMs: number;
  /** Journal any local change at these names not journaled yet, before a peer's record changes them. */
  readonly syncPaths?: (paths: readonly string[]) => Promise<void>;
  /** Wait (a bounded while) until capture has journaled what it has events for: a directory moved or removed here. */
  readonly settle?: () => Promise<void>;
  /** This node's disk-full state: a request that fails for want of space here notes it (and answers DISK_FULL, 507). */
  readonly disk?: DiskFullState;
  /** More routes on this port (metrics, the dashboard), added by the daemon. */
  readonly http?: HttpExtension;
  /** The node's bandwidth limit (net/rate-limit.ts), shared by every content transfer; none: unlimited. */
  readonly bwlimit?: RateLimit | null;
}

/**
 * Routes the daemon adds to the server's port. Requests under `openPrefix` skip the credential check
 * (the extension checks them itself: the dashboard's login); every other route needs the credential.
 */
export interface HttpExtension {
  readonly openPrefix?: string;
  extend(app: FastifyInstance, edge: { authenticate(req: FastifyRequest): unknown; trust(req: FastifyRequest): void }): void;
}

export interface ServerOptions {
  readonly host: string;
  readonly port: number;
  readonly tls?: { readonly cert: string; readonly key: string };
}

/** Limits at the edge. */
export const JSON_BODY_LIMIT = 1 << 20;
export const STREAM_BODY_LIMIT = 1 << 30;
const MAX_TOKEN_WAIT_MS = 10_000;
const UUID_RE = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
const TID_RE = '^(0x[0-9a-fA-F]{1,16}|[0-9]{1,19})$';

interface Follower {
  readonly node: string;
  readonly wake: Signal;
  readonly recalls: string[];
  /** End the stream now (its node was revoked). */
  readonly cut: () => void;
}

/** How often a record is placed and checked again while this node's capture catches up with its disk. */
const PLACE_ATTEMPTS = 4;

/**
 * The HTTP face of a fileset's server: hello, the forwarded record stream
 * (which also carries token recalls), reintegration, content and block
 * transfer, write tokens, acknowledgements and status. Every request carries
 * the fileset secret as a bearer token; every body is validated here, once.
 */
export class FilesetServer {
  readonly #f: ServedFileset;
  readonly #app: FastifyInstance;
  readonly #content: ContentReader;
  readonly #reint = new Mutex();
  readonly #tokens: TokenTable;
  readonly #tokenReleased = new Signal();
  readonly #followers = new Set<Follower>();
  readonly #limits: EdgeLimits;
  readonly #guard: ConnectionGuard;
  readonly #staging: UploadStaging;
  readonly #refusedLog: RateLimitedLog;
  readonly #sweeper: NodeJS.Timeout;
  readonly #gate: IdentityGate;
  readonly #revokePoll: NodeJS.Timeout;
  #closing = false;
  #recalls = 0;
  /** Large files moving now: blocks clients fetch (down), uploads they send (up). */
  readonly transfers: Transfers;
  /** Bytes read and written on the connections this server accepted. */
  readonly bytes = new WireBytes();

  constructor(f: ServedFileset, tls?: { cert: string; key: string }, limits: Partial<EdgeLimits> = {}) {
    this.#f = f;
    this.transfers = new Transfers(() => f.clock.now());
    const lim = { ...DEFAULT_LIMITS, ...limits };
    this.#limits = lim;
    this.#staging = new UploadStaging((h) => f.apply.stagedPath(h), f.clock, lim.stagedQuotaBytes, lim.stagedTtlMs);
    this.#refusedLog = new RateLimitedLog(f.clock, lim.refusedLogLines, lim.refusedLogWindowMs);
    this.#sweeper = setInterval(() => this.#staging.sweep(), Math.max(1_000, Math.min(lim.stagedTtlMs / 4, 60_000))).unref();
    // Timeouts of the HTTP server itself: headers and the whole request must arrive in time; the check runs every
    // checkIntervalMs (Node's default of 30 s would let a slow connection live up to 40 s).
    const timeouts = { headersTimeout: lim.headersTimeoutMs, requestTimeout: lim.requestTimeoutMs, connectionsCheckingInterval: lim.checkIntervalMs };
    this.#gate = new IdentityGate(f.identity, f.secret, f.clock, f.log);
    this.#tokens = new TokenTable(f.leaseMs);
    this.#content = new ContentReader(f.root, f.db, f.apply.blockMaps);
    this.#app = Fastify({
      logger: false,
      bodyLimit: JSON_BODY_LIMIT,
      keepAliveTimeout: 65_000,
      requestTimeout: lim.requestTimeoutMs,
      http: timeouts,
      // Refuse what the schema does not allow instead of quietly dropping or converting it.
      ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false } },
      ...(tls === undefined ? {} : { https: { cert: readFileSync(tls.cert), key: readFileSync(tls.key), ...timeouts } }),
    }) as unknown as FastifyInstance;
    const app = this.#app;
    this.bytes.watchServer(app.server);
    app.server.headersTimeout = lim.headersTimeoutMs;
    this.#guard = new ConnectionGuard(app.server, lim, f.log);
    app.addContentTypeParser('application/octet-stream', (_req, payload, done) => done(null, payload));
    app.addHook('onRequest', async (req, reply) => this.#auth(req, reply));
    app.setErrorHandler((err, req, reply) => this.#error(err, req, reply));
    app.setNotFoundHandler((req, reply) => {
      void reply.code(404).send(toWire(IntersyncError.BAD_REQUEST(`no route ${req.method} ${req.url.split('?')[0]}`)));
    });
    f.db.onCommit(() => {
      for (const fl of this.#followers) fl.wake.fire();
    });
    this.#routes();
    f.http?.extend(app, { authenticate: (req) => this.#gate.authenticate(req), trust: (req) => this.#guard.trust(req.socket) });
    this.#gate.routes(app, () => ({ uuid: f.db.meta.uuid, fileset: f.db.meta.fileset, nodeId: f.db.meta.nodeId }));
    // A revoked node's open forwarded stream ends within a second (`intersync revoke` writes the identity store).
    this.#revokePoll = setInterval(() => {
      for (const fl of this.#followers) if (fl.node !== 'anonymous' && !this.#gate.allowed(fl.node)) fl.cut();
    }, 1000);
    this.#revokePoll.unref();
  }

  /** The node's bandwidth limit, null when none. */
  get #bw(): RateLimit | null {
    return this.#f.bwlimit ?? null;
  }

  get tokens(): TokenTable {
    return this.#tokens;
  }

  /** Token recalls sent so far. */
  get recalls(): number {
    return this.#recalls;
  }

  /** Nodes with an open forwarded stream now. */
  connectedPeers(): string[] {
    return [...new Set([...this.#followers].map((f) => f.node))].sort();
  }

  async listen(o: ServerOptions): Promise<string> {
    return this.#app.listen({ host: o.host, port: o.port });
  }

  address(): { port: number } {
    const a = this.#app.server.address();
    return { port: typeof a === 'object' && a !== null ? a.port : 0 };
  }

  /** Unauthenticated connections closed for a cap so far, and open now. */
  get connections(): { evicted: number; unauthenticated: number } {
    return { evicted: this.#guard.evicted, unauthenticated: this.#guard.unauthenticated };
  }

  /** Bytes of uploads staged now. */
  get stagedBytes(): number {
    return this.#staging.bytes;
  }

  async close(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#sweeper);
    clearInterval(this.#revokePoll);
    for (const fl of this.#followers) fl.wake.fire();
    await this.#app.close();
  }

  async #auth(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const open = this.#f.http?.openPrefix;
    if (open !== undefined && (req.url === open.replace(/\/$/, '') || req.url.startsWith(open))) return;
    try {
      this.#gate.authenticate(req);
    } catch (e) {
      const err = e instanceof IntersyncError ? e : IntersyncError.UNAUTHORIZED();
      // At a bounded rate: a flood of wrong credentials must not fill the disk with log lines.
      this.#refusedLog.hit((suppressed) => {
        this.#f.log.warn({ ip: req.ip, url: req.url.split('?')[0], code: err.code, ...(suppressed > 0 ? { suppressed } : {}) }, 'refused request: bad credential');
      });
      metrics().error(err.code);
      await reply.code(statusOf(err)).send(toWire(err));
      return;
    }
    this.#guard.trust(req.socket);
    const uuid = (req.params as { uuid?: string } | undefined)?.uuid;
    if (uuid !== undefined && uuid !== this.#f.db.meta.uuid) {
      await reply.code(404).send(toWire(IntersyncError.NO_FILESET(this.#f.root, uuid)));
      return;
    }
    if ((this.#f.debug & D_HTTP) !== 0) this.#f.log.debug({ method: req.method, url: req.url }, 'http');
  }

  #error(err: unknown, _req: FastifyRequest, reply: FastifyReply): void {
    let e: IntersyncError;
    const fe = err as { validation?: unknown; statusCode?: number; code?: string; message?: string };
    if (err instanceof IntersyncError) e = err;
    else if (fe.validation !== undefined) e = IntersyncError.BAD_REQUEST(fe.message ?? 'invalid request');
    else if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') e = IntersyncError.TOO_LARGE('request body', JSON_BODY_LIMIT);
    else if (fe.statusCode !== undefined && fe.statusCode >= 400 && fe.statusCode < 500) e = IntersyncError.BAD_REQUEST(fe.message ?? 'bad request');
    else if (isDiskFull(err, { local: true })) {
      // This node's own full disk (staging an upload, a checkpoint): a state it says once (DiskFullState), not the peer's doing.
      e = IntersyncError.DISK_FULL(`serving ${_req.method} ${_req.url.split('?')[0]}`, err);
      this.#f.disk?.note('request', e);
      this.#f.log.warn({ code: e.code, err: e.message, url: _req.url.split('?')[0] }, 'request failed: the disk is full');
    } else {
      // A peer that went away mid-request (a cut link, a killed client) is no fault here.
      const gone = _req.raw.destroyed || fe.message === 'aborted' || fe.code === 'ECONNRESET';
      if (gone) this.#f.log.warn({ err: fe.message, url: _req.url.split('?')[0] }, 'request cut by the peer');
      else this.#f.log.error({ err: fe.message, url: _req.url.split('?')[0] }, 'request failed');
      e = new IntersyncError('IO', `serving ${_req.method} ${_req.url.split('?')[0]} failed: ${fe.message ?? 'unknown error'}`, {
        hint: 'see the server log', retriable: true,
      });
    }
    metrics().error(e.code);
    if (!reply.sent) void reply.code(statusOf(e)).send(toWire(e));
  }

  #routes(): void {
    const app = this.#app;
    const f = this.#f;
    const db = f.db;
    const params = { type: 'object', required: ['uuid'], properties: { uuid: { type: 'string', pattern: UUID_RE } } };

    app.post('/v1/hello', {
      schema: { body: NODE_HELLO_BODY },
    }, async (req) => {
      const b = req.body as { node: string; proto: number; replicate?: boolean };
      if (b.proto !== PROTOCOL_VERSION) throw IntersyncError.PROTOCOL(`client speaks protocol ${b.proto}, server ${PROTOCOL_VERSION}`);
      if (b.node === db.meta.nodeId) throw IntersyncError.BAD_REQUEST('the client has the server\'s own node id');
      // Only a node's own credential registers it as a peer; the fileset secret or an invitation just asks.
      const by = this.#gate.nodeOf(req);
      if (by !== null) this.#gate.actsFor(req, b.node);
      if (by !== null) db.registerPeer(b.node, b.replicate === true, f.clock.now(), req.ip);
      return {
        proto: PROTOCOL_VERSION, fileset: db.meta.fileset, uuid: db.meta.uuid, node: db.meta.nodeId,
        lastTid: formatTid(db.lastTid), digest: formatDigest(db.digest), tokenScope: f.tokenScope, leaseMs: f.leaseMs,
        conflictPolicy: db.getMeta('conflict-policy') ?? 'keep-both', attrs: f.apply.attrs,
      };
    });

    // `since`: the asking node's last_rcvd (optional, 0 when absent), so a copy's answer names the first record
    // that node misses (`next`, journal/in-flight.ts): a resync's lag counts from it, as this server counts it.
    const copyQuery = { type: 'object', properties: { since: { type: 'string', pattern: TID_RE } } };
    const sinceOf = (req: FastifyRequest): Tid => {
      const q = (req.query as { since?: string }).since;
      const since = q === undefined ? NO_VERSION : parseTid(q);
      if (since === undefined) throw IntersyncError.BAD_REQUEST(`since ${q} is out of range`);
      return since;
    };

    // The whole object table at one TID, for a client's first copy or resync.
    app.get('/v1/filesets/:uuid/snapshot', { schema: { params, querystring: copyQuery } }, async (req, reply) => {
      const since = sinceOf(req);
      const snap = db.snapshotReader();
      try {
        const next = firstAfter(db, since, snap.tid);
        return reply.send({ tid: formatTid(snap.tid), digest: formatDigest(snap.digest), ...(next === null ? {} : { next }), entries: [...entriesOf(pagesOf(snap))] });
      } finally {
        snap.close();
      }
    });

    // The whole object table at one TID with the content of its small files, streamed: a first copy into an
    // empty directory starts writing with the first frames.
    app.get('/v1/filesets/:uuid/copy', { schema: { params, querystring: copyQuery } }, async (req, reply) => this.#copyStream(reply, sinceOf(req)));

    // Content of many small objects in one response: frames, one per fid.
    app.post('/v1/filesets/:uuid/content', {
      schema: {
        params,
        body: {
          type: 'object', required: ['fids'], additionalProperties: false,
          properties: { fids: { type: 'array', maxItems: 2000, items: { type: 'string', maxLength: 64 } } },
        },
      },
    }, async (req, reply) => {
      const fids = [...new Set((req.body as { fids: string[] }).fids)];
      // Streamed, one file read at a time as the peer takes the bytes, and capped: what does not fit is left
      // for the next request (`more` in the end frame).
      return reply.type('application/octet-stream').send(Readable.from(throttled(this.#contentFrames(fids), this.#bw), { objectMode: true, highWaterMark: 1 }));
    });

    app.get('/v1/filesets/:uuid/blocks', {
      schema: { params, querystring: { type: 'object', required: ['fid'], properties: { fid: { type: 'string', maxLength: 64 } } } },
    }, async (req) => {
      const { fid } = req.query as { fid: string };
      const r = await this.#content.blockMap(fid);
      if (r === null) throw IntersyncError.CONTENT_GONE(fid);
      return r.map;
    });

    app.post('/v1/filesets/:uuid/blocks', {
      schema: {
        params,
        body: {
          type: 'object', required: ['fid', 'hash', 'indexes'], additionalProperties: false,
          properties: {
            fid: { type: 'string', maxLength: 64 }, hash: { type: 'string', pattern: '^[0-9a-f]{64}$' },
            indexes: { type: 'array', maxItems: 65536, items: { type: 'integer', minimum: 0 } },
          },
        },
      },
    }, async (req, reply) => {
      const b = req.body as { fid: string; hash: string; indexes: number[] };
      const r = await this.#content.blockMap(b.fid);
      if (r === null || r.map.hash !== b.hash) throw IntersyncError.CONTENT_GONE(b.hash);
      if (b.indexes.some((i) => i >= r.map.blocks.length)) throw IntersyncError.BAD_REQUEST('block index out of range');
      const t = this.transfers.start('down', relative(this.#f.root, r.path), r.map.size, b.indexes.reduce((n, i) => n + blockLength(r.map, i), 0), this.#gate.nodeOf(req));
      return reply.type('application/octet-stream').send(Readable.from(tracked(throttled(this.#content.blocks(r.path, r.map, b.indexes), this.#bw), t), { highWaterMark: 1 }));
    });

    // Is this content here already (identical content is never sent twice)?
    app.head('/v1/filesets/:uuid/content/:hash', {
      schema: { params: { type: 'object', properties: { uuid: { type: 'string' }, hash: { type: 'string', pattern: '^[0-9a-f]{64}$' } } } },
    }, async (req, reply) => {
      const { hash } = req.params as { hash: string };
      this.#staging.touch(hash);
      return reply.code(this.#content.has(hash, f.apply.stagedPath(hash)) ? 200 : 404).send();
    });

    // A client's large file, as the blocks the server lacks; staged until the record naming it arrives.
    app.post('/v1/filesets/:uuid/upload', {
      bodyLimit: STREAM_BODY_LIMIT,
      schema: {
        params,
        querystring: {
          type: 'object', required: ['fid'],
          properties: { fid: { type: 'string', pattern: '^(root|[0-9a-f]{16}-[0-9a-f]{1,16})$' } },
        },
      },
    }, async (req) => {
      const { fid } = req.query as { fid: string };
      if (!(req.body instanceof Readable)) throw IntersyncError.BAD_REQUEST('send the blocks as frames with content-type application/octet-stream');
      const frames = readFrames(throttled(req.body, this.#bw))[Symbol.asyncIterator]();
      await frames.next(); // hello, checked by the decoder
      const first = await frames.next();
      if (first.done === true || first.value.type !== 'content') throw IntersyncError.PROTOCOL('upload starts with its block map');
      const map = parseBlockMap(first.value.header.map);
      let release: () => void;
      try {
        release = this.#staging.reserve(map.size);
      } catch (e) {
        // Take the rest of the upload (discarded, a frame at a time) so the peer reads the refusal instead of a reset.
        while ((await frames.next()).done !== true);
        throw e;
      }
      try {
        return await this.#upload(fid, map, frames, this.#gate.nodeOf(req));
      } finally {
        release();
      }
    });

    app.post('/v1/filesets/:uuid/reint', {
      bodyLimit: STREAM_BODY_LIMIT,
      schema: { params, querystring: { type: 'object', required: ['node'], properties: { node: { type: 'string', pattern: NODE_RE } } } },
    }, async (req) => {
      const { node } = req.query as { node: string };
      if (!(req.body instanceof Readable)) throw IntersyncError.BAD_REQUEST('send the records as frames with content-type application/octet-stream');
      if (node === db.meta.nodeId) throw IntersyncError.BAD_REQUEST('a client cannot reintegrate as the server');
      this.#gate.actsFor(req, node);
      return this.#reint.run(() => this.#reintegrate(node, throttled(req.body as Readable, this.#bw)));
    });

    app.post('/v1/filesets/:uuid/ack', {
      schema: {
        params,
        body: {
          type: 'object', required: ['node', 'tid'], additionalProperties: false,
          properties: { node: { type: 'string', pattern: NODE_RE }, tid: { type: 'string', pattern: TID_RE } },
        },
      },
    }, async (req) => {
      const b = req.body as { node: string; tid: string };
      const tid = parseTid(b.tid);
      if (tid === undefined) throw IntersyncError.BAD_REQUEST(`tid ${b.tid} is out of range`);
      if (tid > db.lastTid) throw IntersyncError.BAD_REQUEST(`acknowledged ${b.tid} is beyond the last TID ${formatTid(db.lastTid)}`);
      this.#gate.actsFor(req, b.node);
      db.setLastRcvd(b.node, tid, f.clock.now());
      return { ok: true };
    });

    app.post('/v1/filesets/:uuid/token', {
      schema: {
        params,
        body: {
          type: 'object', required: ['node', 'scope', 'op'], additionalProperties: false,
          properties: {
            node: { type: 'string', pattern: NODE_RE }, scope: { type: 'string', pattern: '^/[^/\\u0000]*$', maxLength: 256 },
            op: { type: 'string', enum: ['acquire', 'release'] }, waitMs: { type: 'integer', minimum: 0, maximum: MAX_TOKEN_WAIT_MS },
          },
        },
      },
    }, async (req) => {
      const b = req.body as { node: string; scope: string; op: 'acquire' | 'release'; waitMs?: number };
      this.#gate.actsFor(req, b.node);
      if (b.op === 'release') {
        if (this.#tokens.release(b.scope, b.node)) this.#tokenReleased.fire();
        return { released: true };
      }
      const deadline = f.clock.monotonic() + (b.waitMs ?? 5000);
      for (;;) {
        const r = this.#tokens.acquire(b.scope, b.node, f.clock.now());
        if (r.granted) return { granted: true, scope: b.scope, expires: r.grant.expires, leaseMs: f.leaseMs };
        this.#recall(r.holder, b.scope);
        metrics().tokenWait();
        const left = deadline - f.clock.monotonic();
        if (left <= 0) throw IntersyncError.TOKEN_BUSY(b.scope, r.holder);
        await this.#tokenReleased.wait(Math.min(left, 250));
      }
    });

    // The forwarded record stream: every record after `since`, then (follow=1) each new one as it commits,
    // token recalls for this node, and a ping every few seconds.
    app.get('/v1/filesets/:uuid/kml', {
      schema: {
        params,
        querystring: {
          type: 'object', required: ['since'],
          properties: {
            since: { type: 'string', pattern: TID_RE }, follow: { type: 'string', enum: ['0', '1'] },
            node: { type: 'string', pattern: NODE_RE },
          },
        },
      },
    }, async (req, reply) => {
      const q = req.query as { since: string; follow?: string; node?: string };
      if (q.node !== undefined) this.#gate.actsFor(req, q.node);
      const since = parseTid(q.since);
      if (since === undefined) throw IntersyncError.BAD_REQUEST(`since ${q.since} is out of range`);
      if (since + 1n < db.firstKeptTid && since < db.lastTid) {
        f.log.warn({ node: q.node, since: formatTid(since), first: formatTid(db.firstKeptTid) }, 'peer is past retention: it must resync');
        throw IntersyncError.RESYNC_NEEDED(formatTid(since), formatTid(db.firstKeptTid));
      }
      await this.#forward(reply, since, q.follow === '1', q.node ?? this.#gate.nodeOf(req) ?? 'anonymous');
    });

    app.get('/v1/filesets/:uuid/status', { schema: { params } }, async (req) => ({
      fileset: db.meta.fileset, uuid: db.meta.uuid, node: db.meta.nodeId, lastTid: formatTid(db.lastTid),
      // A node sees itself only (which other nodes are connected is none of its business); the secret's holder all.
      digest: formatDigest(db.digest), connected: this.connectedPeers().filter((n) => this.#gate.nodeOf(req) === null || n === this.#gate.nodeOf(req)),
      tokens: this.#tokens.grants(f.clock.now()),
    }));
  }

  /** Receive an upload's blocks (after its map) into the staging folder, listed as a transfer up while they come. */
  async #upload(fid: string, map: BlockMap, frames: AsyncIterator<Frame>, peer: string | null): Promise<{ staged: string }> {
    const f = this.#f;
    // Staged as this process's file (its record, when it comes, gives the attributes): an empty one too, which
    // is written as bytes (before, with no mode there, a 500 for good: chaos seed 9214, a file that shrank to
    // nothing while its client read it for the upload).
    const draft = {
      fid, hash: map.hash, size: map.size, kind: 'write', path: '', mode: 0o600, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, mtimeMs: Date.now(),
    } as unknown as RecordDraft;
    // A new file has no name here until its record comes: the transfer names its fid.
    const name = f.db.objectByFid(fid as Fid)?.path ?? `(new file ${fid})`;
    const transfers = this.transfers;
      const source: ContentSource = {
        trusted: false, // a client's map: the staged file is hashed whole before anything takes its hash for its name
        blockMap: async () => map,
        blocks: async function* (_d, _m, indexes) {
          const t = transfers.start('up', name, map.size, indexes.reduce((n, i) => n + blockLength(map, i), 0), peer);
          try {
            for (const want of indexes) {
              const n = await frames.next();
              if (n.done === true || n.value.type !== 'block' || n.value.header.index !== want || n.value.payload === null) {
                throw IntersyncError.PROTOCOL(`upload: expected block ${want}`);
              }
              t.add(n.value.payload.length);
              yield n.value.payload;
            }
          } finally {
            t.end();
          }
        },
      };
    const staged = await f.apply.stage(draft, null, source);
    renameSync(staged.file, f.apply.stagedPath(map.hash));
    this.#staging.staged(map.hash, map.size);
    return { staged: map.hash };
  }

  /** The frames of a `/content` answer: hello, a `content` frame per fid until the byte cap, then `end` (`more` when some were left). */
  async *#contentFrames(fids: readonly string[]): AsyncGenerator<Buffer> {
    const db = this.#f.db;
    yield helloFrame({ node: db.meta.nodeId });
    const rows = db.contentRows(fids);
    let bytes = 0;
    for (const fid of fids) {
      const o = rows.get(fid);
      // At least one answer per request, so a client always progresses.
      if (bytes > 0 && bytes + (o?.size ?? 0) > this.#limits.contentAnswerBytes) {
        yield encodeFrame('end', { more: true });
        return;
      }
      const buf = o === undefined ? null : this.#content.current(o);
      bytes += buf?.length ?? 0;
      yield encodeFrame('content', { fid, hash: o?.hash ?? null, version: o?.version ?? null, ok: buf !== null }, buf);
    }
    yield encodeFrame('end');
  }

  #recall(holder: string, scope: string): void {
    for (const fl of this.#followers) {
      if (fl.node === holder && !fl.recalls.includes(scope)) {
        fl.recalls.push(scope);
        this.#recalls++;
        this.#f.log.info({ scope, holder }, 'token recalled');
        fl.wake.fire();
      }
    }
  }

  /**
   * `hello` (TID, digest, how many entries and bytes), an `entry` frame per
   * object in path order (a directory before what is in it) carrying a small
   * file's content, then `end`. The rows are read at one TID; a file changed
   * since is sent as it is now, with its current hash (a later record says
   * so), and one removed since is sent without content (`ok: false`).
   */
  async #copyStream(reply: FastifyReply, since: Tid): Promise<void> {
    const f = this.#f;
    const db = f.db;
    // The table at one TID, read in pages while this server goes on committing.
    const snap = db.snapshotReader();
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, { 'content-type': 'application/octet-stream', 'cache-control': 'no-store' });
    let open = true;
    raw.on('close', () => {
      open = false;
    });
    // Frames go out in chunks, the first ones small (the client starts writing at once), then about 256 KiB,
    // waiting for the peer when its window is full.
    let parts: Buffer[] = [];
    let size = 0;
    let chunk = 16 << 10;
    const flush = async (): Promise<void> => {
      if (parts.length === 0) return;
      const buf = Buffer.concat(parts);
      parts = [];
      size = 0;
      chunk = Math.min(chunk * 2, 256 << 10);
      await writeLimited(raw, buf, this.#bw);
    };
    const push = async (frame: Buffer): Promise<void> => {
      parts.push(frame);
      size += frame.length;
      if (size >= chunk) await flush();
    };
    try {
      // `next`: the first record the asking node misses (the whole KML for a node without any), where its lag
      // counts from until the copy is in.
      const next = firstAfter(db, since, snap.tid);
      await push(helloFrame({
        node: db.meta.nodeId, uuid: db.meta.uuid, tid: formatTid(snap.tid), digest: formatDigest(snap.digest), entries: snap.entries, bytes: snap.bytes,
        ...(next === null ? {} : { next }),
      }));
      await flush();
      for (const o of entriesOf(pagesOf(snap))) {
        if (!open) break;
        const inline = o.type === 'file' && o.linkOf === null && (o.size ?? 0) > 0 && isInlineSize(o.size ?? 0);
        if (!inline) {
          await push(encodeFrame('entry', { e: o }));
          continue;
        }
        let hash = o.hash;
        let buf = this.#content.current(o);
        if (buf === null) {
          const now = db.contentRows([o.fid]).get(o.fid); // changed or removed since the TID
          buf = now === undefined ? null : this.#content.current(now);
          hash = now?.hash ?? null;
        }
        await push(encodeFrame('entry', { e: o, hash, ok: buf !== null }, buf));
      }
      await flush();
      if (open) raw.end(encodeFrame('end'));
    } catch (e) {
      f.log.warn({ err: (e as Error).message }, 'copy stream ended');
      raw.destroy();
    } finally {
      snap.close();
    }
  }

  async #forward(reply: FastifyReply, since: Tid, follow: boolean, node: string): Promise<void> {
    const f = this.#f;
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, { 'content-type': 'application/octet-stream', 'cache-control': 'no-store' });
    const fl: Follower = { node, wake: new Signal(), recalls: [], cut: () => raw.destroy() };
    this.#followers.add(fl);
    let open = true;
    raw.on('close', () => {
      open = false;
      fl.wake.fire();
    });
    const write = (buf: Buffer): Promise<void> => writeLimited(raw, buf, this.#bw);
    try {
      await streamKml({
        db: f.db, inline: (r) => this.#content.inline(r), write, open: () => open && !this.#closing, wake: fl.wake,
        recalls: () => fl.recalls.shift(), onRecord: () => metrics().forwarded(node, 1),
      }, since, follow);
      if (open) raw.end(encodeFrame('end'));
    } catch (e) {
      f.log.warn({ node, err: (e as Error).message }, 'forward stream ended');
      raw.destroy();
    } finally {
      this.#followers.delete(fl);
      if (follow) metrics().disconnected(node);
    }
  }

  /** The apply path's refusal of a name whose directory is not on disk here (see confine), or null. */
  #parentMissing(d: { path: string; newPath: string | null }): IntersyncError | null {
    try {
      for (const name of d.newPath === null ? [d.path] : [d.path, d.newPath]) confine(this.#f.root, name);
      return null;
    } catch (e) {
      if (e instanceof IntersyncError && e.reason?.kind === 'missing-parent') return e;
      return null; // anything else is the apply path's to say
    }
  }

  /** A directory above the record's names (or a link's target file) that the journal holds and the disk does not (not journaled yet). */
  #ancestorUnjournaled(r: { kind: string; path: string; newPath: string | null; target: string | null }): boolean {
    const gone = (p: string, type: 'dir' | 'file'): boolean =>
      this.#f.db.objectByPath(p)?.type === type && lstatSync(join(this.#f.root, p), { throwIfNoEntry: false }) === undefined;
    // A link's target too, and the target itself: refused as "parent … does not exist here" or "link target … is
    // not a file here" against a journal that still has them, the client took the directory for gone and made
    // it again under a new fid (chaos s45 seed 9287: the server's `mv gamma beta` a moment before c2's link to
    // gamma/c.conflict-…; then "object … does not exist here" and a resync), or sent the link as a file of its own.
    const names = [r.path, ...(r.newPath === null ? [] : [r.newPath]), ...(r.kind === 'link' && r.target !== null ? [r.target] : [])];
    if (r.kind === 'link' && r.target !== null && gone(r.target, 'file')) return true;
    for (const name of names) {
      for (let p = parentOf(name); p !== ''; p = parentOf(p)) {
        if (gone(p, 'dir')) return true;
      }
    }
    return false;
  }

  /** Apply a client's LML batch in order; stop at the first record that cannot apply. */
  async #reintegrate(node: string, body: AsyncIterable<Buffer>): Promise<unknown> {
    const f = this.#f;
    const db = f.db;
    const log = f.log.child({ component: 'reint', peer: node });
    const results: Array<Record<string, unknown>> = [];
    const t0 = performance.now();
    let stopped = false;
    let hello = false;
    let seen: Tid | null = null;
    let frame: Frame;
    for await (frame of readFrames(body)) {
      if (frame.type === 'hello') {
        if (frame.header.uuid !== db.meta.uuid) throw IntersyncError.BAD_REQUEST('reintegration names another fileset');
        hello = true;
        // How far the client had applied this node's records when it read the batch (absent from an older client).
        if (frame.header.seen !== undefined) {
          seen = typeof frame.header.seen === 'string' ? parseTid(frame.header.seen) ?? null : null;
          if (seen === null) throw IntersyncError.BAD_REQUEST(`a reintegration's seen must be a TID, not ${JSON.stringify(frame.header.seen)}`);
        }
        continue;
      }
      if (frame.type === 'end') break;
      if (frame.type !== 'record') throw IntersyncError.PROTOCOL(`unexpected ${frame.type} frame in a reintegration`);
      const sent = parseWireLml(frame.header.r);
      if (sent.origin !== node || !isNodeId(sent.origin)) throw IntersyncError.BAD_REQUEST('a client reintegrates only its own records');
      const creates = sent.kind === 'create' || sent.kind === 'mkdir' || sent.kind === 'symlink' || sent.kind === 'link';
      if (creates && !sent.fid.startsWith(`${node}-`)) throw IntersyncError.BAD_REQUEST(`a client names new objects with its own fids (${node}-…), not ${sent.fid}`);
      // Found by the route fuzzer: a create with a pre-version passed the apply path's check and failed in the commit, a 500.
      if (creates && sent.preVersion !== NO_VERSION) throw IntersyncError.BAD_REQUEST(`a ${sent.kind} has no pre-version (it names ${formatTid(sent.preVersion)})`);
      let d = sent;
      const done = db.kmlByOrigin(d.origin, d.seq);
      if (done !== undefined) {
        results.push({ seq: d.seq.toString(), status: 'accepted', r: recordToWire(done) });
        continue;
      }
      if (stopped) {
        results.push({ seq: d.seq.toString(), status: 'skipped' });
        continue;
      }
      try {
        await f.syncPaths?.(d.newPath === null ? [d.path] : [d.path, d.newPath]);
        // At this node's names of the objects it names (a directory moved here meanwhile takes the new name along).
        let placed = placedHere(db, sent);
        if (placed !== sent) {
          await f.syncPaths?.(placed.newPath === null ? [placed.path] : [placed.path, placed.newPath]);
          placed = placedHere(db, sent); // what capture journaled meanwhile counts
        }
        // A directory on the record's way that the journal holds and the disk no longer does: moved or removed
        // here a moment ago, not journaled yet. Capture journals it first, so the record is placed at the new
        // name, or refused against a journal that says so. Before, the refusal ("parent … does not exist here")
        // came with a last TID that did not hold the move: the client, caught up by it, took the directory for
        // gone, made it again under a new fid, and resynced (chaos seed 9205).
        if (f.settle !== undefined && this.#ancestorUnjournaled(placed)) {
          await f.settle();
          placed = placedHere(db, sent);
        }
        let staged: Awaited<ReturnType<typeof f.apply.stage>> | null;
        for (let attempt = 1; ; attempt++) {
          // Modes, owners and symlink targets as this fileset takes them from a peer: what is applied is what is journaled.
          d = f.apply.localize(placed);
          if (d.path !== sent.path || d.newPath !== sent.newPath) {
            log.info({ seq: d.seq.toString(), kind: d.kind, path: sent.path, newPath: sent.newPath ?? undefined, here: d.path, newHere: d.newPath ?? undefined }, 'placed at this node\'s names of its objects');
          }
          const mode = modeChange(d.kind, sent.mode, d.mode);
          if (mode !== null) log[mode.warn ? 'warn' : 'info']({ seq: d.seq.toString(), path: d.path, mode: sent.mode.toString(8), applied: d.mode.toString(8) }, mode.message);
          staged = f.apply.needsContent(d) ? await f.apply.stage(d, frame.payload, null) : null;
          // Check right before the change, in the same tick as the commit: nothing can slip in between.
          const err = f.apply.check(d) ?? (seen === null ? null : unseenChange(db, d, seen, node)) ?? this.#parentMissing(d);
          if (err === null) break;
          if (staged !== null) rmSync(staged.file, { force: true });
          // A directory on the way the journal holds and the disk lost after the settle above (a local move made in
          // that moment, its event not read yet): capture journals it, and the record is placed again, a few times.
          // Before, the refusal ("parent … does not exist here") went out against a journal that still held the
          // directory: the client took it for gone, made it again under a new fid, and resynced at the server's
          // move of it (chaos s71 seed 9265: the server's `mv gamma/deep epsilon/sub` as c1's gamma/deep/e came).
          const lagging = err.reason?.kind === 'missing-parent' && f.settle !== undefined && this.#ancestorUnjournaled(placed);
          if (!lagging || attempt === PLACE_ATTEMPTS) throw err;
          await sleep(10 * attempt);
          await f.settle!();
          placed = placedHere(db, sent);
        }
        const base = creates ? d.preVersion : (f.apply.baseOf(d) ?? d.preVersion);
        // A setattr names the content as its origin had it; this node's is what the record leaves here, and a
        // directory or symlink has none (an origin astray that took one for a file must not make it one on the
        // clients that restore a missing file from the record: chaos seed 9212).
        const cur = d.kind === 'setattr' ? db.objectByFid(d.fid) : undefined;
        const draft: RecordDraft = cur === undefined ? { ...d, preVersion: base }
          : { ...d, preVersion: base, size: cur.type === 'file' ? cur.size : null, hash: cur.type === 'file' ? cur.hash : null };
        let rec: ReturnType<FilesetDb['commit']>[number] | undefined;
        f.apply.apply(draft, staged, (identity) => {
          rec = db.commit([{ draft, identity, originSeq: d.seq }])[0];
        }, JSON.stringify({ via: 'reint', r: lmlToWire({ ...draft, seq: d.seq }) }));
        f.disk?.ok('reint');
        if ((f.debug & D_REINT) !== 0) log.debug({ seq: d.seq.toString(), tid: formatTid(rec!.tid), kind: d.kind, path: d.path }, 'accepted');
        results.push({ seq: d.seq.toString(), status: 'accepted', r: recordToWire(rec!) });
      } catch (caught) {
        const errno = (caught as NodeJS.ErrnoException).code;
        if (isDiskFull(caught, { local: true })) {
          // No room here: a state of this node, not a conflict. The client sends it again (status `retry`), and
          // nothing after it in this batch was applied.
          const e = IntersyncError.DISK_FULL(`apply ${d.kind} ${d.path}`, caught);
          f.disk?.note('reint', e);
          stopped = true;
          log.warn({ seq: d.seq.toString(), code: e.code, path: d.path, err: e.message }, 'reintegration waits: the disk is full');
          results.push({ seq: d.seq.toString(), status: 'retry', error: toWire(e).error });
          metrics().refused(e.code);
          continue;
        }
        if (!(caught instanceof IntersyncError) && errno === undefined) throw caught;
        // A name this file system cannot hold is the peer's error, not a conflict: the request fails with a 4xx.
        if (errno === 'ENAMETOOLONG' || errno === 'EILSEQ') throw IntersyncError.NAME_REFUSED(d.newPath ?? d.path, errno);
        // An errno from the disk means this record does not fit this node's tree: a conflict, not a crash.
        const e = caught instanceof IntersyncError ? caught : IntersyncError.CONFLICT(d.path, (caught as Error).message);
        stopped = true;
        log.info({ seq: d.seq.toString(), code: e.code, path: d.path, parent: sent.parent ?? undefined, parentHere: sent.parent === undefined || sent.parent === null ? undefined : (db.objectByFid(sent.parent)?.path ?? null), err: e.message }, 'reintegration stopped');
        results.push({ seq: d.seq.toString(), status: e.code === 'NEED_CONTENT' ? 'need-content' : 'conflict', error: toWire(e).error, lml: lmlToWire(d) });
        metrics().refused(e.code);
      }
    }
    if (!hello) throw IntersyncError.PROTOCOL('empty reintegration: no hello frame');
    const tf = performance.now();
    f.apply.flush();
    log.info({ records: results.length, durMs: Math.round(performance.now() - t0), flushMs: Math.round(performance.now() - tf) }, 'reintegration batch');
    return { results, lastTid: formatTid(db.lastTid) };
  }
}

function parseBlockMap(v: unknown): BlockMap {
  const m = v as Partial<BlockMap> | null;
  if (
    m === null || typeof m !== 'object' || typeof m.size !== 'number' || !Number.isSafeInteger(m.size) || m.size < 0 ||
    typeof m.hash !== 'string' || !/^[0-9a-f]{64}$/.test(m.hash) || m.blockSize !== 128 * 1024 || !Array.isArray(m.blocks) ||
    m.blocks.length !== Math.ceil(m.size / m.blockSize) || !m.blocks.every((b) => typeof b === 'string' && /^[0-9a-f]{32}$/.test(b))
  ) {
    throw IntersyncError.BAD_REQUEST('bad block map');
  }
  return m as BlockMap;
}

/**
 * The first record after `since` when the copy at `tid` brings records past it, as a lag field (`next`): the
 * oldest change a node at `since` misses (after a prune, the oldest kept: the status counts from it too).
 */
function firstAfter(db: FilesetDb, since: Tid, tid: Tid): { tid: string; time: number } | null {
  const first = tid > since ? db.readKml(since, 1)[0] : undefined;
  return first === undefined ? null : { tid: formatTid(first.tid), time: first.time };
}

/** A snapshot reader's rows, in path order, a page at a time. */
function* pagesOf(snap: SnapshotReader): Generator<SnapshotRow> {
  for (let page = snap.next(SNAPSHOT_PAGE); page.length > 0; page = snap.next(SNAPSHOT_PAGE)) yield* page;
}

const SNAPSHOT_PAGE = 2_000;

/** Snapshot rows as the entries a client copies: a hard link names the first name of its inode (in path order). */
function* entriesOf(rows: Iterable<SnapshotRow>): Generator<SnapshotEntry> {
  const firstNameOfIno = new Map<string, string>();
  for (const { ino, ...o } of rows) {
    let linkOf: string | null = null;
    if (o.type === 'file' && ino !== null) {
      linkOf = firstNameOfIno.get(ino) ?? null;
      if (linkOf === null) firstNameOfIno.set(ino, o.path);
    }
    yield { ...o, linkOf };
  }
}

/** `blocks`, each counted on `t` as it leaves; `t` ends when they are all sent or the response is dropped. */
async function* tracked(blocks: AsyncIterable<Buffer>, t: TransferHandle): AsyncGenerator<Buffer> {
  try {
    for await (const b of blocks) {
      yield b;
      t.add(b.length);
    }
  } finally {
    t.end();
  }
}
