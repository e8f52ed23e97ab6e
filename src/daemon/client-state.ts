import type { Logger } from 'pino';
import { D_KML } from '#core/debug.js';
import type { Fid } from '#core/ids.js';
import { Mutex, Signal } from '#core/mutex.js';
import type { LmlRecord } from '#core/record.js';
import { ApplyPath, type ContentSource } from '#apply/apply-path.js';
import type { LinkAlignDeps } from '#apply/link-align.js';
import { blockLength } from '#fsio/blocks.js';
import type { FilesetDb } from '#journal/fileset-db.js';
import type { FilesetPaths } from '#journal/layout.js';
import type { HelloInfo, PeerClient } from '#net/peer-client.js';
import type { TokenScopeMode } from '#policy/token-table.js';
import { EchoGuard } from '#fsio/echo-guard.js';
import { IgnoreRules } from '#presto/ignore-rules.js';
import type { Capture } from '#presto/capture.js';
import { WatchCapture } from '#presto/watch-capture.js';
import { ConflictResolver } from '#reint/conflict-resolver.js';
import { parsePolicy } from '#policy/conflict-policy.js';
import { Reintegrator } from '#reint/reintegrator.js';
import { statePaths, type StatePaths } from '#journal/state-dir.js';
import { Transfers } from '#core/transfers.js';
import { clientAttrs } from '#copy/client-attrs.js';
import type { DiskFullState } from '#core/disk-full.js';
import { VersionStore } from '#apply/versions.js';
import { ClientLag } from './client-lag.js';
import type { ClientNodeOptions } from './client-types.js';
import { fileLogs } from './logger.js';
import { StatusPublisher } from './status-file.js';
import { diskFullState } from './disk-state.js';

/** What the wiring calls back into ClientNode for: the status file, and what runs before local changes are sent. */
export interface ClientHooks {
  readonly writeStatus: () => void;
  readonly beforeSend: (lml: readonly LmlRecord[]) => Promise<void>;
}

/**
 * The state of one ClientNode that its parts share (client-node.ts builds it and owns it): the parts the node is
 * wired from, and what the follow loop, the apply of a forwarded record, the catch-up of content behind, status
 * and start/stop read and change. One object, never copied; state that one part alone uses stays in that part.
 */
export class ClientState {
  readonly o: ClientNodeOptions;
  readonly paths: FilesetPaths;
  readonly db: FilesetDb;
  /** The fileset's ignore patterns (.intersyncignore and the config's), shared by capture and the apply path. */
  readonly ignore: IgnoreRules;
  readonly capture: Capture;
  readonly apply: ApplyPath;
  readonly client: PeerClient;
  readonly reint: Reintegrator;
  readonly resolver: ConflictResolver;
  readonly guard = new EchoGuard();
  /** This node's own disk refusing writes for want of space: a state, retried by each step, shown in status. */
  readonly disk: DiskFullState;
  readonly status: StatusPublisher;
  readonly versions: VersionStore | undefined;
  /** A batch on its way to the server and a server record being applied (or a resync) never overlap. */
  readonly exchange = new Mutex();
  readonly log: Logger;
  readonly logFile: string;
  readonly statePaths: StatePaths;
  readonly flushLog: () => void;
  readonly source: ContentSource;
  readonly stale = new Set<string>();
  behindSet: Set<string> | null = null;
  readonly wakeFollow = new Signal();
  readonly startedAt: number;
  hello: HelloInfo | null;
  /** The follower's link state (FollowLink, net/record-follower.ts): the follower writes it, status reads it. */
  connected = false;
  offline = false;
  disconnectedSince: number | null = null;
  /** How far behind the server this node is, as the server counts it (daemon/client-lag.ts). */
  readonly lag = new ClientLag();
  /** Large files moving now (both directions: the reintegrator reports its uploads here). */
  readonly transfers: Transfers;
  lastError: string | null = null;
  copy: { done: boolean; files: number; totalFiles: number; bytes: number; totalBytes: number } | null = null;
  abort = new AbortController();
  stopped = false;
  /** Objects whose pending records could not progress: the next resync rebases them on the server's state. */
  readonly stuckObjects = new Set<Fid>();
  resyncRequested = false;
  applyStuckSince: number | null = null;
  /** Names that left a hard-linked inode for the record being applied: the server's content of each is fetched after it. */
  readonly leftToFetch: Fid[] = [];

  constructor(o: ClientNodeOptions, paths: FilesetPaths, db: FilesetDb, client: PeerClient, hello: HelloInfo | null, hooks: ClientHooks) {
    this.o = o;
    this.paths = paths;
    this.db = db;
    this.client = client;
    this.hello = hello;
    this.startedAt = o.clock.now();
    this.statePaths = statePaths(o.stateDir, db.meta.nodeId, paths.name);
    this.transfers = new Transfers(() => o.clock.now());
    const l = (o.logs ?? fileLogs(o))(paths);
    this.log = l.log.child({ component: 'client' });
    this.logFile = l.file;
    this.flushLog = l.flush;
    this.disk = diskFullState(o.clock, this.log);
    this.status = new StatusPublisher(paths.statusFile, this.log, this.disk);
    ApplyPath.cleanTmp(paths.tmp);
    this.versions = o.versioning === undefined ? undefined : new VersionStore(paths.meta, o.versioning, l.log.child({ component: 'versions' }));
    this.ignore = new IgnoreRules(paths.dir, o.ignore ?? []);
    this.apply = new ApplyPath({
      root: paths.dir, tmpDir: paths.tmp, db, guard: this.guard, log: l.log.child({ component: 'apply' }), attrs: () => clientAttrs(db),
      ...(o.metrics === undefined ? {} : { metrics: o.metrics }),
      keepsIgnored: (rel) => this.ignore.holdsOnlyIgnored(rel),
      ...(this.versions === undefined ? {} : { versions: this.versions }),
    });
    this.versions?.startPruning();
    const transfers = this.transfers;
    this.source = {
      blockMap: (d) => client.blockMap(d.fid),
      // A large file's blocks, listed as a transfer (down) with its progress while they come.
      blocks: async function* (d, map, indexes) {
        const t = transfers.start('down', d.newPath ?? d.path, map.size, indexes.reduce((n, i) => n + blockLength(map, i), 0));
        try {
          for await (const b of client.blocks(d.fid, map, indexes)) {
            t.add(b.length);
            yield b;
          }
        } finally {
          t.end();
        }
      },
    };
    const kmlLog = l.log.child({ component: 'kml' });
    this.capture = new WatchCapture({
      db, root: paths.dir, nodeId: db.meta.nodeId, clock: o.clock, log: l.log, debug: o.debug, guard: this.guard, blockMaps: this.apply.blockMaps,
      ...(o.settleMs === undefined ? {} : { settleMs: o.settleMs }),
      ...(o.rescanMs === undefined ? {} : { rescanMs: o.rescanMs }),
      ...(o.subtreeSettleMs === undefined ? {} : { subtreeSettleMs: o.subtreeSettleMs }),
      ignore: this.ignore,
      journal: (changes) => {
        let recs: LmlRecord[];
        try {
          recs = db.commitLocal(changes);
        } catch (e) {
          throw this.disk.note('journal', e) ?? e;
        }
        this.disk.ok('journal');
        if ((o.debug & D_KML) !== 0) for (const r of recs) kmlLog.debug({ seq: r.seq.toString(), kind: r.kind, path: r.path }, 'lml');
        return recs.length;
      },
      onWarning: (err) => o.onWarning?.(err),
      onStatusChange: () => hooks.writeStatus(),
    });
    this.resolver = new ConflictResolver({
      db, apply: this.apply, guard: this.guard, source: this.source, root: paths.dir, conflictsDir: paths.conflictsDir,
      node: db.meta.nodeId, serverNode: () => this.serverNode(), log: l.log.child({ component: 'conflict' }), clock: o.clock,
      policy: () => parsePolicy(db.getMeta('conflict-policy') ?? this.hello?.conflictPolicy ?? 'keep-both') ?? { name: 'keep-both', discard: false },
      hook: () => db.getMeta('conflict-hook') ?? null,
    });
    this.reint = new Reintegrator({
      db, client, root: paths.dir, node: db.meta.nodeId, serverNode: () => this.serverNode(), log: l.log.child({ component: 'reint' }),
      clock: o.clock, debug: o.debug, scopeMode: () => (this.hello?.tokenScope ?? 'fileset') as TokenScopeMode,
      leaseMs: () => this.hello?.leaseMs ?? 30_000, blockMaps: this.apply.blockMaps, transfers: this.transfers,
      pipeline: () => this.hello?.pipeline === true,
      onStuck: (fid) => {
        if (fid !== null) this.stuckObjects.add(fid);
        this.resyncRequested = true;
        this.abort.abort(); // the follow loop runs the resync
      },
      onNameTaken: (r, serverTid) => this.resolver.setAside(r, serverTid) !== null,
      onRemovalOutdated: (r, current) => this.resolver.restoreRemoved(r, current),
      beforeSend: (lml) => hooks.beforeSend(lml),
      exclusive: (fn) => this.exchange.run(fn),
      disk: this.disk,
    });
  }

  serverNode(): string {
    return this.hello?.node ?? this.db.getMeta('server_node') ?? 'server';
  }
}

/** What apply/link-align.ts needs to group a record's hard links as the server does (own records back, and the apply of others'). */
export function linkAlign(s: ClientState): LinkAlignDeps {
  return { db: s.db, root: s.paths.dir, guard: s.guard, tmpName: () => s.apply.tmpName() };
}
