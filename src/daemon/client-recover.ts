import { join } from 'node:path';
import { formatTid } from '#core/ids.js';
import { reachedDisk } from '#apply/recovery.js';
import { lstatOrNull } from '#fsio/disk.js';
import { parseWireRecord } from '#net/protocol/wire-record.js';
import type { ClientState } from './client-state.js';

/* A client's start-up recovery of the server's records that were in flight (recover (daemon/client-recover.ts)). */

/** Records from the server that were being applied when the process died: journal them if they reached the disk. */
export async function recover(s: ClientState): Promise<void> {
  for (const { id, intent } of s.db.inflight()) {
    try {
      const note = JSON.parse(intent) as { r?: unknown };
      if (s.resolver.recover(note)) {
        s.db.clearInflight(id);
        continue;
      }
      const r = parseWireRecord(note.r);
      const peer = s.serverNode();
      if (r.tid > s.db.lastRcvdOf(peer) && s.apply.check(r) === null && (await reachedDisk(s.paths.dir, r))) {
        const st = lstatOrNull(join(s.paths.dir, r.newPath ?? r.path));
        s.db.commitRemote([{ record: r, identity: st === null ? null : { ino: st.ino, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, racy: true } }], peer, s.o.clock.now());
        s.log.info({ tid: formatTid(r.tid), path: r.path }, 'recovered a change that was in flight');
      }
    } catch (e) {
      s.log.warn({ err: (e as Error).message }, 'dropping an unreadable in-flight note');
    }
    s.db.clearInflight(id);
  }
}
