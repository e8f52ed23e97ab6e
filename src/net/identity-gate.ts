import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Clock } from '#core/clock.js';
import { IntersyncError } from '#core/errors.js';
import { PROTOCOL_VERSION } from '#core/format.js';
import type { IdentityDb } from '#journal/identity-db.js';

/** Who sent a request: the holder of the fileset secret, an enrolled node, or the holder of an invitation. */
export type Caller =
  | { readonly kind: 'shared' }
  | { readonly kind: 'node'; readonly node: string }
  | { readonly kind: 'invite'; readonly hash: string; readonly replicate: boolean };

/** What the enrolment answer names. */
export interface EnrolInfo {
  readonly uuid: string;
  readonly fileset: string;
  readonly nodeId: string;
}

export const NODE_RE = '^[0-9a-f]{16}$';

/** The body of hello and enrol: a node names itself, its protocol, and whether it replicates. */
export const NODE_HELLO_BODY = {
  type: 'object', required: ['node', 'proto'], additionalProperties: false,
  properties: { node: { type: 'string', pattern: NODE_RE }, proto: { type: 'integer' }, replicate: { type: 'boolean' } },
} as const;
const SEEN_EVERY_MS = 5_000;
/** Routes an invitation opens: enrolment, and hello (to learn which fileset this is). */
const INVITE_ROUTES = new Set(['/v1/enrol', '/v1/hello']);

/**
 * Authentication and per-node identity at the server's edge. The bearer token of a request is the
 * fileset secret (scripts from before per-node credentials), a node's credential (given once at
 * enrolment, bound to its node id, stored hashed), or a one-time invitation (enrolment only).
 * Anything that acts for a node (reintegration, ack, token, the forwarded stream, hello's peer
 * registration) needs that node's own credential. Revocation is read from the identity store on
 * every request, so `intersync revoke` holds at once; open streams are cut by the server's poll.
 */
export class IdentityGate {
  readonly #ids: IdentityDb;
  readonly #secret: Buffer;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #callers = new WeakMap<FastifyRequest, Caller>();
  readonly #seen = new Map<string, number>();

  constructor(ids: IdentityDb, secret: string, clock: Clock, log: Logger) {
    this.#ids = ids;
    this.#secret = Buffer.from(secret);
    this.#clock = clock;
    this.#log = log;
  }

  /** Decide who sent `req`; throws UNAUTHORIZED or REVOKED. */
  authenticate(req: FastifyRequest): Caller {
    const h = req.headers.authorization ?? '';
    const token = h.startsWith('Bearer ') ? h.slice(7) : '';
    const given = Buffer.from(token);
    let caller: Caller | null = null;
    if (given.length === this.#secret.length && timingSafeEqual(given, this.#secret)) caller = { kind: 'shared' };
    else if (token.length > 0 && token.length <= 256) {
      const now = this.#clock.now();
      const k = this.#ids.classify(token, now);
      if (k.kind === 'node') {
        if (k.revoked) throw IntersyncError.REVOKED(k.node);
        caller = { kind: 'node', node: k.node };
        if ((this.#seen.get(k.node) ?? 0) + SEEN_EVERY_MS <= now) {
          this.#seen.set(k.node, now);
          this.#ids.seen(k.node, now, req.ip);
        }
      } else if (k.kind === 'invite') {
        if (!k.usable) throw new IntersyncError('UNAUTHORIZED', k.why ?? 'unusable invitation', { hint: 'get a new one: intersync invite DIR on the server' });
        if (!INVITE_ROUTES.has(req.url.split('?')[0] ?? '')) throw new IntersyncError('UNAUTHORIZED', 'an invitation opens enrolment only', { hint: 'enrol first; the client does this by itself' });
        caller = { kind: 'invite', hash: k.hash, replicate: k.replicate };
      }
    }
    if (caller === null) throw IntersyncError.UNAUTHORIZED();
    this.#callers.set(req, caller);
    return caller;
  }

  caller(req: FastifyRequest): Caller {
    const c = this.#callers.get(req);
    if (c === undefined) throw IntersyncError.UNAUTHORIZED();
    return c;
  }

  /** The request acts for `node`: only that node's own credential may do so. */
  actsFor(req: FastifyRequest, node: string): void {
    const c = this.caller(req);
    if (c.kind === 'node' && c.node === node) return;
    const by = c.kind === 'node' ? c.node : null;
    this.#log.warn({ ip: req.ip, url: req.url.split('?')[0], by, claimed: node }, 'refused request: acts for another node');
    throw IntersyncError.FORBIDDEN(by, node);
  }

  /** The node whose credential sent `req`, or null. */
  nodeOf(req: FastifyRequest): string | null {
    const c = this.caller(req);
    return c.kind === 'node' ? c.node : null;
  }

  /** Enrolled and not revoked (polled for open streams). */
  allowed(node: string): boolean {
    return this.#ids.allowed(node);
  }

  /** `POST /v1/enrol`: the fileset secret or an invitation buys a node its own credential, once. */
  routes(app: FastifyInstance, info: () => EnrolInfo): void {
    app.post('/v1/enrol', {
      schema: { body: NODE_HELLO_BODY },
    }, async (req) => {
      const b = req.body as { node: string; proto: number; replicate?: boolean };
      const c = this.caller(req);
      const i = info();
      if (b.proto !== PROTOCOL_VERSION) throw IntersyncError.PROTOCOL(`client speaks protocol ${b.proto}, server ${PROTOCOL_VERSION}`);
      if (c.kind === 'node') throw IntersyncError.BAD_REQUEST(`node ${c.node} is enrolled already`);
      if (b.node === i.nodeId) throw IntersyncError.BAD_REQUEST('the client has the server\'s own node id');
      const replicate = b.replicate === true || (c.kind === 'invite' && c.replicate);
      const credential = this.#ids.enrol(b.node, {
        replicate, via: c.kind === 'invite' ? 'invite' : 'secret', now: this.#clock.now(), address: req.ip,
        ...(c.kind === 'invite' ? { inviteHash: c.hash } : {}),
      });
      this.#log.info({ node: b.node, via: c.kind, replicate, ip: req.ip }, 'node enrolled');
      return { credential, node: b.node, replicate, uuid: i.uuid, fileset: i.fileset, server: i.nodeId };
    });
  }
}
