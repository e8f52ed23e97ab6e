import { relative } from 'node:path';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { formatDigest } from '#core/digest.js';
import { IntersyncError } from '#core/errors.js';
import { isInlineSize } from '#core/format.js';
import { formatTid, NO_VERSION, parseTid, type Tid } from '#core/ids.js';
import type { TransferHandle } from '#core/transfers.js';
import { blockLength } from '#fsio/blocks.js';
import type { FilesetDb, SnapshotReader, SnapshotRow } from '#journal/fileset-db.js';
import type { SnapshotEntry } from './peer-client.js';
import { encodeFrame, helloFrame } from './protocol/frames.js';
import { throttled, writeLimited } from './rate-limit.js';
import { TID_RE, type ServerState } from './server-state.js';

/**
 * A FilesetServer's routes for a client's first copy and its fetches: the snapshot (the object table at one TID),
 * the streamed copy (that table with the content of its small files), the content of many small objects, and a
 * large file's block map and blocks.
 */
export function copyRoutes(app: FastifyInstance, s: ServerState): void {
  const f = s.f;
  const db = f.db;
  const params = s.params;

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
  app.get('/v1/filesets/:uuid/copy', { schema: { params, querystring: copyQuery } }, async (req, reply) => copyStream(s, reply, sinceOf(req)));

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
    return reply.type('application/octet-stream').send(Readable.from(throttled(contentFrames(s, fids), s.bw), { objectMode: true, highWaterMark: 1 }));
  });

  app.get('/v1/filesets/:uuid/blocks', {
    schema: { params, querystring: { type: 'object', required: ['fid'], properties: { fid: { type: 'string', maxLength: 64 } } } },
  }, async (req) => {
    const { fid } = req.query as { fid: string };
    const r = await s.content.blockMap(fid);
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
    const r = await s.content.blockMap(b.fid);
    if (r === null || r.map.hash !== b.hash) throw IntersyncError.CONTENT_GONE(b.hash);
    if (b.indexes.some((i) => i >= r.map.blocks.length)) throw IntersyncError.BAD_REQUEST('block index out of range');
    const t = s.transfers.start('down', relative(s.f.root, r.path), r.map.size, b.indexes.reduce((n, i) => n + blockLength(r.map, i), 0), s.gate.nodeOf(req));
    return reply.type('application/octet-stream').send(Readable.from(tracked(throttled(s.content.blocks(r.path, r.map, b.indexes), s.bw), t), { highWaterMark: 1 }));
  });
}

/** The frames of a `/content` answer: hello, a `content` frame per fid until the byte cap, then `end` (`more` when some were left). */
async function* contentFrames(s: ServerState, fids: readonly string[]): AsyncGenerator<Buffer> {
  const db = s.f.db;
  yield helloFrame({ node: db.meta.nodeId });
  const rows = db.contentRows(fids);
  let bytes = 0;
  for (const fid of fids) {
    const o = rows.get(fid);
    // At least one answer per request, so a client always progresses.
    if (bytes > 0 && bytes + (o?.size ?? 0) > s.limits.contentAnswerBytes) {
      yield encodeFrame('end', { more: true });
      return;
    }
    const buf = o === undefined ? null : s.content.current(o);
    bytes += buf?.length ?? 0;
    yield encodeFrame('content', { fid, hash: o?.hash ?? null, version: o?.version ?? null, ok: buf !== null }, buf);
  }
  yield encodeFrame('end');
}

/**
 * `hello` (TID, digest, how many entries and bytes), an `entry` frame per
 * object in path order (a directory before what is in it) carrying a small
 * file's content, then `end`. The rows are read at one TID; a file changed
 * since is sent as it is now, with its current hash (a later record says
 * so), and one removed since is sent without content (`ok: false`).
 */
async function copyStream(s: ServerState, reply: FastifyReply, since: Tid): Promise<void> {
  const f = s.f;
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
    await writeLimited(raw, buf, s.bw);
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
      let buf = s.content.current(o);
      if (buf === null) {
        const now = db.contentRows([o.fid]).get(o.fid); // changed or removed since the TID
        buf = now === undefined ? null : s.content.current(now);
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

/**
 * The first record after `since` when the copy at `tid` brings records past it, as a lag field (`next`): the
 * oldest change a node at `since` misses (after a prune, the oldest kept: the status counts from it too).
 */
export function firstAfter(db: FilesetDb, since: Tid, tid: Tid): { tid: string; time: number } | null {
  const first = tid > since ? db.readKml(since, 1)[0] : undefined;
  return first === undefined ? null : { tid: formatTid(first.tid), time: first.time };
}

/** A snapshot reader's rows, in path order, a page at a time. */
export function* pagesOf(snap: SnapshotReader): Generator<SnapshotRow> {
  for (let page = snap.next(SNAPSHOT_PAGE); page.length > 0; page = snap.next(SNAPSHOT_PAGE)) yield* page;
}

const SNAPSHOT_PAGE = 2_000;

/** Snapshot rows as the entries a client copies: a hard link names the first name of its inode (in path order). */
export function* entriesOf(rows: Iterable<SnapshotRow>): Generator<SnapshotEntry> {
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
