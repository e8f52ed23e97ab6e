import { recoverInFlight } from '#apply/recovery.js';
import type { ClientState } from './client-state.js';
import { ForwardJournaler } from './forward-journaler.js';

/* A client's start-up recovery of the server's records that were in flight (recover (daemon/client-recover.ts)). */

/** Records from the server that were being applied when the process died: journal them if they reached the disk. */
export async function recover(s: ClientState): Promise<void> {
  await recoverInFlight({ db: s.db, apply: s.apply, root: s.paths.dir, log: s.log }, new ForwardJournaler(s, s.serverNode()));
}
