import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { NO_METRICS } from '#core/metrics.js';
import { D_HTTP } from '#core/debug.js';
import { IntersyncError, isDiskFull } from '#core/errors.js';
import { Transfers } from '#core/transfers.js';
import { TokenTable } from '#policy/token-table.js';
import { WireBytes } from './wire-bytes.js';
import { ContentReader } from './content-cache.js';
import { ConnectionGuard, DEFAULT_LIMITS, RateLimitedLog, type EdgeLimits } from './edge-guard.js';
import { UploadStaging } from './upload-staging.js';
import { IdentityGate } from './identity-gate.js';
import { statusOf, toWire } from './protocol/wire-errors.js';
import { JSON_BODY_LIMIT, uuidParams, type ServedFileset, type ServerState } from './server-state.js';
import { peerRoutes } from './peer-routes.js';
import { copyRoutes } from './copy-routes.js';
import { uploadRoutes } from './upload-routes.js';
import { reintRoutes } from './reint-routes.js';
import { connectedPeers, forwardRoutes } from './forward-routes.js';

// Moved to server-state.ts (the route parts share them); re-exported so that the server's importers keep their imports.
export { JSON_BODY_LIMIT, STREAM_BODY_LIMIT, type HttpExtension, type ServedFileset } from './server-state.js';

export interface ServerOptions {
  readonly host: string;
  readonly port: number;
  readonly tls?: { readonly cert: string; readonly key: string };
}

/**
 * The HTTP face of a fileset's server: hello, the forwarded record stream
 * (which also carries token recalls), reintegration, content and block
 * transfer, write tokens, acknowledgements and status. Every request carries
 * the fileset secret as a bearer token; every body is validated here, once.
 * This class assembles the parts (peer-routes, copy-routes, upload-routes,
 * reint-routes, forward-routes, the identity gate's enrolment) on one fastify
 * instance and owns what they share (server-state.ts).
 */
export class FilesetServer {
  readonly #f: ServedFileset;
  readonly #s: ServerState;
  readonly #app: FastifyInstance;
  readonly #guard: ConnectionGuard;
  readonly #refusedLog: RateLimitedLog;
  readonly #sweeper: NodeJS.Timeout;
  readonly #gate: IdentityGate;
  readonly #revokePoll: NodeJS.Timeout;
  /** Large files moving now: blocks clients fetch (down), uploads they send (up). */
  readonly transfers: Transfers;
  /** Bytes read and written on the connections this server accepted. */
  readonly bytes = new WireBytes();

  /** `tls`: the certificate and key in PEM, as read (daemon/server-keys.ts readTlsPair says what is wrong with them). */
  constructor(f: ServedFileset, tls?: { readonly cert: Buffer; readonly key: Buffer }, limits: Partial<EdgeLimits> = {}) {
    this.#f = f;
    this.transfers = new Transfers(() => f.clock.now());
    const lim = { ...DEFAULT_LIMITS, ...limits };
    const staging = new UploadStaging((h) => f.apply.stagedPath(h), f.clock, lim.stagedQuotaBytes, lim.stagedTtlMs);
    this.#refusedLog = new RateLimitedLog(f.clock, lim.refusedLogLines, lim.refusedLogWindowMs);
    this.#sweeper = setInterval(() => staging.sweep(), Math.max(1_000, Math.min(lim.stagedTtlMs / 4, 60_000))).unref();
    // Timeouts of the HTTP server itself: headers and the whole request must arrive in time; the check runs every
    // checkIntervalMs (Node's default of 30 s would let a slow connection live up to 40 s).
    const timeouts = { headersTimeout: lim.headersTimeoutMs, requestTimeout: lim.requestTimeoutMs, connectionsCheckingInterval: lim.checkIntervalMs };
    this.#gate = new IdentityGate(f.identity, f.secret, f.clock, f.log);
    this.#s = {
      f, metrics: f.metrics ?? NO_METRICS, params: uuidParams(), gate: this.#gate, content: new ContentReader(f.root, f.db, f.apply.blockMaps), staging, limits: lim,
      tokens: new TokenTable(f.leaseMs), transfers: this.transfers, followers: new Set(), closing: false, recalls: 0,
      get bw() {
        return f.bwlimit ?? null;
      },
    };
    this.#app = Fastify({
      logger: false,
      bodyLimit: JSON_BODY_LIMIT,
      keepAliveTimeout: 65_000,
      requestTimeout: lim.requestTimeoutMs,
      http: timeouts,
      // Refuse what the schema does not allow instead of quietly dropping or converting it.
      ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false } },
      ...(tls === undefined ? {} : { https: { cert: tls.cert, key: tls.key, ...timeouts } }),
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
    const followers = this.#s.followers;
    f.db.onCommit(() => {
      for (const fl of followers) fl.wake.fire();
    });
    peerRoutes(app, this.#s);
    copyRoutes(app, this.#s);
    uploadRoutes(app, this.#s);
    reintRoutes(app, this.#s);
    forwardRoutes(app, this.#s);
    f.http?.extend(app, { authenticate: (req) => this.#gate.authenticate(req), trust: (req) => this.#guard.trust(req.socket) });
    this.#gate.routes(app, () => ({ uuid: f.db.meta.uuid, fileset: f.db.meta.fileset, nodeId: f.db.meta.nodeId }));
    // A revoked node's open forwarded stream ends within a second (`intersync revoke` writes the identity store).
    this.#revokePoll = setInterval(() => {
      for (const fl of followers) if (fl.node !== 'anonymous' && !this.#gate.allowed(fl.node)) fl.cut();
    }, 1000);
    this.#revokePoll.unref();
  }

  get tokens(): TokenTable {
    return this.#s.tokens;
  }

  /** Token recalls sent so far. */
  get recalls(): number {
    return this.#s.recalls;
  }

  /** Nodes with an open forwarded stream now. */
  connectedPeers(): string[] {
    return connectedPeers(this.#s.followers);
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
    return this.#s.staging.bytes;
  }

  async close(): Promise<void> {
    this.#s.closing = true;
    clearInterval(this.#sweeper);
    clearInterval(this.#revokePoll);
    for (const fl of this.#s.followers) fl.wake.fire();
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
      this.#s.metrics.error(err.code);
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
    this.#s.metrics.error(e.code);
    if (!reply.sent) void reply.code(statusOf(e)).send(toWire(e));
  }
}
