import type { FastifyInstance, FastifyReply } from 'fastify';
import { IntersyncError } from '#core/errors.js';
import { formatTid, parseTid, type Tid } from '#core/ids.js';
import { Signal } from '#core/mutex.js';
import { NODE_RE } from './identity-gate.js';
import { streamKml } from './kml-stream.js';
import { encodeFrame } from './protocol/frames.js';
import { writeLimited } from './rate-limit.js';
import { TID_RE, type Follower, type ServerState } from './server-state.js';

/**
 * The forwarded record stream of a FilesetServer (`GET /kml`): the records a node missed, then each new one as it
 * commits, with the token recalls for that node (streamKml writes the frames).
 */
export function forwardRoutes(app: FastifyInstance, s: ServerState): void {
  const f = s.f;
  const db = f.db;

  // The forwarded record stream: every record after `since`, then (follow=1) each new one as it commits,
  // token recalls for this node, and a ping every few seconds.
  app.get('/v1/filesets/:uuid/kml', {
    schema: {
      params: s.params,
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
    if (q.node !== undefined) s.gate.actsFor(req, q.node);
    const since = parseTid(q.since);
    if (since === undefined) throw IntersyncError.BAD_REQUEST(`since ${q.since} is out of range`);
    if (since + 1n < db.firstKeptTid && since < db.lastTid) {
      f.log.warn({ node: q.node, since: formatTid(since), first: formatTid(db.firstKeptTid) }, 'peer is past retention: it must resync');
      throw IntersyncError.RESYNC_NEEDED(formatTid(since), formatTid(db.firstKeptTid));
    }
    await forward(s, reply, since, q.follow === '1', q.node ?? s.gate.nodeOf(req) ?? 'anonymous');
  });
}

/** Nodes with an open forwarded stream now. */
export function connectedPeers(followers: ReadonlySet<Follower>): string[] {
  return [...new Set([...followers].map((f) => f.node))].sort();
}

/** Ask `holder` to give back its write token for `scope`, on each of its open forwarded streams. */
export function recall(s: ServerState, holder: string, scope: string): void {
  for (const fl of s.followers) {
    if (fl.node === holder && !fl.recalls.includes(scope)) {
      fl.recalls.push(scope);
      s.recalls++;
      s.f.log.info({ scope, holder }, 'token recalled');
      fl.wake.fire();
    }
  }
}

async function forward(s: ServerState, reply: FastifyReply, since: Tid, follow: boolean, node: string): Promise<void> {
  const f = s.f;
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, { 'content-type': 'application/octet-stream', 'cache-control': 'no-store' });
  const fl: Follower = { node, wake: new Signal(), recalls: [], cut: () => raw.destroy() };
  s.followers.add(fl);
  let open = true;
  raw.on('close', () => {
    open = false;
    fl.wake.fire();
  });
  const write = (buf: Buffer): Promise<void> => writeLimited(raw, buf, s.bw);
  try {
    await streamKml({
      // A record of the follower's own, back with its TID, carries no content: the follower made it, and takes it
      // back without (daemon/client-own.ts ownBack). Before, a deploy written on a client had every file read
      // again here and sent back down.
      db: f.db, inline: (r) => (r.origin === node && r.originSeq !== null ? null : s.content.inline(r)), write, open: () => open && !s.closing, wake: fl.wake,
      recalls: () => fl.recalls.shift(), onRecord: () => s.metrics.forwarded(node, 1),
    }, since, follow);
    if (open) raw.end(encodeFrame('end'));
  } catch (e) {
    f.log.warn({ node, err: (e as Error).message }, 'forward stream ended');
    raw.destroy();
  } finally {
    s.followers.delete(fl);
    if (follow) s.metrics.disconnected(node);
  }
}
