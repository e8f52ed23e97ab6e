import { setTimeout as sleep } from 'node:timers/promises';
import { parsePolicy } from '#policy/conflict-policy.js';
import { firstCopy as copyFromServer, type CopyKind } from '#copy/copy.js';
import type { AdoptDeps } from './adopt.js';
import type { ClientState } from './client-state.js';

/*
 * A client's copies of the server's state: the first copy, the resync (a copy again, keeping local changes) and
 * what an adoption needs. The names with a # in the comments are the ClientNode methods these functions were.
 */

/** Copy the server's state here (a first copy, or a resync's), its progress in status and shown to the copy observer. */
export async function firstCopy(s: ClientState, kind: CopyKind): Promise<void> {
  s.copy = { done: false, files: 0, totalFiles: 0, bytes: 0, totalBytes: 0 };
  const t0 = s.o.clock.monotonic();
  const shown = s.o.copyObserver;
  shown?.begin(kind);
  const r = await copyFromServer({
    db: s.db, apply: s.apply, client: s.client, source: s.source, root: s.paths.dir,
    serverNode: s.serverNode(), log: s.log, clock: s.o.clock, stuck: new Set(s.stuckObjects),
    onProgress: (p) => {
      s.copy = { done: false, files: p.files, totalFiles: p.totalFiles, bytes: p.bytes, totalBytes: p.totalBytes };
      shown?.progress(p);
    },
    // The copy's TID is what the server has: this node lags by all of it until the copy is in.
    onServerTid: (tid, next) => s.lag.onCopy(tid, next),
  }).finally(() => shown?.end());
  s.stuckObjects.clear();
  s.copy = { done: true, files: r.files, totalFiles: r.files, bytes: r.bytes, totalBytes: r.bytes };
  s.log.info({ tid: r.tid, files: r.files, bytes: r.bytes, skipped: r.skipped, durMs: Math.round(s.o.clock.monotonic() - t0), ms: r.ms }, `${kind} done`);
}

/** What an adoption (daemon/adopt.ts) needs; the conflict policy given at this start comes before the stored one. */
export function adoptDeps(s: ClientState): AdoptDeps {
  const policy = parsePolicy(s.o.conflictPolicy ?? s.db.getMeta('conflict-policy') ?? s.hello?.conflictPolicy ?? 'keep-both') ?? { name: 'keep-both', discard: false };
  return {
    db: s.db, apply: s.apply, client: s.client, root: s.paths.dir, tmpDir: s.paths.tmp, conflictsDir: s.paths.conflictsDir,
    serverNode: s.serverNode(), policy, log: s.log.child({ component: 'adopt' }), clock: s.o.clock,
  };
}

/** Rebuild from a snapshot of the server, keeping local changes (see daemon/resync-protect.ts); counted for status. */
export async function resync(s: ClientState): Promise<void> {
  // What is on disk and not journaled yet becomes a pending change first: a resync keeps pending changes
  // (daemon/resync-protect.ts) and takes anything else for what the server has. Bounded: a tree that never
  // goes quiet still resyncs (resync-protect keeps what differs from the journal beside, too).
  await journalDisk(s);
  await firstCopy(s, 'resync');
  // Counted once done: an attempt cut short (the server away meanwhile) is retried, and is not another resync.
  s.db.setMeta('resyncs', String(Number(s.db.getMeta('resyncs') ?? '0') + 1));
  s.disk.ok('resync');
  s.applyStuckSince = null;
  // What a resync left on disk unjournaled (a local rename it undid, a local version put back beside) is journaled
  // before the reintegrator goes on: until then it still counts as stuck (Reintegrator#status), as it is.
  const walked = await journalDisk(s);
  s.reint.resumeAfterResync();
  if (!walked) s.capture.rescan(); // not watching yet: the walk comes when capture does
}

/**
 * Capture walks the tree and journals what it finds, waited for at most 10 s (a tree that never goes quiet).
 * False when capture is not watching (starting, stopped): nothing was walked.
 */
async function journalDisk(s: ClientState): Promise<boolean> {
  if (s.capture.status().state !== 'watching') return false;
  s.capture.rescan();
  await Promise.race([s.capture.idle(), sleep(10_000, undefined, { ref: false })]);
  return true;
}
