import { existsSync, rmSync, rmdirSync } from 'node:fs';
import { META_DIR } from '#core/format.js';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { D_KML } from '#core/debug.js';
import { IntersyncError } from '#core/errors.js';
import { formatTid, type Tid } from '#core/ids.js';
import type { KmlRecord } from '#core/record.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { DEFAULT_FILESET, checkBackingDir, filesetPaths, findFileset, listFilesets, type FilesetPaths } from '#journal/layout.js';
import { mkfs } from '#journal/mkfs.js';
import { releasePidFile, takePidFile } from '#journal/pid-file.js';
import { EchoGuard } from '#fsio/echo-guard.js';
import type { WatchFn } from '#presto/dir-watcher.js';
import { IgnoreRules } from '#presto/ignore-rules.js';
import type { Capture } from '#presto/capture.js';
import { WatchCapture } from '#presto/watch-capture.js';
import { SPLIT_SCAN_MIN } from '#presto/scan.js';
import { ApplyPath } from '#apply/apply-path.js';
import { attrPolicyOf } from '#policy/attr-policy.js';
import type { FilesetServer, HttpExtension } from '#net/server.js';
import type { EdgeLimits } from '#net/edge-guard.js';
import { ReintJournaler } from '#net/reint-journaler.js';
import { recoverInFlight } from '#apply/recovery.js';
import type { TokenScopeMode } from '#policy/token-table.js';
import { IdentityDb } from '#journal/identity-db.js';
import { statePaths, type StatePaths } from '#journal/state-dir.js';
import { ensureSecret, ensureSelfSignedCert, readTlsPair } from './server-keys.js';
import { fileLogs } from './logger.js';
import type { NodeOptions } from './node-options.js';
import { StatusPublisher } from './status-file.js';
import type { DiskFullState } from '#core/disk-full.js';
import { diskFullState } from './disk-state.js';
import type { RateLimit } from '#net/rate-limit.js';
import { VersionStore } from '#apply/versions.js';

export interface ListenOptions {
  readonly host: string;
  readonly port: number;
  /** Serve HTTPS: with `tls` when given, else with the self-signed certificate of the state directory. */
  readonly secure?: boolean;
  readonly tls?: { readonly cert: string; readonly key: string };
  readonly tokenScope: TokenScopeMode;
  readonly leaseMs: number;
  /** Records kept for replicators that are away; older ones are pruned and such a replicator resyncs. */
  readonly retainRecords: number;
  /** Bounds at the edge (timeouts, connection caps, staging quota...); defaults in net/edge-guard.ts. */
  readonly limits?: Partial<EdgeLimits>;
  /** More routes on this port: metrics, the dashboard (see net/server.ts HttpExtension). */
  readonly http?: HttpExtension;
  /** The node's bandwidth limit (`--bwlimit`), shared by every content transfer it serves or receives. */
  readonly bwlimit?: RateLimit | null;
}

export interface FilesetNodeOptions extends NodeOptions {
  readonly dir: string;
  /** Serve the fileset over HTTP; null: journal only. */
  readonly listen?: ListenOptions | null;
  readonly fileset?: string;
  /** Where the secret, TLS key and enrolled nodes live, outside the served tree (see journal/state-dir.ts). */
  readonly stateDir: string;
  readonly pollMs?: number;
  readonly watchFn?: WatchFn;
  readonly onRecords?: (recs: KmlRecord[]) => void;
  /** Test hook: awaited before each run of a first journaling is committed (holds the start half-way). */
  readonly beforeJournalRun?: () => Promise<void>;
}

/**
 * One node serving one fileset from its backing directory: the database, the
 * watch capture and the published status. Creates the fileset with defaults
 * when the directory has none, so `intersync DIR` needs no set-up.
 */
export class FilesetNode {
  readonly paths: FilesetPaths;
  readonly db: FilesetDb;
  readonly capture: Capture;
  readonly apply: ApplyPath;
  readonly guard = new EchoGuard();
  /** The fileset's ignore patterns (.intersyncignore and the config's), shared by capture and the apply path. */
  readonly ignore: IgnoreRules;
  /** This node's own disk refusing writes for want of space: a state, retried by each step, shown in status. */
  readonly disk: DiskFullState;
  server: FilesetServer | null = null;
  listenUrl: string | null = null;
  /** The served certificate's SHA-256 fingerprint (null for plain HTTP). */
  fingerprint: string | null = null;
  readonly state: StatePaths;
  /** The fileset secret was moved out of the backing directory at this start. */
  readonly secretMoved: boolean;
  #identity: IdentityDb | null = null;
  readonly #secret: string;
  readonly log: Logger;
  readonly logFile: string;
  readonly created: boolean;
  readonly #flushLog: () => void;
  readonly #opts: FilesetNodeOptions;
  readonly #startedAt: number;
  #statusTimer: NodeJS.Timeout | undefined;
  readonly #status: StatusPublisher;
  readonly #versions: VersionStore | undefined;

  private constructor(o: FilesetNodeOptions, paths: FilesetPaths, db: FilesetDb, created: boolean) {
    this.#opts = o;
    this.paths = paths;
    this.db = db;
    this.created = created;
    this.state = statePaths(o.stateDir, db.meta.nodeId, paths.name);
    const s = ensureSecret(this.state, paths.legacySecret, db.getMeta('state_dir'));
    this.#secret = s.secret;
    this.secretMoved = s.moved;
    db.setMeta('state_dir', resolve(o.stateDir));
    this.#startedAt = o.clock.now();
    const l = (o.logs ?? fileLogs(o))(paths);
    this.log = l.log.child({ component: 'node' });
    this.logFile = l.file;
    this.#flushLog = l.flush;
    const kmlLog = l.log.child({ component: 'kml' });
    this.disk = diskFullState(o.clock, this.log);
    this.#status = new StatusPublisher(paths.statusFile, this.log, this.disk);
    ApplyPath.cleanTmp(paths.tmp);
    this.#versions = o.versioning === undefined ? undefined : new VersionStore(paths.meta, o.versioning, l.log.child({ component: 'versions' }));
    this.ignore = new IgnoreRules(paths.dir, o.ignore ?? []);
    this.apply = new ApplyPath({
      root: paths.dir, tmpDir: paths.tmp, db, guard: this.guard, log: l.log.child({ component: 'apply' }),
      ...(o.metrics === undefined ? {} : { metrics: o.metrics }),
      attrs: () => attrPolicyOf((k) => db.getMeta(k)), keepsIgnored: (rel) => this.ignore.holdsOnlyIgnored(rel),
      ...(this.#versions === undefined ? {} : { versions: this.#versions }),
    });
    this.#versions?.startPruning();
    this.capture = new WatchCapture({
      db, root: paths.dir, nodeId: db.meta.nodeId, clock: o.clock, log: l.log, debug: o.debug, guard: this.guard, blockMaps: this.apply.blockMaps,
      ...(o.settleMs === undefined ? {} : { settleMs: o.settleMs }),
      ...(o.rescanMs === undefined ? {} : { rescanMs: o.rescanMs }),
      ...(o.subtreeSettleMs === undefined ? {} : { subtreeSettleMs: o.subtreeSettleMs }),
      ignore: this.ignore,
      ...(o.pollMs === undefined ? {} : { pollMs: o.pollMs }),
      ...(o.watchFn === undefined ? {} : { watchFn: o.watchFn }),
      journal: (changes) => {
        let recs: KmlRecord[];
        try {
          recs = db.commit(changes);
        } catch (e) {
          throw this.disk.note('journal', e) ?? e;
        }
        this.disk.ok('journal');
        if ((o.debug & D_KML) !== 0) {
          for (const r of recs) kmlLog.debug({ tid: formatTid(r.tid), kind: r.kind, path: r.path, newPath: r.newPath }, 'record');
        }
        o.onRecords?.(recs);
        return recs.length;
      },
      onWarning: (err) => {
        this.#writeStatus();
        o.onWarning?.(err);
      },
      onStatusChange: () => this.#writeStatus(),
      ...(o.beforeJournalRun === undefined ? {} : { beforeRun: o.beforeJournalRun }),
    });
  }

  static async start(o: FilesetNodeOptions): Promise<FilesetNode> {
    const dir = checkBackingDir(o.dir);
    const hadMeta = existsSync(join(dir, META_DIR));
    let paths: FilesetPaths;
    let created = false;
    if (o.fileset === undefined && listFilesets(dir).length === 0) {
      paths = mkfs(dir, { fileset: DEFAULT_FILESET, force: false, clock: o.clock }).paths;
      created = true;
    } else if (o.fileset !== undefined && !existsSync(filesetPaths(dir, o.fileset).db)) {
      paths = mkfs(dir, { fileset: o.fileset, force: false, clock: o.clock }).paths;
      created = true;
    } else {
      paths = findFileset(dir, o.fileset);
    }
    // Refuse a damaged store before touching anything, then take the pid file.
    const db = FilesetDb.open(paths.db);
    if (db.getMeta('role') === 'slave') {
      db.close();
      // Capture would journal the slave's files as this node's changes: the mirror's next record would not apply.
      throw IntersyncError.IS_A_SLAVE(dir, 'serving it would fork the fileset from its master');
    }
    if (db.getMeta('role') === 'client') {
      const url = db.getMeta('server_url') ?? 'its server';
      db.close();
      throw IntersyncError.BAD_ARGUMENT(
        `${dir} is a client of ${url}; serving it would fork the fileset`,
        `run it as a client: intersync --server ${url} ${dir}`,
      );
    }
    const holder = takePidFile(paths.pidFile);
    if (holder !== undefined) {
      db.close();
      throw IntersyncError.DAEMON_RUNNING(dir, holder);
    }
    let made: FilesetNode | undefined;
    const state = statePaths(o.stateDir, db.meta.nodeId, paths.name);
    const hadState = existsSync(state.dir);
    try {
      db.setMeta('role', 'server');
      const node = new FilesetNode(o, paths, db, created);
      made = node;
      if (node.secretMoved) node.log.warn({ from: paths.legacySecret, to: node.state.secret }, 'fileset secret moved out of the served tree');
      node.log.info({ dir, uuid: db.meta.uuid, node: db.meta.nodeId, lastTid: formatTid(db.lastTid) }, 'starting');
      node.log.info({ ...node.apply.attrs }, 'fileset attribute policy');
      await node.#recover();
      // The listener and the status first: a big tree's start-up scan and first journaling take minutes, and the
      // status says how far they are (capture.progress). A peer's change waits for them (capture.syncPaths).
      if (o.listen !== undefined && o.listen !== null) await node.#listen(o.listen);
      node.#writeStatus();
      node.#statusTimer = setInterval(() => {
        node.#prune();
        node.#writeStatus();
      }, 1000);
      node.#statusTimer.unref();
      await node.apply.withThread(db.objectCount() >= SPLIT_SCAN_MIN, (statMany, hashMany) => node.capture.start(statMany, hashMany));
      node.#writeStatus();
      return node;
    } catch (e) {
      // What started before the failure (watches, the listener, the identity store) must not keep the process alive.
      if (made !== undefined) await made.#abandon();
      db.close();
      releasePidFile(paths.pidFile);
      if (created) {
        // A fileset made by this start that never served (a busy port, say) goes again: the next start is a
        // first one, not a restart of a fileset nobody asked for. The files in DIR are not touched.
        rmSync(paths.meta, { recursive: true, force: true });
        if (!hadState) {
          rmSync(state.dir, { recursive: true, force: true });
          try {
            rmdirSync(dirname(state.dir)); // this node's directory, when it holds no other fileset
          } catch {
            // not empty: another fileset of this node lives there
          }
        }
        if (!hadMeta) rmSync(join(dir, META_DIR), { recursive: true, force: true });
      }
      throw e;
    }
  }

  async #abandon(): Promise<void> {
    if (this.#statusTimer !== undefined) clearInterval(this.#statusTimer);
    await this.server?.close().catch(() => undefined);
    this.#identity?.close();
    await this.capture.stop().catch(() => undefined);
  }

  /** Reintegrated changes that were being applied when the process died: journal them if they reached the disk. */
  async #recover(): Promise<void> {
    const x = { db: this.db, apply: this.apply, root: this.paths.dir, log: this.log };
    await recoverInFlight(x, new ReintJournaler(x));
  }

  /**
   * Keep every record until each registered peer (replicators and clients)
   * acknowledged it, and in any case the last `retainRecords`: past that, a
   * peer still away must resync in full, and is told so at its next contact
   * (and named here, in the log).
   */
  #prune(): void {
    const retain = this.#opts.listen?.retainRecords;
    if (retain === undefined) return;
    const last: bigint = this.db.lastTid;
    const floor = last - BigInt(retain); // never keep fewer than `retain` records
    if (floor <= 0n) return;
    const acked = new Map<string, bigint>(this.db.lastRcvd().map((p) => [p.peer, p.tid]));
    let needed = last;
    for (const p of this.db.peers()) {
      const a = acked.get(p.node) ?? 0n;
      if (a < needed) needed = a;
    }
    const below = (needed > floor ? needed : floor) + 1n;
    if (below <= this.db.firstKeptTid) return;
    let n: number;
    try {
      n = this.db.pruneKml(below as Tid);
    } catch (e) {
      // A full disk cannot take the deletion (its pages go to the WAL first): tried again at the next tick, and
      // said once as the node's state. Before, the throw in the status timer ended the daemon.
      if (this.disk.note('prune', e, 'prune the journal') === null) this.log.warn({ err: (e as Error).message }, 'cannot prune the journal; trying again');
      return;
    }
    this.disk.ok('prune');
    const lost = this.db.peers().filter((p) => (acked.get(p.node) ?? 0n) + 1n < below).map((p) => p.node);
    if (lost.length > 0) this.log.warn({ peers: lost, first: formatTid(below) }, 'peers away past retention: they will resync in full');
    this.log.info({ pruned: n, first: formatTid(below) }, 'journal pruned');
  }

  /** Until capture has journaled the events it has (those of a change a moment ago arrive first), at most 2 s. */
  async #settleCapture(): Promise<void> {
    await new Promise((r) => setImmediate(r));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.capture.idle(), new Promise((r) => { timer = setTimeout(r, 2000); })]);
    clearTimeout(timer);
  }

  async #listen(l: ListenOptions): Promise<void> {
    // Loaded here: a client, or a node with --listen none, never loads the HTTP server (fastify) at all.
    const { FilesetServer } = await import('#net/server.js');
    let files = l.tls;
    const selfSigned = l.secure === true && files === undefined;
    if (selfSigned) {
      ensureSelfSignedCert(this.state, `intersync-${this.db.meta.nodeId}`);
      files = { cert: this.state.tlsCert, key: this.state.tlsKey };
    }
    // Read once, here: a file missing, unreadable or not PEM is NO_CREDENTIAL naming it (readTlsPair).
    const tls = files === undefined ? undefined : readTlsPair(files, selfSigned ? this.state : null);
    this.fingerprint = tls?.fingerprint ?? null;
    this.#identity = IdentityDb.open(this.state.identityDb, { create: true });
    this.server = new FilesetServer(
      {
        db: this.db, root: this.paths.dir, apply: this.apply, secret: this.#secret, identity: this.#identity, log: this.log.child({ component: 'server' }),
        ...(this.#opts.metrics === undefined ? {} : { metrics: this.#opts.metrics }),
        clock: this.#opts.clock, debug: this.#opts.debug, tokenScope: l.tokenScope, leaseMs: l.leaseMs,
        syncPaths: (paths) => this.capture.syncPaths(paths), settle: () => this.#settleCapture(), disk: this.disk, ...(l.http === undefined ? {} : { http: l.http }),
        bwlimit: l.bwlimit ?? null,
      },
      tls,
      l.limits,
    );
    try {
      await this.server.listen({ host: l.host, port: l.port });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new IntersyncError('IO', `cannot listen on ${l.host}:${l.port}: ${(e as Error).message}`, {
        hint: code === 'EADDRINUSE' ? 'another process uses this port: pick another with --listen ADDR:PORT' : 'check --listen',
        cause: e,
      });
    }
    const port = this.server.address().port;
    this.listenUrl = `${tls === undefined ? 'http' : 'https'}://${l.host.includes(':') ? `[${l.host}]` : l.host}:${port}`;
    // For `intersync invite`: where clients reach this server (a wildcard address becomes the host name).
    const wild = l.host === '0.0.0.0' || l.host === '::';
    this.db.setMeta('listen_url', wild ? this.listenUrl.replace(/\/\/[^/]+:/, `//${hostname()}:`) : this.listenUrl);
    this.db.setMeta('tls_fingerprint', this.fingerprint ?? '');
    this.log.info({ url: this.listenUrl }, 'listening');
  }

  /** The fileset secret this server checks (read once at start: a file deleted later changes nothing). */
  get secret(): string {
    return this.#secret;
  }

  async stop(): Promise<void> {
    if (this.#statusTimer !== undefined) clearInterval(this.#statusTimer);
    this.#versions?.stop();
    await this.server?.close();
    this.#identity?.close();
    await this.capture.stop();
    this.log.info({ lastTid: formatTid(this.db.lastTid) }, 'stopped');
    this.#writeStatus();
    this.db.close();
    releasePidFile(this.paths.pidFile);
    this.#flushLog();
  }

  #writeStatus(): void {
    this.#status.publish(() => ({
      pid: process.pid, startedAt: this.#startedAt, updatedAt: this.#opts.clock.now(), role: 'server',
      fileset: this.paths.name, uuid: this.db.meta.uuid, nodeId: this.db.meta.nodeId, dir: this.paths.dir,
      logFile: this.logFile, debug: this.#opts.debug, capture: this.capture.status(), diskFull: this.disk.status(),
      server: this.server === null ? null : {
        url: this.listenUrl, connected: this.server.connectedPeers(), tokens: this.server.tokens.grants(this.#opts.clock.now()),
        recalls: this.server.recalls,
        // Large files moving now (blocks clients fetch, uploads they send) and bytes on its connections.
        transfers: this.server.transfers.current(), bytes: this.server.bytes.totals, bwlimit: this.#opts.listen?.bwlimit?.rate ?? null,
      },
    }));
  }
}

