import { parentPort } from 'node:worker_threads';
import { IntersyncError } from '#core/errors.js';
import { readFileSync } from 'node:fs';
import { sha256Hex } from '#core/sha256.js';
import { lstatOrNull } from '#fsio/disk.js';
import { writeNewFile } from './new-file.js';
import { statTypeCode, type FsJob, type HashJob, type HashReply, type StatJob, type StatReply, type WriteJob, type WriteReply } from './fs-thread.js';

/**
 * The file-system thread (see FsThread): creates the new files of a write
 * job with the apply path's own writeNewFile, or lstats the names of a stat
 * job with capture's own lstatOrNull, and answers in the job's order.
 */
parentPort!.on('message', (job: FsJob) => {
  if (job.kind === 'write') parentPort!.postMessage(write(job));
  else {
    const r = job.kind === 'hash' ? hashAll(job) : lstatAll(job);
    parentPort!.postMessage(r, [r.type.buffer, r.ino.buffer, r.ids.buffer, r.size.buffer, r.mtimeMs.buffer, r.mtimeNs.buffer, r.ctimeNs.buffer] as ArrayBuffer[]);
  }
});

function write(job: WriteJob): WriteReply {
  const reply: WriteReply = { kind: 'write', id: job.id, done: [] };
  let at = 0;
  for (let i = 0; i < job.files.length; i++) {
    const f = job.files[i]!;
    const end = job.ends[i]!;
    try {
      const st = writeNewFile(f.abs, f.d, job.data.subarray(at, end));
      reply.done.push({ ino: st.ino, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, racy: false });
    } catch (e) {
      const errno = (e as NodeJS.ErrnoException).code;
      reply.done.push(e instanceof IntersyncError
        ? { failed: true, code: e.code, errno: null, message: e.message }
        : { failed: true, code: null, errno: typeof errno === 'string' ? errno : null, message: (e as Error).message });
    }
    at = end;
  }
  return reply;
}

/** Read and hash each file whole (the caller gives small ones only), then lstat it: see FsThread#hash. */
function hashAll(job: HashJob): HashReply {
  const hashes: Array<string | null> = [];
  for (const p of job.paths) {
    try {
      hashes.push(sha256Hex(readFileSync(p)));
    } catch {
      hashes.push(null); // gone, or not a file any more: the caller looks at the name again its own way
    }
  }
  return { ...lstatAll({ kind: 'lstat', id: job.id, paths: job.paths }), kind: 'hash', hashes };
}

function lstatAll(job: StatJob): StatReply {
  const n = job.paths.length;
  const r: StatReply = {
    kind: 'lstat', id: job.id, type: new Uint8Array(n), ino: new BigUint64Array(n), ids: new Uint32Array(4 * n), size: new Float64Array(n),
    mtimeMs: new Float64Array(n), mtimeNs: new BigInt64Array(n), ctimeNs: new BigInt64Array(n), error: null,
  };
  for (let i = 0; i < n; i++) {
    let st;
    try {
      st = lstatOrNull(job.paths[i]!);
    } catch (e) {
      const errno = (e as NodeJS.ErrnoException).code;
      return { ...r, error: { at: i, errno: typeof errno === 'string' ? errno : null, message: (e as Error).message } };
    }
    if (st === null) continue;
    r.type[i] = statTypeCode(st.type);
    r.ino[i] = BigInt(st.ino);
    r.ids.set([st.mode, st.uid, st.gid, st.nlink], 4 * i);
    r.size[i] = st.size;
    r.mtimeMs[i] = st.mtimeMs;
    r.mtimeNs[i] = st.mtimeNs;
    r.ctimeNs[i] = st.ctimeNs;
  }
  return r;
}
