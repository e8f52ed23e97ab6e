import type { FastifyInstance } from 'fastify';
import { formatDigest } from '#core/digest.js';
import { IntersyncError } from '#core/errors.js';
import { PROTOCOL_VERSION } from '#core/format.js';
import { formatTid, parseTid } from '#core/ids.js';
import { Signal } from '#core/mutex.js';
import { NODE_HELLO_BODY, NODE_RE } from './identity-gate.js';
import { connectedPeers, recall } from './forward-routes.js';
import { TID_RE, type ServerState } from './server-state.js';

const MAX_TOKEN_WAIT_MS = 10_000;

/**
 * A FilesetServer's routes for its peers: hello (a node's own credential registers it as a peer), acknowledgements
 * (a node's last_rcvd), write tokens (acquire, waiting while the holder is recalled; release) and status.
 * Enrolment is the identity gate's (identity-gate.ts).
 */
export function peerRoutes(app: FastifyInstance, s: ServerState): void {
  const f = s.f;
  const db = f.db;
  const params = s.params;
  const tokenReleased = new Signal();

  app.post('/v1/hello', {
    schema: { body: NODE_HELLO_BODY },
  }, async (req) => {
    const b = req.body as { node: string; proto: number; replicate?: boolean };
    if (b.proto !== PROTOCOL_VERSION) throw IntersyncError.PROTOCOL(`client speaks protocol ${b.proto}, server ${PROTOCOL_VERSION}`);
    if (b.node === db.meta.nodeId) throw IntersyncError.BAD_REQUEST('the client has the server\'s own node id');
    // Only a node's own credential registers it as a peer; the fileset secret or an invitation just asks.
    const by = s.gate.nodeOf(req);
    if (by !== null) s.gate.actsFor(req, b.node);
    if (by !== null) db.registerPeer(b.node, b.replicate === true, f.clock.now(), req.ip);
    return {
      proto: PROTOCOL_VERSION, fileset: db.meta.fileset, uuid: db.meta.uuid, node: db.meta.nodeId,
      lastTid: formatTid(db.lastTid), digest: formatDigest(db.digest), tokenScope: f.tokenScope, leaseMs: f.leaseMs,
      conflictPolicy: db.getMeta('conflict-policy') ?? 'keep-both', attrs: f.apply.attrs,
      // This server takes a reintegration batch sent while the one before it is answered (reint-routes.ts `after`).
      pipeline: true,
    };
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
    s.gate.actsFor(req, b.node);
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
    s.gate.actsFor(req, b.node);
    if (b.op === 'release') {
      if (s.tokens.release(b.scope, b.node)) tokenReleased.fire();
      return { released: true };
    }
    const deadline = f.clock.monotonic() + (b.waitMs ?? 5000);
    for (;;) {
      const r = s.tokens.acquire(b.scope, b.node, f.clock.now());
      if (r.granted) return { granted: true, scope: b.scope, expires: r.grant.expires, leaseMs: f.leaseMs };
      recall(s, r.holder, b.scope);
      s.metrics.tokenWait();
      const left = deadline - f.clock.monotonic();
      if (left <= 0) throw IntersyncError.TOKEN_BUSY(b.scope, r.holder);
      await tokenReleased.wait(Math.min(left, 250));
    }
  });

  app.get('/v1/filesets/:uuid/status', { schema: { params } }, async (req) => ({
    fileset: db.meta.fileset, uuid: db.meta.uuid, node: db.meta.nodeId, lastTid: formatTid(db.lastTid),
    // A node sees itself only (which other nodes are connected is none of its business); the secret's holder all.
    digest: formatDigest(db.digest), connected: connectedPeers(s.followers).filter((n) => s.gate.nodeOf(req) === null || n === s.gate.nodeOf(req)),
    tokens: s.tokens.grants(f.clock.now()),
  }));
}
