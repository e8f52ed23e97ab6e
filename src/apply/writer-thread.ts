import { parentPort } from 'node:worker_threads';
import { IntersyncError } from '#core/errors.js';
import { writeNewFile } from './new-file.js';
import type { WriteJob, WriteReply } from './writer.js';

/**
 * The writer thread: creates the new files of a job, in order, with the
 * apply path's own writeNewFile, while the main thread reads the next ones
 * from the network and journals the last ones written.
 */
parentPort!.on('message', (job: WriteJob) => {
  const reply: WriteReply = { id: job.id, done: [] };
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
  parentPort!.postMessage(reply);
});
