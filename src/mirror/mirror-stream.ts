import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Clock } from '#core/clock.js';
import { formatDigest } from '#core/digest.js';
import { IntersyncError } from '#core/errors.js';
import { formatTid, type Tid } from '#core/ids.js';
import { ApplyPath } from '#apply/apply-path.js';
import { recoverInFlight } from '#apply/recovery.js';
import { firstCopy } from '#copy/copy.js';
import { EchoGuard } from '#fsio/echo-guard.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { findFileset } from '#journal/layout.js';
import { statePaths } from '#journal/state-dir.js';
import type { ClientTrust } from '#daemon/enrolment.js';
import { releasePidFile, takePidFile } from '#journal/pid-file.js';
import { RateLimit } from '#net/rate-limit.js';
import { RecordFollower, type FollowLink } from '#net/record-follower.js';
import { attrPolicyOf } from '#policy/attr-policy.js';
import { LocalMaster } from './local-master.js';
import type { MirrorMaster } from './master.js';
import { RemoteMaster } from './remote-master.js';
import { MirrorJournaler } from './mirror-journaler.js';
import type { HandChange } from './hand-check.js';
import { BEHIND, MirrorSink } from './mirror-sink.js';
import { roleOf, writeSynced } from './pfs.js';

/*
 * mirror-stream: a master's fileset into a slave, continuously (or up to the master's TID now, --once). The parts
 * are the ones every direction uses: the first copy (copy/copy.ts, resumable: an object already here with the
 * snapshot's fid and content is not fetched again), then the record follower (net/record-follower.ts) delivering
 * the master's records after the slave's last_rcvd to a MirrorSink, which applies each through applyRecord with a
 * MirrorJournaler and checks the state digest after it. The master here is a local fileset directory (LocalMaster).
 */

/** Meta keys of a slave (besides `role`, pfs.ts). */
const MASTER = 'mirror_master';
const SOURCE = 'mirror_source';
/** Set when the slave's state was found to differ from the master's: nothing more is applied. */
const DIVERGED = 'mirror_diverged';

/** Where the master is: a local fileset directory, or a daemon (its URL, and how this slave enrols with it). */
export type MasterSpec =
  | { readonly kind: 'local'; readonly dir: string; readonly fileset?: string }
  | { readonly kind: 'remote'; readonly url: string; readonly where: string; readonly uuid?: string; readonly trust: ClientTrust; readonly stateDir: string };

export interface MirrorStreamOptions {
  readonly src: MasterSpec;
  readonly dst: string;
  readonly dstFileset?: string;
  /** Bytes per second of content, or null for no limit. */
  readonly rate: number | null;
  readonly once: boolean;
  /** A line a second while it runs (-v): TID, records/s, bytes/s, lag. */
  readonly report: ((line: MirrorReport) => void) | null;
  readonly clock: Clock;
  readonly log: Logger;
  /** How often the slave's disk is compared with its journal (hand changes undone), besides at start and at the end; 0: only then. */
  readonly handCheckMs: number;
  /** Aborted: stop at the next turn (SIGINT, SIGTERM). */
  readonly signal?: AbortSignal;
}

export interface MirrorReport {
  readonly tid: string;
  readonly masterTid: string;
  readonly recordsPerSec: number;
  readonly bytesPerSec: number;
  readonly lagRecords: number;
  readonly lagSeconds: number;
  readonly verified: number;
  /** During the first copy: how far it is. */
  readonly copy?: { readonly files: number; readonly totalFiles: number; readonly bytes: number; readonly totalBytes: number };
}

export interface MirrorResult {
  readonly master: string;
  readonly slave: string;
  readonly sharedUuid: string;
  readonly syncedTid: string;
  readonly digest: string;
  readonly copied: { files: number; bytes: number } | null;
  readonly records: number;
  readonly verified: number;
  /** Bytes of file content the master handed over in this run (what a resume did not have to send again). */
  readonly bytesSent: number;
  /** Changes made by hand in the slave, found in this run (and undone, unless said). */
  readonly handChanges: readonly HandChange[];
}

export async function mirrorStream(o: MirrorStreamOptions): Promise<MirrorResult> {
  const dstPaths = findFileset(o.dst, o.dstFileset);
  const limit = o.rate === null ? null : new RateLimit(o.rate);
  let db: FilesetDb | null = null;
  let master: MirrorMaster | null = null;
  let pidTaken = false;
  try {
    db = FilesetDb.open(dstPaths.db);
    const role = roleOf(db);
    if (role !== 'slave') throw IntersyncError.NOT_A_SLAVE(dstPaths.dir, role);
    const diverged = db.getMeta(DIVERGED);
    if (diverged !== undefined) {
      throw new IntersyncError('MIRROR_DIVERGED', `the slave stopped for good: ${diverged}`, {
        hint: 'make a new slave (intersync pfs-slave NEWDIR shared-uuid=UUID) and mirror into it (verify --repair is not built yet)',
      });
    }
    if (o.src.kind === 'local') {
      const srcPaths = findFileset(o.src.dir, o.src.fileset);
      if (srcPaths.db === dstPaths.db) throw IntersyncError.BAD_ARGUMENT('SRC and DST are the same fileset', 'mirror a master into a slave made with intersync pfs-slave');
      master = new LocalMaster(srcPaths, limit);
    } else {
      master = new RemoteMaster({
        url: o.src.url, where: o.src.where, ...(o.src.uuid === undefined ? {} : { uuid: o.src.uuid }), trust: o.src.trust,
        statePaths: statePaths(o.src.stateDir, db.meta.nodeId, dstPaths.name), node: db.meta.nodeId, limit, log: o.log,
      });
    }
    const hello = await master.hello();
    if (db.meta.uuid !== hello.uuid) throw IntersyncError.WRONG_MASTER(dstPaths.dir, db.meta.uuid, hello.uuid);
    const holder = takePidFile(dstPaths.pidFile);
    if (holder !== undefined) throw IntersyncError.DAEMON_RUNNING(dstPaths.dir, holder);
    pidTaken = true;
    // Every node of one fileset journals the same TIDs (its server's), so last_rcvd is kept under the first
    // master's node id: a client of the same fileset can take its place as the source.
    const peer = db.getMeta(MASTER) ?? hello.node;
    db.setMeta(MASTER, peer);
    db.setMeta(SOURCE, master.where);
    const log = o.log;
    const slave = db;
    const from = master;
    ApplyPath.cleanTmp(dstPaths.tmp);
    const apply = new ApplyPath({
      root: dstPaths.dir, tmpDir: dstPaths.tmp, db: slave, guard: new EchoGuard(), log: log.child({ component: 'apply' }),
      attrs: () => attrPolicyOf((k) => slave.getMeta(k)),
    });
    await recoverInFlight({ db: slave, apply, root: dstPaths.dir, log }, new MirrorJournaler(slave, peer, o.clock, log));
    let copied: { files: number; bytes: number } | null = null;
    const behind = new Map(Object.entries(JSON.parse(slave.getMeta(BEHIND) ?? '{}') as Record<string, string | null>));
    if (slave.getMeta('copy_done') === undefined) {
      const r = await firstCopy({
        db: slave, apply, client: master, source: master, root: dstPaths.dir, serverNode: peer, log, clock: o.clock,
        behind: (fid, hash) => behind.set(fid, hash),
        onProgress: (p) => o.report?.({
          tid: formatTid(slave.lastTid), masterTid: formatTid(from.lastTid()), recordsPerSec: 0, bytesPerSec: 0,
          lagRecords: Number(from.lastTid() - slave.lastRcvdOf(peer)), lagSeconds: 0, verified: 0,
          copy: { files: p.files, totalFiles: p.totalFiles, bytes: p.bytes, totalBytes: p.totalBytes },
        }),
      });
      copied = { files: r.files, bytes: r.bytes };
      // The copy read each file as it was when read, maybe after its TID: what it placed otherwise than its row
      // says is behind until the master's later record of it (the digest is compared again from then on).
      slave.setMeta(BEHIND, JSON.stringify(Object.fromEntries(behind)));
      writeSynced(dstPaths, slave.lastRcvdOf(peer));
    }
    const until = o.once ? master.lastTid() : null;
    const link: FollowLink = { connected: false, disconnectedSince: null, abort: new AbortController() };
    const sink = new MirrorSink({
      db: slave, apply, paths: dstPaths, master: from, masterNode: peer, clock: o.clock, log, behind, until, cut: () => link.abort.abort(),
    });
    const follower = new RecordFollower({
      source: from, sink, link, hello, clock: o.clock, firstBackoffMs: 200,
      wait: (ms) => sleep(ms, undefined, o.signal === undefined ? {} : { signal: o.signal }).catch(() => undefined),
    });
    const onAbort = (): void => {
      void follower.stop();
    };
    o.signal?.addEventListener('abort', onAbort);
    const reporter = o.report === null ? null : startReports(o, sink, from, slave, peer);
    let checks: NodeJS.Timeout | null = null;
    let checking: Promise<void> = Promise.resolve();
    try {
      await sink.handCheck();
      if (o.handCheckMs > 0) {
        checks = setInterval(() => {
          checking = checking.then(() => sink.handCheck()).catch((e: unknown) => log.error({ err: (e as Error).message }, 'hand-change check failed'));
        }, o.handCheckMs);
      }
      if (until === null || slave.lastRcvdOf(peer) < until) await follower.run();
      if (checks !== null) clearInterval(checks);
      await checking;
      if (sink.failure === null) await sink.handCheck();
    } finally {
      if (checks !== null) clearInterval(checks);
      if (reporter !== null) clearInterval(reporter);
      o.signal?.removeEventListener('abort', onAbort);
    }
    if (sink.failure !== null) {
      slave.setMeta(DIVERGED, sink.failure.message);
      throw sink.failure;
    }
    return {
      master: master.where, slave: dstPaths.dir, sharedUuid: slave.meta.uuid, syncedTid: formatTid(slave.lastRcvdOf(peer)),
      digest: formatDigest(slave.digest), copied, records: sink.counts.records, verified: sink.counts.verified, bytesSent: master.sent,
      handChanges: sink.hand,
    };
  } finally {
    if (pidTaken) releasePidFile(dstPaths.pidFile);
    db?.close();
    await master?.close();
  }
}

/** A report a second (-v): the slave's TID, the rates over the last second, and how far behind the master it is. */
function startReports(o: MirrorStreamOptions, sink: MirrorSink, master: MirrorMaster, slave: FilesetDb, peer: string): NodeJS.Timeout {
  let last = { t: o.clock.monotonic(), records: sink.counts.records, bytes: master.sent };
  let caughtUpAt = o.clock.now();
  return setInterval(() => {
    const now = { t: o.clock.monotonic(), records: sink.counts.records, bytes: master.sent };
    const s = Math.max(0.001, (now.t - last.t) / 1000);
    const at: Tid = slave.lastRcvdOf(peer);
    const masterTid = master.lastTid();
    if (masterTid <= at) caughtUpAt = o.clock.now();
    // Since the master's first record not applied here; a master that cannot say: since the slave was last caught up.
    const since = masterTid > at ? (master.firstAfterTime(at) ?? caughtUpAt) : null;
    o.report?.({
      tid: formatTid(at), masterTid: formatTid(masterTid),
      recordsPerSec: Math.round((now.records - last.records) / s), bytesPerSec: Math.round((now.bytes - last.bytes) / s),
      lagRecords: Number(masterTid > at ? masterTid - at : 0n), lagSeconds: since === null ? 0 : Math.max(0, (o.clock.now() - since) / 1000),
      verified: sink.counts.verified,
    });
    last = now;
  }, 1000);
}
