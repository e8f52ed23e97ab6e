import { renameSync } from 'node:fs';
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { IntersyncError } from '#core/errors.js';
import type { Fid } from '#core/ids.js';
import type { RecordDraft } from '#core/record.js';
import type { ContentSource } from '#apply/apply-path.js';
import { blockLength, type BlockMap } from '#fsio/blocks.js';
import { readFrames, type Frame } from './protocol/frames.js';
import { throttled } from './rate-limit.js';
import { STREAM_BODY_LIMIT, type ServerState } from './server-state.js';

/**
 * A FilesetServer's routes for a client's content on its way in: whether the server has a content already, and a
 * large file's upload (the blocks the server lacks), staged until the record naming it arrives.
 */
export function uploadRoutes(app: FastifyInstance, s: ServerState): void {
  const f = s.f;

  // Is this content here already (identical content is never sent twice)?
  app.head('/v1/filesets/:uuid/content/:hash', {
    schema: { params: { type: 'object', properties: { uuid: { type: 'string' }, hash: { type: 'string', pattern: '^[0-9a-f]{64}$' } } } },
  }, async (req, reply) => {
    const { hash } = req.params as { hash: string };
    s.staging.touch(hash);
    return reply.code(s.content.has(hash, f.apply.stagedPath(hash)) ? 200 : 404).send();
  });

  // A client's large file, as the blocks the server lacks; staged until the record naming it arrives.
  app.post('/v1/filesets/:uuid/upload', {
    bodyLimit: STREAM_BODY_LIMIT,
    schema: {
      params: s.params,
      querystring: {
        type: 'object', required: ['fid'],
        properties: { fid: { type: 'string', pattern: '^(root|[0-9a-f]{16}-[0-9a-f]{1,16})$' } },
      },
    },
  }, async (req) => {
    const { fid } = req.query as { fid: string };
    if (!(req.body instanceof Readable)) throw IntersyncError.BAD_REQUEST('send the blocks as frames with content-type application/octet-stream');
    const frames = readFrames(throttled(req.body, s.bw))[Symbol.asyncIterator]();
    await frames.next(); // hello, checked by the decoder
    const first = await frames.next();
    if (first.done === true || first.value.type !== 'content') throw IntersyncError.PROTOCOL('upload starts with its block map');
    const map = parseBlockMap(first.value.header.map);
    let release: () => void;
    try {
      release = s.staging.reserve(map.size);
    } catch (e) {
      // Take the rest of the upload (discarded, a frame at a time) so the peer reads the refusal instead of a reset.
      while ((await frames.next()).done !== true);
      throw e;
    }
    try {
      return await upload(s, fid, map, frames, s.gate.nodeOf(req));
    } finally {
      release();
    }
  });
}

/** Receive an upload's blocks (after its map) into the staging folder, listed as a transfer up while they come. */
async function upload(s: ServerState, fid: string, map: BlockMap, frames: AsyncIterator<Frame>, peer: string | null): Promise<{ staged: string }> {
  const f = s.f;
  // Staged as this process's file (its record, when it comes, gives the attributes): an empty one too, which
  // is written as bytes (before, with no mode there, a 500 for good: chaos seed 9214, a file that shrank to
  // nothing while its client read it for the upload).
  const draft = {
    fid, hash: map.hash, size: map.size, kind: 'write', path: '', mode: 0o600, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, mtimeMs: Date.now(),
  } as unknown as RecordDraft;
  // A new file has no name here until its record comes: the transfer names its fid.
  const name = f.db.objectByFid(fid as Fid)?.path ?? `(new file ${fid})`;
  const transfers = s.transfers;
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
  s.staging.staged(map.hash, map.size);
  return { staged: map.hash };
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
