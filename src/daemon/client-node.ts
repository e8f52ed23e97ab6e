import { chmodSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, rmdirSync, utimesSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Clock } from '#core/clock.js';
import { D_KML } from '#core/debug.js';
import { Backoff } from '#core/backoff.js';
import { IntersyncError } from '#core/errors.js';
import { META_DIR } from '#core/format.js';
import { formatDigest } from '#core/digest.js';
import { NO_VERSION, ROOT_FID, formatTid, parseTid, type Fid, type Tid } from '#core/ids.js';
import { Mutex, Signal } from '#core/mutex.js';
import type { KmlRecord, LmlRecord, RecordDraft } from '#core/record.js';
import { ApplyPath, type ContentSource, type Staged } from '#apply/apply-path.js';
import { blockLength } from '#fsio/blocks.js';
import { reachedDisk } from '#apply/recovery.js';
import { joinLinks, removedLink, splitApart, type LinkAlignDeps } from '#apply/link-align.js';
import { placedHere } from '#apply/placed.js';
import { identityOf, lstatOrNull, nowNs } from '#fsio/disk.js';
import { join } from 'node:path';
import { FilesetDb, type ObjectRow } from '#journal/fileset-db.js';
import { isUnder, parentOf } from '#core/paths.js';
import { checkBackingDir, findFileset, listFilesets, type FilesetPaths } from '#journal/layout.js';
import { ensureNodeId, mkfs } from '#journal/mkfs.js';
import { releasePidFile, takePidFile } from '#journal/pid-file.js';
import { PeerClient, type HelloInfo } from '#net/peer-client.js';
import type { RateLimit } from '#net/rate-limit.js';
import { parseWireRecord, recordToWire } from '#net/protocol/wire-record.js';
import { parseNext, parseWaiting } from '#net/protocol/lag-fields.js';
import type { TokenScopeMode } from '#policy/token-table.js';
import { EchoGuard } from '#fsio/echo-guard.js';
import { IgnoreRules } from '#presto/ignore-rules.js';
import type { Capture } from '#presto/capture.js';
import { WatchCapture } from '#presto/watch-capture.js';
import { SPLIT_SCAN_MIN } from '#presto/scan.js';
import { ConflictResolver, type Redo } from '#reint/conflict-resolver.js';
import { conflictName } from '#core/conflict-name.js';
import { parsePolicy } from '#policy/conflict-policy.js';
import { Reintegrator } from '#reint/reintegrator.js';
import { localNamesOf, renamesOver, serverRenames } from '#reint/local-names.js';
import { statePaths, type StatePaths } from '#journal/state-dir.js';
import type { Waiting } from '#journal/in-flight.js';
import { Transfers, type Transfer } from '#core/transfers.js';
import { firstCopy, type CopyKind, type CopyObserver } from '#copy/copy.js';
import { adopt, adoptionPending, finishAdoption, noteAdoption, type AdoptDeps } from './adopt.js';
import type { AdoptSummary } from './adopt-plan.js';
import { ClientLag } from './client-lag.js';
import { ensureCredential, initialBearer, pinOf, requireCredential, type ClientTrust } from './enrolment.js';
import { clientAttrs, learnServerAttrs, refusedFids, skipRefused, stricterThanServer } from '#copy/client-attrs.js';
import { modeChange, type AttrSetting } from '#policy/attr-policy.js';
import { chooseLogDir, createLogger } from './logger.js';
import { StatusPublisher } from './status-file.js';
import type { DiskFullState } from '#core/disk-full.js';
import { diskFullState } from './disk-state.js';
import { VersionStore, type VersioningSettings } from '#apply/versions.js';

export interface ClientNodeOptions {
  readonly dir: string;
  readonly server: string;
  /** How to enrol when no credential is kept yet (fileset secret or invitation), and the pinned certificate. */
  readonly trust: ClientTrust;
  /** The fileset uuid the join token names: the server must serve that one. */
  readonly uuid?: string;
  /** Where this node's credential and pin live, outside the served tree. */
  readonly stateDir: string;
  readonly ca?: string;
  readonly replicate: boolean;
  readonly debug: number;
  readonly logDir?: string;
  readonly settleMs?: number;
  /** How often the whole tree is walked for what capture missed (rescan-interval-s); never when absent or 0. */
  readonly rescanMs?: number;
  /** Keep what the server's records overwrite or delete (apply/versions.ts); none kept when absent. */
  readonly versioning?: VersioningSettings;
  /** Quiet times of subtrees, path -> ms (subtree-settle-ms). */
  readonly subtreeSettleMs?: Readonly<Record<string, number>>;
  /** Ignore patterns of this node (the config's `ignore`), besides the fileset's .intersyncignore. */
  readonly ignore?: readonly string[];
  readonly clock: Clock;
  /** Shown a copy's progress (the first copy, and each resync's). */
  readonly copyObserver?: CopyObserver;
  readonly onWarning?: (err: IntersyncError) => void;
  /**
   * A failure the node cannot get past by waiting (its credential is gone): the follow loop has stopped,
   * and whoever runs the node stops it and exits. Without it the node only logs the failure.
   */
  readonly onFatal?: (err: IntersyncError) => void;
  /** This client's own attribute settings, stored at start (`intersync config` changes them later). */
  readonly settings?: Readonly<Partial<Record<AttrSetting, boolean>>>;
  /**
   * Before its first copy the node cannot run without the server: it waits for it, retrying with backoff,
   * told through `onWaiting`, and gives up after this many ms (undefined: it waits as long as it takes).
   */
  readonly connectTimeoutMs?: number;
  readonly onWaiting?: (err: IntersyncError, waitMs: number) => void;
  /** The node's bandwidth limit (`--bwlimit`): every content transfer to and from the server takes from it. */
  readonly bwlimit?: RateLimit | null;
  /** The conflict policy given at this start (flag or file), for an adoption before it is stored. */
  readonly conflictPolicy?: string;
  /** Told what an adoption (a first start in a populated directory) decided. */
  readonly onAdopted?: (s: AdoptSummary) => void;
}

export interface ClientStatus {
  readonly connected: boolean;
  /** Disconnected on purpose (intersync disconnect). */
  readonly offline: boolean;
  /** Wall-clock ms since when the server has been unreachable (or offline), null while connected. */
  readonly disconnectedSince: number | null;
  readonly server: string;
  readonly serverNode: string | null;
  readonly serverTid: string | null;
  readonly lastRcvd: string;
  /** Records of the server's KML after this node's last_rcvd, as far as it knows (null: not known yet). */
  readonly lagRecords: number | null;
  /**
   * When the oldest of them was journaled (epoch ms; null when none, or not known yet): the server's
   * status shows the same for this node (journal/in-flight.ts has the one definition).
   */
  readonly lagSince: number | null;
  /** Seconds since then (0 when caught up; null when records are missing whose time is not known yet). */
  readonly lagSeconds: number | null;
  /**
   * What the server still has for this node: records, and the files with new content and their bytes as
   * the server counted them when the stream opened (or the copy's totals), less what was applied since.
   */
  readonly waitingDown: Waiting;
  /** Large files moving now, with their progress (small ones travel inline with their record). */
  readonly transfers: readonly Transfer[];
  /** Bytes read and written on this node's connections to the server since start. */
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** The bandwidth limit in bytes per second (null: none). */
  readonly bwlimit: number | null;
  readonly stale: number;
  readonly conflicts: number;
  readonly copy: { readonly done: boolean; readonly files: number; readonly totalFiles: number; readonly bytes: number; readonly totalBytes: number } | null;
  readonly lastError: string | null;
  /** Full resyncs from a snapshot of the server, over the fileset's life here (kept in meta). */
  readonly resyncs: number;
  /**
   * Wall-clock ms since when this client has been unable to progress: a server record that does not apply
   * here, or local changes the server refuses on every try. Null while it progresses.
   */
  readonly stuckSince: number | null;
}

/**
 * A client (cache manager, or a replicator with --replicate): its fileset is a
 * copy of the server's. Local changes are captured into the LML and
 * reintegrated at once; the server's records arrive on the forwarded stream
 * and go through the apply path; both sides share the fileset's uuid.
 */
export class ClientNode {
  readonly paths: FilesetPaths;
  readonly db: FilesetDb;
  /** The fileset's ignore patterns (.intersyncignore and the config's), shared by capture and the apply path. */
  readonly ignore: IgnoreRules;
  readonly capture: Capture;
  readonly apply: ApplyPath;
  readonly client: PeerClient;
  readonly reint: Reintegrator;
  readonly #resolver: ConflictResolver;
  readonly guard = new EchoGuard();
  /** This node's own disk refusing writes for want of space: a state, retried by each step, shown in status. */
  readonly disk: DiskFullState;
  readonly #status: StatusPublisher;
  readonly #versions: VersionStore | undefined;
  /** A batch on its way to the server and a server record being applied (or a resync) never overlap. */
  readonly #exchange = new Mutex();
  readonly log: Logger;
  readonly logFile: string;
  readonly #o: ClientNodeOptions;
  readonly #state: StatePaths;
  readonly #flushLog: () => void;
  readonly #source: ContentSource;
  readonly #stale = new Set<string>();
  #behindSet: Set<string> | null = null;
  readonly #wakeFollow = new Signal();
  readonly #startedAt: number;
  #hello: HelloInfo | null;
  #connected = false;
  #offline = false;
  #disconnectedSince: number | null = null;
  #offlineTimer: NodeJS.Timeout | undefined;
  /** How far behind the server this node is, as the server counts it (daemon/client-lag.ts). */
  readonly #lag = new ClientLag();
  /** Large files moving now (both directions: the reintegrator reports its uploads here). */
  readonly transfers: Transfers;
  #lastError: string | null = null;
  #copy: { done: boolean; files: number; totalFiles: number; bytes: number; totalBytes: number } | null = null;
  #abort = new AbortController();
  #stopped = false;
  #loops: Promise<unknown>[] = [];
  #statusTimer: NodeJS.Timeout | undefined;
  #ackTimer: NodeJS.Timeout | undefined;
  #ackDue: number | undefined;
  #acked: Tid = NO_VERSION;
  #stuck: { tid: Tid; n: number } = { tid: NO_VERSION, n: 0 };
  /** Objects whose pending records could not progress: the next resync rebases them on the server's state. */
  readonly #stuckObjects = new Set<Fid>();
  #resyncRequested = false;
  #applyStuckSince: number | null = null;

  private constructor(o: ClientNodeOptions, paths: FilesetPaths, db: FilesetDb, client: PeerClient, hello: HelloInfo | null) {
    this.#o = o;
    this.paths = paths;
    this.db = db;
    this.client = client;
    this.#hello = hello;
    this.#startedAt = o.clock.now();
    this.#state = statePaths(o.stateDir, db.meta.nodeId, paths.name);
    this.transfers = new Transfers(() => o.clock.now());
    const l = createLogger(chooseLogDir(o.logDir, paths.logDir), paths, o.debug);
    this.log = l.log.child({ component: 'client' });
    this.logFile = l.file;
    this.#flushLog = l.flush;
    this.disk = diskFullState(o.clock, this.log);
    this.#status = new StatusPublisher(paths.statusFile, this.log, this.disk);
    ApplyPath.cleanTmp(paths.tmp);
    this.#versions = o.versioning === undefined ? undefined : new VersionStore(paths.meta, o.versioning, l.log.child({ component: 'versions' }));
    this.ignore = new IgnoreRules(paths.dir, o.ignore ?? []);
    this.apply = new ApplyPath({
      root: paths.dir, tmpDir: paths.tmp, db, guard: this.guard, log: l.log.child({ component: 'apply' }), attrs: () => clientAttrs(db),
      keepsIgnored: (rel) => this.ignore.holdsOnlyIgnored(rel),
      ...(this.#versions === undefined ? {} : { versions: this.#versions }),
    });
    this.#versions?.startPruning();
    const transfers = this.transfers;
    this.#source = {
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
      onStatusChange: () => this.#writeStatus(),
    });
    this.#resolver = new ConflictResolver({
      db, apply: this.apply, guard: this.guard, source: this.#source, root: paths.dir, conflictsDir: paths.conflictsDir,
      node: db.meta.nodeId, serverNode: () => this.#serverNode(), log: l.log.child({ component: 'conflict' }), clock: o.clock,
      policy: () => parsePolicy(db.getMeta('conflict-policy') ?? this.#hello?.conflictPolicy ?? 'keep-both') ?? { name: 'keep-both', discard: false },
      hook: () => db.getMeta('conflict-hook') ?? null,
    });
    this.reint = new Reintegrator({
      db, client, root: paths.dir, node: db.meta.nodeId, serverNode: () => this.#serverNode(), log: l.log.child({ component: 'reint' }),
      clock: o.clock, debug: o.debug, scopeMode: () => (this.#hello?.tokenScope ?? 'fileset') as TokenScopeMode,
      leaseMs: () => this.#hello?.leaseMs ?? 30_000, blockMaps: this.apply.blockMaps, transfers: this.transfers,
      onStuck: (fid) => {
        if (fid !== null) this.#stuckObjects.add(fid);
        this.#resyncRequested = true;
        this.#abort.abort(); // the follow loop runs the resync
      },
      onNameTaken: (r, serverTid) => this.#resolver.setAside(r, serverTid) !== null,
      onRemovalOutdated: (r, current) => this.#resolver.restoreRemoved(r, current),
      beforeSend: (lml) => this.#keepServerContent(lml),
      exclusive: (fn) => this.#exchange.run(fn),
      disk: this.disk,
    });
  }

  static async start(o: ClientNodeOptions): Promise<ClientNode> {
    const dir = checkBackingDir(o.dir);
    const existing = listFilesets(dir);
    let paths: FilesetPaths;
    let client: PeerClient;
    let hello: HelloInfo | null;
    let populated = false;
    if (existing.length === 0) {
      // First contact: the server says which fileset this is. A directory that holds files already is
      // adopted: compared with the server's snapshot before the first copy (daemon/adopt.ts).
      populated = readdirSync(dir).some((n) => n !== META_DIR);
      client = ClientNode.#peer(o, null);
      const hadMeta = existsSync(join(dir, META_DIR));
      const nodeId = ensureNodeId(dir);
      let probe: HelloInfo;
      try {
        probe = await ClientNode.#firstContact(o, () => client.hello(nodeId, o.replicate)); // answered, not registered: no credential yet
      } catch (e) {
        if (!hadMeta) rmSync(join(dir, META_DIR), { recursive: true, force: true }); // a failed first start leaves DIR as it was
        await client.close();
        throw e;
      }
      if (o.uuid !== undefined && probe.uuid !== o.uuid) throw IntersyncError.WRONG_FILESET(dir, o.uuid, probe.uuid);
      paths = mkfs(dir, { fileset: probe.fileset, force: false, clock: o.clock, uuid: probe.uuid }).paths;
    } else {
      paths = findFileset(dir);
      const sp = statePaths(o.stateDir, ensureNodeId(dir), paths.name);
      requireCredential(sp, o.trust); // before anything: the server may be away, and the node would run on unable to join it
      client = ClientNode.#peer(o, sp);
    }
    const db = FilesetDb.open(paths.db);
    client.uuid = db.meta.uuid;
    const holder = takePidFile(paths.pidFile);
    if (holder !== undefined) {
      db.close();
      throw IntersyncError.DAEMON_RUNNING(dir, holder);
    }
    try {
      noteAdoption(db, paths.dir, { populated, madeNow: existing.length === 0 });
      try {
        if (existsSync(paths.offlineFile) && db.getMeta('copy_done') !== undefined) throw IntersyncError.PEER_UNREACHABLE(client.url, new Error('disconnected on request'));
        const contact = async (): Promise<HelloInfo> => {
          await ensureCredential(client, statePaths(o.stateDir, db.meta.nodeId, paths.name), db.meta.nodeId, o.replicate, o.trust);
          return client.hello(db.meta.nodeId, o.replicate); // with the credential: registered as a peer
        };
        // Before the first copy is done the node has nothing to run on: it waits for the server.
        hello = db.getMeta('copy_done') === undefined ? await ClientNode.#firstContact(o, contact) : await contact();
        if (hello.uuid !== db.meta.uuid) throw IntersyncError.WRONG_FILESET(dir, db.meta.uuid, hello.uuid);
        db.setMeta('server_node', hello.node);
      } catch (e) {
        if (!(e instanceof IntersyncError) || e.code !== 'PEER_UNREACHABLE' || db.getMeta('copy_done') === undefined) throw e;
        hello = null; // known fileset, server away: start anyway and keep trying
      }
      db.setMeta('role', 'client');
      for (const [k, v] of Object.entries(o.settings ?? {})) db.setMeta(k, String(v));
      db.setMeta('server_url', client.url);
      const node = new ClientNode(o, paths, db, client, hello);
      node.log.info({ dir, server: client.url, uuid: db.meta.uuid, node: db.meta.nodeId }, 'starting client');
      if (hello !== null) learnServerAttrs(db, hello.attrs, node.log);
      await node.#recover();
      // The first copy runs before capture starts: the start-up scan that follows it journals whatever was
      // changed here meanwhile, so nothing made during the copy is lost, and nothing the copy wrote echoes.
      // The file-system thread writes a first copy's files, then shares the lstats of a large tree's scan.
      const copying = db.getMeta('copy_done') === undefined;
      await node.apply.withThread(copying || db.objectCount() >= SPLIT_SCAN_MIN, async (statMany) => {
        const adopting = adoptionPending(db) ? node.#adoptDeps() : null;
        let adopted: AdoptSummary | null = null;
        if (copying && adopting !== null) adopted = await adopt(adopting);
        if (copying) await node.#firstCopy('first copy');
        if (adopting !== null) {
          finishAdoption(adopting, adopted);
          if (adopted !== null) o.onAdopted?.(adopted);
        }
        await node.capture.start(statMany);
      });
      node.#checkOffline();
      node.#offlineTimer = setInterval(() => node.#checkOffline(), 200);
      node.#offlineTimer.unref();
      node.#loops.push(node.#followLoop(), node.reint.run());
      node.#writeStatus();
      node.#statusTimer = setInterval(() => node.#writeStatus(), 1000);
      node.#statusTimer.unref();
      return node;
    } catch (e) {
      db.close();
      releasePidFile(paths.pidFile);
      await client.close();
      throw e;
    }
  }

  /**
   * A first start waits for its server rather than exit (a farm's nodes start in any order): `step` is tried
   * again with backoff while the server cannot be reached, until `connectTimeoutMs`.
   */
  static async #firstContact<T>(o: ClientNodeOptions, step: () => Promise<T>): Promise<T> {
    const backoff = new Backoff(500);
    const giveUpAt = o.connectTimeoutMs === undefined ? Infinity : o.clock.monotonic() + o.connectTimeoutMs;
    for (;;) {
      try {
        return await step();
      } catch (e) {
        if (!(e instanceof IntersyncError) || e.code !== 'PEER_UNREACHABLE' || untrustedCertificate(e)) throw e;
        const left = giveUpAt - o.clock.monotonic();
        if (left <= 0) throw IntersyncError.NO_ANSWER(o.server, (o.connectTimeoutMs ?? 0) / 1000, e);
        const wait = Math.min(backoff.next(), left);
        o.onWaiting?.(e, wait);
        await sleep(wait);
      }
    }
  }

  static #peer(o: ClientNodeOptions, sp: StatePaths | null): PeerClient {
    const pin = pinOf(sp, o.trust);
    return new PeerClient(o.server, initialBearer(sp, o.trust), { ...(o.ca === undefined ? {} : { ca: o.ca }), ...(pin === undefined ? {} : { pin }), bwlimit: o.bwlimit ?? null });
  }

  get created(): boolean {
    return this.#copy !== null;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort.abort();
    this.reint.stop();
    if (this.#statusTimer !== undefined) clearInterval(this.#statusTimer);
    if (this.#offlineTimer !== undefined) clearInterval(this.#offlineTimer);
    if (this.#ackTimer !== undefined) clearTimeout(this.#ackTimer);
    this.#versions?.stop();
    await this.capture.stop();
    await Promise.allSettled(this.#loops);
    this.#writeStatus();
    this.log.info({ lastRcvd: formatTid(this.db.lastRcvdOf(this.#serverNode())) }, 'stopped');
    this.db.close();
    releasePidFile(this.paths.pidFile);
    await this.client.close();
    this.#flushLog();
  }

  status(): ClientStatus {
    const lastRcvd = this.db.lastRcvdOf(this.#serverNode());
    const lag = this.#lag.view(lastRcvd, this.#o.clock.now(), this.#copy);
    const bytes = this.client.bytes.totals;
    return {
      connected: this.#connected, offline: this.#offline, disconnectedSince: this.#connected ? null : this.#disconnectedSince, server: this.client.url, serverNode: this.#hello?.node ?? this.db.getMeta('server_node') ?? null,
      serverTid: lag.serverTid === null ? null : formatTid(lag.serverTid), lastRcvd: formatTid(lastRcvd),
      lagRecords: lag.lagRecords, lagSince: lag.lagSince, lagSeconds: lag.lagSeconds, waitingDown: lag.waitingDown,
      transfers: [...this.transfers.current()], bytesIn: bytes.in, bytesOut: bytes.out, bwlimit: this.client.bwlimit?.rate ?? null,
      stale: this.#stale.size, conflicts: this.#resolver.count, copy: this.#copy, lastError: this.#lastError ?? this.reint.status().lastError,
      resyncs: Number(this.db.getMeta('resyncs') ?? '0'), stuckSince: earliest(this.#applyStuckSince, this.reint.status().stuckSince),
    };
  }

  /** Follow `intersync disconnect` / `reconnect`: the flag file is the switch. */
  #checkOffline(): void {
    const offline = existsSync(this.paths.offlineFile);
    if (offline === this.#offline) return;
    this.#offline = offline;
    this.reint.setOffline(offline);
    if (offline) {
      this.log.info('disconnected on request');
      this.#disconnectedSince ??= this.#o.clock.now();
      this.#abort.abort();
    } else {
      this.log.info('reconnecting on request');
      this.reint.holdForStream(); // the server's records first (the reconnection sequence)
    }
    this.#wakeFollow.fire();
    this.#writeStatus();
  }

  /** Records from the server that were being applied when the process died: journal them if they reached the disk. */
  async #recover(): Promise<void> {
    for (const { id, intent } of this.db.inflight()) {
      try {
        const note = JSON.parse(intent) as { r?: unknown };
        if (this.#resolver.recover(note)) {
          this.db.clearInflight(id);
          continue;
        }
        const r = parseWireRecord(note.r);
        const peer = this.#serverNode();
        if (r.tid > this.db.lastRcvdOf(peer) && this.apply.check(r) === null && (await reachedDisk(this.paths.dir, r))) {
          const st = lstatOrNull(join(this.paths.dir, r.newPath ?? r.path));
          this.db.commitRemote([{ record: r, identity: st === null ? null : { ino: st.ino, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, racy: true } }], peer, this.#o.clock.now());
          this.log.info({ tid: formatTid(r.tid), path: r.path }, 'recovered a change that was in flight');
        }
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, 'dropping an unreadable in-flight note');
      }
      this.db.clearInflight(id);
    }
  }

  #serverNode(): string {
    return this.#hello?.node ?? this.db.getMeta('server_node') ?? 'server';
  }

  async #firstCopy(kind: CopyKind): Promise<void> {
    this.#copy = { done: false, files: 0, totalFiles: 0, bytes: 0, totalBytes: 0 };
    const t0 = this.#o.clock.monotonic();
    const shown = this.#o.copyObserver;
    shown?.begin(kind);
    const r = await firstCopy({
      db: this.db, apply: this.apply, client: this.client, source: this.#source, root: this.paths.dir,
      serverNode: this.#serverNode(), log: this.log, clock: this.#o.clock, stuck: new Set(this.#stuckObjects),
      onProgress: (p) => {
        this.#copy = { done: false, files: p.files, totalFiles: p.totalFiles, bytes: p.bytes, totalBytes: p.totalBytes };
        shown?.progress(p);
      },
      // The copy's TID is what the server has: this node lags by all of it until the copy is in.
      onServerTid: (tid, next) => this.#lag.onCopy(tid, next),
    }).finally(() => shown?.end());
    this.#stuckObjects.clear();
    this.#copy = { done: true, files: r.files, totalFiles: r.files, bytes: r.bytes, totalBytes: r.bytes };
    this.log.info({ tid: r.tid, files: r.files, bytes: r.bytes, skipped: r.skipped, durMs: Math.round(this.#o.clock.monotonic() - t0), ms: r.ms }, `${kind} done`);
  }

  #adoptDeps(): AdoptDeps {
    const policy = parsePolicy(this.#o.conflictPolicy ?? this.db.getMeta('conflict-policy') ?? this.#hello?.conflictPolicy ?? 'keep-both') ?? { name: 'keep-both', discard: false };
    return {
      db: this.db, apply: this.apply, client: this.client, root: this.paths.dir, tmpDir: this.paths.tmp, conflictsDir: this.paths.conflictsDir,
      serverNode: this.#serverNode(), policy, log: this.log.child({ component: 'adopt' }), clock: this.#o.clock,
    };
  }

  /** Rebuild from a snapshot of the server, keeping local changes (see daemon/resync-protect.ts); counted for status. */
  async #resync(): Promise<void> {
    // What is on disk and not journaled yet becomes a pending change first: a resync keeps pending changes
    // (daemon/resync-protect.ts) and takes anything else for what the server has. Bounded: a tree that never
    // goes quiet still resyncs (resync-protect keeps what differs from the journal beside, too).
    if (this.capture.status().state === 'watching') {
      this.capture.rescan();
      await Promise.race([this.capture.idle(), sleep(10_000, undefined, { ref: false })]);
    }
    await this.#firstCopy('resync');
    // Counted once done: an attempt cut short (the server away meanwhile) is retried, and is not another resync.
    this.db.setMeta('resyncs', String(Number(this.db.getMeta('resyncs') ?? '0') + 1));
    this.disk.ok('resync');
    this.#applyStuckSince = null;
    this.reint.resumeAfterResync();
    this.capture.rescan(); // what a resync left on disk unjournaled (a local rename it undid) is journaled now
  }

  /** Follow the forwarded stream; on a cut, reconnect with capped exponential backoff and jitter. */
  async #followLoop(): Promise<void> {
    const backoff = new Backoff(200);
    // The server's records first, then the LML (the reconnection sequence): released by the stream's hello.
    this.reint.holdForStream();
    while (!this.#stopped) {
      if (this.#offline) {
        this.#connected = false;
        await this.#wakeFollow.wait(1000);
        continue;
      }
      if (this.#abort.signal.aborted) this.#abort = new AbortController();
      if (this.#resyncRequested) {
        this.#resyncRequested = false;
        try {
          await this.#exchange.run(() => this.#resync());
        } catch (e) {
          const full = this.disk.note('resync', e);
          this.log.error({ code: full?.code, err: (e as Error).message, backoffMs: backoff.step }, 'resync failed; retrying');
          this.#resyncRequested = true;
          await this.#wakeFollow.wait(backoff.next(full !== null));
          continue;
        }
      }
      try {
        if (this.#hello === null) {
          await ensureCredential(this.client, this.#state, this.db.meta.nodeId, this.#o.replicate, this.#o.trust);
          this.#hello = await this.client.hello(this.db.meta.nodeId, this.#o.replicate);
          learnServerAttrs(this.db, this.#hello.attrs, this.log);
          this.reint.wake();
          this.db.setMeta('server_node', this.#hello.node);
        }
        const since = this.db.lastRcvdOf(this.#serverNode());
        for await (const f of this.client.follow(since, this.db.meta.nodeId, this.#abort.signal)) {
          if (!this.#connected) {
            this.log.info({ since: formatTid(since), pending: this.db.lmlCount() }, 'connected');
            await this.#catchUp([...this.#behind()]);
          }
          this.#connected = true;
          this.#disconnectedSince = null;
          backoff.reset();
          if (f.type === 'record') {
            const r = parseWireRecord(f.header.r);
            this.#stale.add(r.fid);
            this.#lag.onRecord(r, typeof f.header.last === 'string' ? parseTid(f.header.last) : undefined, this.db.lastRcvdOf(this.#serverNode()));
            try {
              await this.#exchange.run(() => this.#applyForwarded(r, f.payload));
              this.#lag.onApplied(r);
              this.#applyStuckSince = null;
              this.disk.ok('apply');
            } catch (e) {
              this.#applyStuckSince ??= this.#o.clock.now();
              throw new ApplyFailure(r, e);
            } finally {
              this.#stale.delete(r.fid);
            }
            this.#scheduleAck();
          } else if (f.type === 'recall') {
            this.reint.onRecall(String(f.header.scope));
          } else if (f.type === 'ping' || f.type === 'hello') {
            const t = typeof f.header.tid === 'string' ? (parseTid(f.header.tid) ?? null) : null;
            if (t !== null && f.type === 'ping') {
              this.#lag.onPing(t);
              this.#checkDigest(t, typeof f.header.digest === 'string' ? f.header.digest : undefined);
            }
            if (t !== null && f.type === 'hello') {
              // What the server counts as missing here, from where this stream starts (journal/in-flight.ts).
              this.#lag.onHello(t, parseNext(f.header.next), parseWaiting(f.header.waiting));
              // A position not acknowledged yet (a first copy or resync just placed, or records applied before a
              // restart) is acknowledged now: else the server counts this node behind until the next record comes.
              if (since > this.#acked) this.#scheduleAck();
              // The reconnection sequence: the server's records first, then the LML.
              this.reint.holdUntil(t);
            }
          }
        }
        this.#connected = false;
      } catch (e) {
        if (this.#connected || this.#disconnectedSince === null) this.#disconnectedSince = this.#o.clock.now();
        this.#connected = false;
        if (this.#stopped) break;
        if (this.#offline) continue;
        const applying = e instanceof ApplyFailure;
        const cause = applying ? e.cause : e;
        // No room here to apply it: a state of this node, not a conflict (before, ENOSPC was called one, and three
        // of them started a resync, which the full disk failed too). It is retried until there is room.
        const full = applying ? this.disk.note('apply', cause, `apply ${e.record.kind} ${e.record.path}`) : this.disk.note('follow', cause);
        const err = full ?? (cause instanceof IntersyncError ? cause
          : applying ? IntersyncError.CONFLICT(e.record.path, (cause as Error).message) : IntersyncError.IO('follow', this.client.url, cause));
        this.#lastError = applying ? `applying ${formatTid(e.record.tid)} ${e.record.kind} ${e.record.path}: ${err.message}` : err.message;
        // A server record this node cannot apply, again and again, means its state went astray from the
        // server's in a way the conflict step did not foresee: rebuild it from a snapshot (keeping local changes).
        if (applying && full === null) {
          const dir = e.record.parent === undefined || e.record.parent === null ? null : e.record.parent;
          this.log.warn({
            tid: formatTid(e.record.tid), kind: e.record.kind, err: err.message, names: this.#namesNow(e.record),
            parent: dir === null || dir === ROOT_FID ? dir : `${dir} ${this.db.objectByFid(dir)?.path ?? 'not here'}`,
          }, 'a server record did not apply here');
          if (this.db.hasPendingLocal(e.record.fid)) this.#stuckObjects.add(e.record.fid);
          const tid = this.db.lastRcvdOf(this.#serverNode());
          this.#stuck = this.#stuck.tid === tid ? { tid, n: this.#stuck.n + 1 } : { tid, n: 1 };
        }
        if (err.code === 'RESYNC_NEEDED' || this.#stuck.n >= 3) {
          this.#stuck = { tid: NO_VERSION, n: 0 };
          this.log.error({ err: err.message }, err.code === 'RESYNC_NEEDED'
            ? 'away past the server\'s retention: resyncing the whole fileset'
            : 'a server record does not apply here: resyncing the whole fileset, keeping local changes');
          this.#o.onWarning?.(err);
          try {
            await this.#exchange.run(() => this.#resync());
            continue;
          } catch (e2) {
            // Asked again at the top of the loop until it is done: before, a failed resync (a full disk) was
            // not tried again until the stream had failed three more times.
            const full2 = this.disk.note('resync', e2);
            this.log.error({ code: full2?.code, err: (e2 as Error).message }, 'resync failed; retrying');
            this.#resyncRequested = true;
          }
        }
        if (err.code === 'NO_CREDENTIAL' || err.code === 'NODE_TAKEN') {
          // Waiting brings no credential back: say so once and let the runner stop the node.
          this.log.error({ code: err.code, err: err.message }, 'cannot authenticate to the server; stopping');
          this.#lastError = err.message;
          this.#o.onFatal?.(err);
          break;
        }
        this.log.warn({ code: err.code, err: err.message, backoffMs: backoff.step }, full !== null ? 'no room to apply the server\'s records; retrying' : 'forwarded stream lost; retrying');
        if (err.code === 'UNAUTHORIZED' || err.code === 'WRONG_FILESET' || err.code === 'NO_FILESET') this.#o.onWarning?.(err);
        await this.#wakeFollow.wait(backoff.next(full !== null));
      }
    }
  }

  /**
   * Acknowledge what was applied once the stream is quiet for 100 ms, or at the latest 1 s after the first
   * record not acknowledged: each ack makes everything durable first (syncfs), which a busy stream must not
   * pay per record.
   */
  #scheduleAck(): void {
    const now = this.#o.clock.monotonic();
    this.#ackDue ??= now + 1000;
    if (this.#ackTimer !== undefined) clearTimeout(this.#ackTimer);
    this.#ackTimer = setTimeout(() => {
      this.#ackTimer = undefined;
      this.#ackDue = undefined;
      const tid = this.db.lastRcvdOf(this.#serverNode());
      if (tid <= this.#acked || this.#stopped) return;
      this.apply.flush(); // durable before acknowledged
      this.client.ack(this.db.meta.nodeId, tid).then(
        () => {
          this.#acked = tid;
        },
        (e: unknown) => this.log.debug({ err: (e as Error).message }, 'ack failed'),
      );
    }, Math.max(0, Math.min(100, this.#ackDue - now)));
    this.#ackTimer.unref();
  }

  /** Apply one record from the server: our own accepted change, or another node's through the apply path. */
  async #applyForwarded(sent: KmlRecord, inline: Buffer | null): Promise<void> {
    const db = this.db;
    const peer = this.#serverNode();
    if (sent.tid <= db.lastRcvdOf(peer)) return;
    if (sent.origin === db.meta.nodeId && sent.originSeq !== null) {
      db.acceptOwn(sent, peer, this.#o.clock.now());
      this.#ownChangeThroughRemoved(sent);
      if (sent.kind === 'rmdir') this.#removeMadeAgain(sent);
      this.#settleOwnName(sent);
      // Our write went into an inode whose other names the server may hold apart (its `links`): they leave it
      // here too and take the server's content back (before, they kept our write: "state differs", a resync).
      const { left, fetch } = splitApart(this.#linkAlign(), sent);
      if (left.length > 0) this.log.warn({ tid: formatTid(sent.tid), path: sent.path, left }, 'hard links grouped as on the server: names left the inode');
      // And the names the server holds with it that are files of their own here join it: the write went into
      // them there. Before, each kept its old content here, the digests differed and the client resynced
      // (chaos seed 9215, c2: a resync had placed epsilon/c apart from d.md while a write through d.md was pending).
      const joined = joinLinks(this.#linkAlign(), sent);
      if (joined.length > 0) this.log.warn({ tid: formatTid(sent.tid), path: sent.path, joined }, 'hard links grouped as on the server: names joined the inode');
      for (const fid of fetch) this.#noteBehind(fid, true);
      if (fetch.length > 0) await this.#catchUp(fetch);
      return;
    }
    // In this node's names: below a directory renamed here and not accepted yet, or by a change of ours the
    // server accepted after this record (renamesOver), a server path is elsewhere; with the modes and owners this node takes from a peer (what it applies is what it journals).
    const place = (): KmlRecord => this.apply.localize(placedHere(db, localNamesOf(sent, renamesOver(db, sent.tid)), (fid) => db.hasPendingLocal(fid)));
    let r: KmlRecord;
    try {
      if (refusedFids(db).has(sent.fid)) throw IntersyncError.UNSAFE_LINK(sent.path, sent.target ?? '', 'a change of an object refused here');
      this.#resolver.breakCycle(sent);
      r = place();
    } catch (e) {
      if (!(e instanceof IntersyncError) || e.code !== 'UNSAFE_LINK') throw e;
      this.log.warn({ tid: formatTid(sent.tid), path: sent.path, err: e.message }, 'server record skipped');
      skipRefused(db, sent, peer, this.#o.clock.now());
      return;
    }
    const mode = modeChange(r.kind, sent.mode, r.mode);
    if (mode !== null) this.log[mode.warn ? 'warn' : 'info']({ tid: formatTid(sent.tid), path: r.path, mode: sent.mode.toString(8), applied: r.mode.toString(8) }, mode.message);
    const namesOf = (x: KmlRecord): string[] => {
      const here = db.objectByFid(x.fid)?.path;
      return [x.path, ...(x.newPath === null ? [] : [x.newPath]), ...(here === undefined ? [] : [here])];
    };
    let names = namesOf(r);
    // And the server's other names of the inode (its `links`) that are files here: the apply path refuses the
    // change while one of them is written here and not journaled, "retried once capture has journaled it", so
    // capture must look at them before each try. Before, nothing asked it to: a name whose stat moved without an
    // event (a move or removal of another name of its inode, here or applied) was refused three times and the
    // client resynced (chaos seeds 9218, 9220).
    const linked = (sent.links ?? []).flatMap((fid) => {
      const x = fid === sent.fid ? undefined : db.objectByFid(fid);
      return x?.type === 'file' ? [x.path] : [];
    });
    await this.capture.syncPaths([...names, ...linked]);
    // What capture journaled just now counts: a directory moved here a moment ago (its move journaled first, see
    // WatchCapture.syncPaths) takes the record's names along. Before, the record kept the directory's old name,
    // where nothing was any more: the conflict step put the server's content back there and failed (ENOENT).
    const again = place();
    if (again.path !== r.path || again.newPath !== r.newPath || again.target !== r.target) {
      r = again;
      names = namesOf(r);
      await this.capture.syncPaths(names);
    }
    // Held from the conflict step to the commit: a local change in between is journaled after it, against the
    // version this record makes (not against the one it replaces, which the server would refuse for ever).
    const redo = await this.guard.around(names, async () => {
      try {
        return await this.#applyResolved(r, inline, peer, sent);
      } catch (e) {
        this.#resolver.rescue(); // what the conflict step saved to put back later comes back now
        throw e;
      }
    });
    for (const step of redo ?? []) {
      try {
        step();
      } catch (e) {
        this.log.error({ tid: formatTid(r.tid), err: (e as Error).message }, 'cannot redo a local change after a conflict');
      }
    }
    this.#resolver.rescue(); // a saved content whose redo failed: beside its name, never left in the conflicts folder only
    this.#resolver.reclaim(r);
    // What the redo changed is journaled now, as a local change: not pending in no journal until capture's next event.
    const redone = this.#resolver.takeRedone();
    if (redone.length > 0) await this.capture.syncPaths(redone);
    if (this.#leftToFetch.length > 0) await this.#catchUp(this.#leftToFetch.splice(0));
    if ((r.kind === 'rename' || r.kind === 'setattr') && r.hash !== null) {
      // A conflict step may have left the stand-in too: the record names content this node does not hold.
      // Not when a name of its inode here has a change pending: that content is newer than the record's (a
      // write through another name of a hard link, not accepted yet). Before, the server's older content was
      // fetched into this name, taking it off the inode: a resync followed ("state differs").
      const o = db.objectByFid(r.fid);
      const pendingOnInode = o?.type === 'file' && o.ino !== null && db.objectsByIno(o.ino).some((x) => db.hasPendingLocal(x.fid));
      if (o?.type === 'file' && o.hash !== r.hash && !db.hasPendingLocal(r.fid) && !pendingOnInode) this.#noteBehind(r.fid, true);
      await this.#catchUp([r.fid]);
    }
  }

  /**
   * A server's change of a file this node does not have, with nothing pending for it here (lost here without a
   * record): the file is placed at the name the change leaves it at, with the server's content now, and the
   * record kept as the server's history. Before, it did not apply three times ("object … does not exist here")
   * and the client resynced the whole fileset. A directory is not restored this way (what it holds is unknown).
   */
  async #restoreMissing(r: KmlRecord, peer: string): Promise<boolean> {
    const db = this.db;
    if (!['write', 'truncate', 'setattr', 'rename'].includes(r.kind) || r.hash === null || db.objectByFid(r.fid) !== undefined || db.hasPendingLocal(r.fid)) return false;
    if (db.hasLaterRecord(r.fid, r.tid)) {
      // Removed here by a change of ours the server accepted after this record: nothing to place.
      db.skipRemote(r, peer, this.#o.clock.now());
      return true;
    }
    const at = r.newPath ?? r.path;
    const parent = parentOf(at);
    if (db.objectByPath(at) !== undefined || lstatOrNull(join(this.paths.dir, at)) !== null) return false;
    if ((parent !== '' && db.objectByPath(parent)?.type !== 'dir') || lstatOrNull(join(this.paths.dir, parent === '' ? '.' : parent))?.type !== 'dir') return false;
    const base: RecordDraft = { ...r, kind: 'create', path: at, newPath: null, target: null, preVersion: NO_VERSION };
    const { staged } = await this.apply.stageCurrent(base, this.#source);
    this.guard.hold(at);
    try {
      chmodSync(staged.file, r.mode);
      utimesSync(staged.file, r.mtimeMs / 1000, r.mtimeMs / 1000);
      renameSync(staged.file, join(this.paths.dir, at));
      const st = lstatOrNull(join(this.paths.dir, at));
      db.batch(() => {
        db.commitCopy({ ...base, hash: staged.hash, size: staged.size }, r.tid, st === null ? null : identityOf(st, nowNs()));
        db.skipRemote(r, peer, this.#o.clock.now());
      });
    } finally {
      rmSync(staged.file, { force: true });
      this.guard.release(at);
    }
    this.log.warn({ tid: formatTid(r.tid), kind: r.kind, path: at, fid: r.fid }, 'a file this node did not have, changed on the server: placed with the server\'s content');
    return true;
  }

  /**
   * This node's removal of a directory, back from the server: the directory the conflict step made again for
   * older server records that put things in it and took them out (the conflict step's removedAhead) goes now.
   * One that holds something is kept: what it holds is this node's, and reintegration makes it there again.
   */
  #removeMadeAgain(r: KmlRecord): void {
    const o = this.db.objectByFid(r.fid);
    if (o?.type !== 'dir') return;
    if (this.db.objectsBelow(o.path).length > 0) {
      this.log.warn({ path: o.path, tid: formatTid(r.tid) }, 'a directory removed here and made again for older server records holds entries now: kept');
      return;
    }
    this.guard.hold(o.path);
    try {
      rmdirSync(join(this.paths.dir, o.path));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.log.warn({ path: o.path, err: (e as Error).message }, 'a directory removed here and made again for older server records cannot go: kept');
        return;
      }
    } finally {
      this.guard.release(o.path);
    }
    this.db.forget(o.fid);
  }

  /**
   * Our own change of attributes through a name removed here since: the server set them on the inode, so on
   * every name it links to it (`links`). Such a name here is a file of its own (a link to the removed name was
   * placed as one, its target gone here), and takes them too, unless changed here since. Before, it kept the
   * attributes of the link's time: the journals differed ("other mode") and the client resynced (chaos s53
   * seed 9244: chmod, then rm, off line, while the server linked alpha/h to the name).
   */
  #ownChangeThroughRemoved(sent: KmlRecord): void {
    const db = this.db;
    if (sent.kind !== 'setattr' || sent.links === undefined || sent.links === null || db.objectByFid(sent.fid) !== undefined) return;
    const r = this.apply.localize(sent);
    for (const fid of sent.links) {
      const x = fid === sent.fid ? undefined : db.objectByFid(fid);
      if (x?.type !== 'file' || db.hasPendingLocal(x.fid) || (x.mode === r.mode && x.uid === r.uid && x.gid === r.gid)) continue;
      const d: RecordDraft = { ...r, fid: x.fid, path: x.path, newPath: null, target: null, preVersion: x.version, size: x.size, hash: x.hash, mtimeMs: x.mtimeMs };
      try {
        this.apply.apply(d, null, (identity) => db.setAttrs(x.fid, d, identity));
        this.log.info({ tid: formatTid(sent.tid), path: x.path, mode: r.mode.toString(8) }, 'our change of attributes through a name removed here: set on the name the server links to it');
      } catch (e) {
        this.log.warn({ path: x.path, err: (e as Error).message }, 'cannot set our change of attributes on a name the server links to it');
      }
    }
  }

  #linkAlign(): LinkAlignDeps {
    return { db: this.db, root: this.paths.dir, guard: this.guard, tmpName: () => this.apply.tmpName() };
  }

  /** The conflict step, then the apply path, for a forwarded record: the local intent to redo after it. */
  async #applyResolved(r0: KmlRecord, inline: Buffer | null, peer: string, sent: KmlRecord): Promise<Redo[] | null> {
    const db = this.db;
    // Names the server holds apart leave the inode first, with what they hold: the conflict step then meets
    // the names as the server groups them (apply/link-align.ts).
    const { left, fetch } = splitApart(this.#linkAlign(), r0);
    if (left.length > 0) this.log.warn({ tid: formatTid(r0.tid), path: r0.path, left }, 'hard links grouped as on the server: names left the inode');
    // Their content here may be a write made through another name: the server's is fetched after the record.
    for (const fid of fetch) this.#noteBehind(fid, true);
    this.#leftToFetch.push(...fetch);
    const steps = await this.#resolver.prepare(r0, sent);
    if (steps !== null && !Array.isArray(steps)) return steps.applied; // journaled by the conflict step
    // A hard link to a file removed here (its removal not accepted yet): the name is placed as a file of its
    // own with the server's content, and the removal then takes only the other name on the server. (Before,
    // the link did not apply three times and the client resynced.) The digest is the same; the KML says create.
    let r = r0;
    let placedFor: Fid | undefined; // the removed name a link placed as a file of its own was made to
    // By identity: the file the link names (targetFid) is not a file here (removed here, or lost): whatever
    // holds its name now is another file, and the apply path's check would refuse the link for ever.
    const goneHere = (fid: Fid | null | undefined): boolean => fid !== undefined && fid !== null && db.objectByFid(fid)?.type !== 'file';
    const removal = r.kind === 'link' && r.target !== null && db.objectByPath(r.target) === undefined
      ? db.pendingRemovals('unlink', r.target).find((x) => x.path === r.target) : undefined;
    if (r.kind === 'link' && r.target !== null && (goneHere(r.targetFid) || removal !== undefined)) {
      // The name removed here was one of several of its inode, which lives on here under another: the new name
      // joins that inode, as it joins the target's on the server (whose other names are these). Before, it was
      // a file of its own: once the removal was accepted the server held the new name and the others as one
      // file, this node as two, for good (the digest does not cover link groups; chaos seed 9207, c1).
      const removed = r.targetFid ?? removal?.fid;
      const survivor = removed === undefined || removed === null ? undefined : removedLink(db, this.paths.dir, removed);
      if (survivor !== undefined) {
        r = { ...r, target: survivor.path, targetFid: survivor.fid };
        this.log.warn({ tid: formatTid(r.tid), path: r.path, target: r0.target, linkedTo: survivor.path }, 'a hard link to a file removed here: made to another name of its inode here');
      } else {
        r = { ...r, kind: 'create', target: null };
        placedFor = removed ?? undefined;
        this.log.warn({ tid: formatTid(r.tid), path: r.path, target: r0.target }, 'a hard link to a file removed here: placed as a file of its own');
      }
    }
    this.#followServerName(r);
    // Still elsewhere (the server's name is in a directory that is not here) with nothing pending any more: the
    // change goes where the object is (by identity, placedHere), not refused as made "elsewhere".
    if (!db.hasPendingLocal(r.fid)) r = placedHere(db, r);
    // The server removes an object this node does not have, with nothing pending for it here: the end is the
    // same (whatever holds the name here is another object), so the record is kept as the server's history
    // and nothing changes. Before, it did not apply three times ("object … does not exist here"): a resync.
    if ((r.kind === 'unlink' || r.kind === 'rmdir') && db.objectByFid(r.fid) === undefined && !db.hasPendingLocal(r.fid)) {
      this.log.warn({ tid: formatTid(r.tid), path: r.path, fid: r.fid }, 'the server removed an object this node does not have: nothing to do');
      db.skipRemote(r, peer, this.#o.clock.now());
      return steps;
    }
    if (await this.#restoreMissing(r, peer)) return steps;
    // Under this node's own later change of attributes (accepted before the stream brought `r`): the content
    // goes in, the attributes stay (ApplyPath#attrsAbove).
    const above = this.apply.attrsAbove(r);
    if (above !== null) r = { ...r, mode: above.mode, uid: above.uid, gid: above.gid };
    const journaledAt = db.lmlSeq;
    // Changed or moved again on the server meanwhile: its newer content, or an empty stand-in when it holds none
    // at the record's name (a later record brings the rest); the name is kept meanwhile.
    const staged = this.apply.needsContent(r) ? (await this.apply.stageOrPlaceholder(r, inline, this.#source)).staged : null;
    // Capture may journal a write made here through a name of the inode while the content was fetched: the
    // conflict step has not met it, and the identity check would pass (the journal's stat is the disk's now).
    const since = this.#writtenSince(r, journaledAt);
    if (since !== undefined) {
      if (staged !== null) rmSync(staged.file, { force: true });
      throw IntersyncError.CONFLICT(since, 'written here while the server\'s content was fetched; retried, the conflict step meets it');
    }
    const err = this.apply.check(r);
    if (err !== null) {
      if (staged !== null) rmSync(staged.file, { force: true });
      // What this node holds pending for the object, and the pending moves that name it here: what a look at a
      // log needs to tell why (the record is the server's; its path here follows those moves).
      const show = (x: LmlRecord): string => `${x.seq} ${x.kind} ${x.path}${x.newPath === null ? '' : ` -> ${x.newPath}`} @${formatTid(x.preVersion)}`;
      this.log.error({
        tid: formatTid(r.tid), kind: r.kind, fid: r.fid, path: r.path, err: err.message,
        here: db.objectByFid(r.fid)?.path ?? null, pending: db.localRecordsOf(r.fid).slice(0, 10).map(show), moves: db.pendingRenames().slice(-10).map(show),
      }, 'forwarded record does not apply');
      throw err;
    }
    // The server's names of the inode join it, before the change goes into it (apply/link-align.ts).
    const joined = joinLinks(this.#linkAlign(), r);
    if (joined.length > 0) this.log.warn({ tid: formatTid(r.tid), path: r.path, joined }, 'hard links grouped as on the server: names joined the inode');
    // No file at the object's name yet (removed here, brought back by the conflict step for the server's write:
    // update beats delete): the change places a new inode, and the server's names join it only then.
    const placesInode = r.links !== undefined && r.links !== null && r.links.length > 1 && db.objectByFid(r.fid)?.type === 'file'
      && lstatOrNull(join(this.paths.dir, r.path)) === null;
    const content = this.#placedContent(r, staged);
    const linkTarget = r.kind === 'link' ? r.targetFid ?? (r.target === null ? undefined : db.objectByPath(r.target)?.fid) : undefined;
    const linkedBehind = linkTarget !== undefined && linkTarget !== null && this.#behind().has(linkTarget);
    if (content !== undefined && staged !== null) {
      this.log.info({ tid: formatTid(r.tid), path: r.path, size: content.size }, 'content of this record no longer on the server: placed what it holds now');
    }
    this.apply.apply(r, staged, (identity) => {
      db.commitRemote([{ record: r, identity, ...(content === undefined ? {} : { content }) }], peer, this.#o.clock.now());
      // Behind until a record or a fetch brings the server's content (a rename or setattr brings none).
      if (content !== undefined) this.#noteBehind(r.fid, true);
      else if (staged !== null || r.kind === 'unlink') this.#noteBehind(r.fid, false);
      // A link to a name still behind holds its stand-in too: behind as well, so that its content is fetched by
      // its own fid. Before, only the first name was behind; once the server's removal of it came, nothing
      // fetched the link's content, and every client resynced ("other content"; chaos s31, seed 9228).
      if (r.kind === 'link' && linkedBehind) this.#noteBehind(r.fid, true);
    }, JSON.stringify({ via: 'forward', r: recordToWire(r) }));
    // On the server the new name is one file with the removed one: the next link to that name is made to this
    // file (removedLink). Before, it was a file of its own too, and the server held the two links as one file
    // once it accepted the removal, this node as two, for good (chaos s40 seed 9278, c2).
    const placedIno = placedFor === undefined ? null : db.objectByFid(r.fid)?.ino ?? null;
    if (placedFor !== undefined && placedIno !== null) db.noteRemovedLinkAt(placedFor, placedIno);
    if (placesInode) {
      // Before, the names the server links to it stayed files of their own here: the server held them as one
      // file, this node as several, for good (chaos seed 9215, c1).
      const late = joinLinks(this.#linkAlign(), r);
      if (late.length > 0) this.log.warn({ tid: formatTid(r.tid), path: r.path, joined: late }, 'hard links grouped as on the server: names joined the inode');
    }
    return steps;
  }

  /**
   * The content a forwarded record leaves on disk when it is not the record's: what was staged (newer content,
   * or the empty stand-in), or, for a setattr, the content an earlier stand-in left. The object row must say
   * that, or capture would take the difference for a local change (an empty file written over the server's).
   */
  #placedContent(r: KmlRecord, staged: Staged | null): { hash: string; size: number } | undefined {
    if (staged !== null) return staged.hash === r.hash ? undefined : { hash: staged.hash, size: staged.size };
    if (r.kind !== 'setattr' || r.hash === null) return undefined;
    const o = this.db.objectByFid(r.fid);
    return o?.type === 'file' && o.hash !== null && o.hash !== r.hash ? { hash: o.hash, size: o.size ?? 0 } : undefined;
  }

  /** Files whose content here is not the server's (its record came when the server no longer held it), kept in meta. */
  /**
   * Caught up with the server, with nothing pending here, this node's state is the server's at that TID: the
   * server's state digest (sent with each ping, else the one journaled with its record) must be this node's. When it is not, for two seconds
   * (the stream's pings), the node went astray without a refusal to show it (a path kept here that the server
   * does not have): it resyncs, which places the server's state. Counted in status like any resync.
   */
  #checkDigest(serverTid: Tid, serverDigest: string | undefined): void {
    const db = this.db;
    const now = this.#o.clock.monotonic();
    const want = serverDigest ?? db.kmlAt(serverTid)?.digest;
    // Files still behind (a stand-in here) when nothing else is to do: their content is asked for again every
    // few seconds, not only at the next connection (until then the node differed from the server, and the
    // check below, which leaves such a node alone, never repaired it).
    if (this.#behind().size > 0 && db.lmlCount() === 0 && db.lastRcvdOf(this.#serverNode()) === serverTid
      && (this.#catchUpAt === null || now - this.#catchUpAt >= 5000)) {
      this.#catchUpAt = now;
      this.#exchange.run(() => this.#catchUp([...this.#behind()])).catch((e: unknown) => {
        this.log.warn({ err: (e as Error).message }, 'cannot fetch the server\'s content of files behind yet');
      });
    }
    // A client that refused some of the server's objects (safe-links), or takes modes and owners more strictly
    // than the server, differs from it by design: a resync could not change that, so it does not check.
    if (db.lmlCount() > 0 || this.#behind().size > 0 || db.lastRcvdOf(this.#serverNode()) !== serverTid || want === undefined
      || want === formatDigest(db.digest) || refusedFids(db).size > 0 || stricterThanServer(db)) {
      this.#diverged = null;
      return;
    }
    if (this.#diverged === null || this.#diverged.tid !== serverTid) {
      this.#diverged = { tid: serverTid, since: now };
      return;
    }
    if (now - this.#diverged.since < 2000) return;
    // This node's journal may lag its own disk (a name of a hard-linked inode whose row kept an older inode, so a
    // change made through another name did not reach it, and inotify said nothing of it): the disk is looked at
    // again first, and what the rescan journals is sent, then the digests are compared again. Once per server
    // TID: a difference the rescan does not explain resyncs as before. Before, the node resynced at once (chaos
    // s50 seed 9250, c2: a chmod through one name; test/long/journal-lags-disk.test.ts).
    if (this.#rescanning) return;
    if (this.#rescannedFor !== serverTid && this.capture.status().state === 'watching') {
      this.#rescannedFor = serverTid;
      this.#rescanning = true;
      this.log.warn({ tid: formatTid(serverTid), server: want, here: formatDigest(db.digest) },
        'journal digest is not the server\'s with nothing pending: rescanning this node\'s disk before anything else');
      this.capture.rescan();
      // Bounded, as before a resync (#resync): a tree that never goes quiet still gets its answer.
      void Promise.race([this.capture.idle(), sleep(10_000, undefined, { ref: false })]).then(() => {
        this.#rescanning = false;
        // The rescan journaled what the disk holds (sent now, compared again at the next ping), or something
        // else moved meanwhile: nothing more here. Else the difference is not this node's disk: resync.
        if (this.#stopped || db.lmlCount() > 0 || db.lastRcvdOf(this.#serverNode()) !== serverTid || formatDigest(db.digest) === want) {
          this.#diverged = null;
          return;
        }
        this.#resyncDiverged(serverTid, want);
      }).catch((e: unknown) => {
        this.#rescanning = false;
        this.log.warn({ err: (e as Error).message }, 'rescan before a digest resync failed; the next ping decides');
      });
      return;
    }
    this.#resyncDiverged(serverTid, want);
  }

  /** #checkDigest: the difference stands; resync (at most once a minute). */
  #resyncDiverged(serverTid: Tid, want: string): void {
    const now = this.#o.clock.monotonic();
    // At most one such resync a minute: a difference a resync cannot take away (a policy that keeps a mode
    // apart here) must not turn into a resync loop.
    if (this.#divergedResyncAt !== null && now - this.#divergedResyncAt < 60_000) return;
    this.log.error({ tid: formatTid(serverTid), server: want, here: formatDigest(this.db.digest) },
      'state differs from the server\'s at the same TID with nothing pending: resyncing the whole fileset');
    this.#diverged = null;
    this.#divergedResyncAt = now;
    this.#resyncRequested = true;
    this.#abort.abort(); // the follow loop runs the resync
  }

  /** Names that left a hard-linked inode for the record being applied: the server's content of each is fetched after it. */
  readonly #leftToFetch: Fid[] = [];
  #diverged: { tid: Tid; since: number } | null = null;
  /** The server TID at which a digest difference last had the disk rescanned, and whether that rescan runs (#checkDigest). */
  #rescannedFor: Tid | null = null;
  #rescanning = false;
  #catchUpAt: number | null = null;
  #divergedResyncAt: number | null = null;

  #behind(): Set<string> {
    this.#behindSet ??= new Set(JSON.parse(this.db.getMeta('content_behind') ?? '[]') as string[]);
    return this.#behindSet;
  }

  /** Called inside the transaction of the change that makes the file behind or not (the set is read back from meta after a rollback). */
  #noteBehind(fid: string, behind: boolean): void {
    const all = this.#behind();
    if (all.has(fid) === behind) return;
    this.#behindSet = null;
    const next = new Set(all);
    if (behind) next.add(fid);
    else next.delete(fid);
    this.db.setMeta('content_behind', JSON.stringify([...next]));
  }

  /**
   * Before local changes go to the server: a write, truncate or unlink of a file whose content here is only a
   * stand-in (see #placedContent) would replace or remove the server's content, never seen here. That content
   * is fetched first and kept beside it, as a conflict copy made here (journaled and replicated like any file).
   */
  async #keepServerContent(lml: readonly LmlRecord[]): Promise<void> {
    const behind = this.#behind();
    if (behind.size === 0) return;
    const kept: string[] = [];
    const done = new Set<string>();
    for (const r0 of lml) {
      if (r0.kind !== 'write' && r0.kind !== 'truncate' && r0.kind !== 'unlink') continue;
      // A write through another name of a file's inode replaces the stand-in too, and on the server (one inode
      // there, once a link made here is accepted) the content it stands for (chaos seeds 9205 and 9208: the
      // write went out, or the fetch below put the server's content over it, and one of the two was lost).
      const targets: LmlRecord[] = behind.has(r0.fid) ? [r0] : [];
      if (r0.kind !== 'unlink') {
        for (const b of this.#inodeNames(this.db.objectByFid(r0.fid))) {
          if (b.fid === r0.fid || !behind.has(b.fid)) continue;
          targets.push({ ...r0, fid: b.fid, path: b.path, preVersion: b.version, mode: b.mode, uid: b.uid, gid: b.gid, mtimeMs: b.mtimeMs });
        }
      }
      for (const r of targets) {
        if (done.has(r.fid)) continue;
        done.add(r.fid);
        try {
          const { staged, placeholder } = await this.apply.stageCurrent(r, this.#source);
          if (placeholder) {
            rmSync(staged.file, { force: true });
            continue; // gone from the server too (its own later record says how): nothing to keep
          }
          const exists = (p: string): boolean => this.db.objectByPath(p) !== undefined || lstatOrNull(join(this.paths.dir, p)) !== null;
          const aside = conflictName(r.path, this.db.meta.nodeId, r.preVersion, exists);
          mkdirSync(join(this.paths.dir, parentOf(aside)), { recursive: true });
          chmodSync(staged.file, r.mode);
          utimesSync(staged.file, r.mtimeMs / 1000, r.mtimeMs / 1000);
          renameSync(staged.file, join(this.paths.dir, aside));
          kept.push(aside);
          this.#noteBehind(r.fid, false);
          this.log.warn({ path: r.path, keptAs: aside }, 'conflict: changed here before its content came from the server; the server\'s content kept beside');
        } catch (e) {
          // Not sent before the server's content is kept: the removal or write would destroy it on the server.
          this.log.warn({ path: r.path, err: (e as Error).message }, 'cannot keep the server\'s content of a file changed here before it came');
          if (kept.length > 0) await this.capture.syncPaths(kept);
          throw new IntersyncError('IO', `cannot fetch the server's content of ${r.path} to keep it beside before this change is sent`, {
            retriable: true, hint: 'retried when the server answers', cause: e,
          });
        }
      }
    }
    // Journaled now, not when capture gets to it: until it is, this node would look caught up with the server
    // (nothing pending, the same state) while holding a file nobody else has.
    if (kept.length > 0) await this.capture.syncPaths(kept);
  }

  /**
   * A name of the inode a change of content `r` goes into, with a write or truncate journaled here after the
   * local record `seq` (made while the change's content was fetched); undefined when none. Before, such a write
   * passed the apply path's check (capture had given every name the disk's stat) and the server's content went
   * into the inode over it: on no node (chaos s72 seed 9301, c2; test/written-while-fetched.test.ts).
   */
  #writtenSince(r: Pick<RecordDraft, 'kind' | 'fid'>, seq: bigint): string | undefined {
    if (r.kind !== 'write' && r.kind !== 'truncate') return undefined;
    if (this.db.lmlSeq === seq) return undefined;
    const names = this.#inodeNames(this.db.objectByFid(r.fid));
    return names.find((x) => this.db.localRecordsOf(x.fid).some((y) => y.seq > seq && (y.kind === 'write' || y.kind === 'truncate')))?.path;
  }

  /**
   * What this node holds at a record's names (in the server's names and in this node's), in the journal and on
   * disk, with the pending records of what is there: a log line that tells why a record did not apply.
   */
  #namesNow(r: KmlRecord): Record<string, unknown> {
    const show = (x: LmlRecord): string => `${x.seq} ${x.kind} ${x.path}${x.newPath === null ? '' : ` -> ${x.newPath}`} @${formatTid(x.preVersion)}`;
    const here = this.db.objectByFid(r.fid)?.path;
    const names = [...new Set([r.path, ...(r.newPath === null ? [] : [r.newPath]), ...(here === undefined ? [] : [here])])];
    return Object.fromEntries(names.map((p) => {
      const o = this.db.objectByPath(p);
      const st = lstatOrNull(join(this.paths.dir, p));
      return [p, {
        journal: o === undefined ? null : `${o.fid} ${o.type} @${formatTid(o.version)} ino ${o.ino ?? '-'}`,
        disk: st === null ? null : `${st.type} ino ${st.ino}`,
        pending: o === undefined ? [] : this.db.localRecordsOf(o.fid).slice(0, 5).map(show),
      }];
    }));
  }

  /** The names of a file's inode here, itself included, that are files on disk as that inode ([] for anything else). */
  #inodeNames(o: ObjectRow | undefined): ObjectRow[] {
    if (o?.type !== 'file' || o.ino === null) return o === undefined ? [] : [o];
    return this.db.objectsByIno(o.ino).filter((x) => x.type === 'file' && (x.fid === o.fid || lstatOrNull(join(this.paths.dir, x.path))?.ino === o.ino));
  }

  /**
   * Fetch the server's current content of files that are behind (see #placedContent), when no later record
   * brought it: after a rename or setattr of one (the server had only moved it when this node asked), and at
   * each connection. Still missing on the server, a file stays noted: a later record of the server brings it.
   */
  async #catchUp(fids: Iterable<string>): Promise<void> {
    const behind = this.#behind();
    for (const fid of fids) {
      if (!behind.has(fid)) continue;
      // What changed here and is not journaled yet is journaled first, as before any change from the server: a
      // local write (or one a conflict step has just put back) must not be taken for the stand-in and replaced.
      const was = this.db.objectByFid(fid as ObjectRow['fid']);
      // Every name of its inode: a write through another one is a write of this file too.
      if (was !== undefined) await this.capture.syncPaths([was.path, ...this.#inodeNames(was).map((x) => x.path).filter((p) => p !== was.path)]);
      const o = this.db.objectByFid(fid as ObjectRow['fid']);
      // Written or removed here since: the server's content is kept beside before that change is sent (#keepServerContent).
      if (this.db.localRecordsOf(fid as ObjectRow['fid']).some((x) => x.kind === 'write' || x.kind === 'truncate' || x.kind === 'unlink')) continue;
      // So when written through another name of its inode: capture journals such a write as that name's only (the
      // other names' rows follow it). Before, the fetch put the server's content into the inode over it, and the
      // write was on no node (chaos seeds 9205 and 9208, "DESTROYED").
      if (this.#inodeNames(o).some((x) => x.fid !== fid && this.db.localRecordsOf(x.fid).some((y) => y.kind === 'write' || y.kind === 'truncate'))) continue;
      if (o === undefined || o.type !== 'file') {
        this.#noteBehind(fid, false);
        continue;
      }
      const d: RecordDraft = {
        kind: 'write', fid: o.fid, path: o.path, newPath: null, target: null, preVersion: o.version, mode: o.mode, uid: o.uid, gid: o.gid,
        mtimeMs: o.mtimeMs, size: null, hash: null, origin: this.db.meta.nodeId, time: this.#o.clock.now(),
      };
      try {
        const journaledAt = this.db.lmlSeq;
        const { staged, placeholder } = await this.apply.stageCurrent(d, this.#source);
        if (placeholder || staged.hash === o.hash) {
          rmSync(staged.file, { force: true });
          if (!placeholder) this.#noteBehind(fid, false);
          continue;
        }
        // Written here while it was fetched: kept as the other writes above are.
        if (this.#writtenSince(d, journaledAt) !== undefined) {
          rmSync(staged.file, { force: true });
          continue;
        }
        this.apply.apply(d, staged, (identity) => {
          this.db.setContent(o.fid, staged.hash, staged.size, identity);
          this.#noteBehind(fid, false);
        });
        this.log.info({ path: o.path, size: staged.size }, 'content missing from the server when its record came: fetched now');
      } catch (e) {
        // A local write meanwhile (capture journals it, then it is kept beside) or the link went down: tried again at the next connection.
        this.log.warn({ path: o.path, err: (e as Error).message }, 'cannot fetch the server\'s content of this file yet');
      }
    }
  }

  /**
   * Our own record is back on the stream: every older server record is applied, so the object must be where
   * the server has it. The conflict step of an older server record may have moved it aside meanwhile (its
   * change was accepted, from the reintegration answer, before the stream brought that older record).
   */
  #settleOwnName(r: KmlRecord): void {
    if (r.kind === 'unlink' || r.kind === 'rmdir') return;
    const o = this.db.objectByFid(r.fid);
    if (o === undefined || o.version !== r.tid) return;
    // Renamed here since: the LML says where it goes.
    if (this.db.localRecordsOf(r.fid).some((x) => x.kind === 'rename')) return;
    // Below a directory a later change of ours moved, which the server has accepted already (its answer is in
    // the journal before the stream brings it back): that record says where the object is. Before, a write
    // coming back after the rename of its directory was accepted moved the file back to the old name, into a
    // directory made there since (chaos seed 9203: a conflict copy, then "state differs" and a resync).
    for (let p = parentOf(o.path); p !== ''; p = parentOf(p)) {
      const dir = this.db.objectByPath(p);
      if (dir !== undefined && this.db.hasLaterRecord(dir.fid, r.tid)) return;
    }
    // Below a directory renamed here and not accepted yet, the server's name is under the directory's local name.
    const mine = localNamesOf(r, serverRenames(this.db));
    this.#toServerName(o, mine.newPath ?? mine.path, r.tid, 'own change back from the server: moved back to its name');
  }

  /**
   * A server record names an object, with no local change pending, at another name than here (a conflict
   * step moved it aside while the server kept it, a record sent before the move was accepted as sent):
   * the server's name is the object's name.
   */
  #followServerName(r: KmlRecord): void {
    if (['create', 'mkdir', 'symlink', 'link'].includes(r.kind)) return;
    const o = this.db.objectByFid(r.fid);
    if (o === undefined || o.path === r.path || this.db.hasPendingLocal(r.fid)) return;
    this.#toServerName(o, r.path, r.tid, 'object back at the server\'s name for its record');
  }

  #toServerName(o: ObjectRow, want: string, tid: Tid, msg: string): void {
    if (o.path === want || isUnder(want, o.path)) return;
    if (this.db.objectByPath(want) !== undefined || lstatOrNull(join(this.paths.dir, want)) !== null) return;
    if (lstatOrNull(join(this.paths.dir, parentOf(want) === '' ? '.' : parentOf(want)))?.type !== 'dir') return;
    this.guard.hold(o.path);
    this.guard.hold(want);
    try {
      renameSync(join(this.paths.dir, o.path), join(this.paths.dir, want));
      this.db.relocateLocal(o.fid, want);
    } finally {
      this.guard.release(o.path);
      this.guard.release(want);
    }
    // A conflict that kept it beside the name is over: it is the name's object.
    for (const c of this.db.conflicts(false)) {
      if (c.kept === o.path) this.db.resolveConflict(c.id, `back at ${want}: the server kept the object there`, this.#o.clock.now());
    }
    this.log.info({ path: want, was: o.path, tid: formatTid(tid) }, msg);
  }

  #writeStatus(): void {
    this.#status.publish(() => ({
      pid: process.pid, startedAt: this.#startedAt, updatedAt: this.#o.clock.now(), role: 'client',
      fileset: this.paths.name, uuid: this.db.meta.uuid, nodeId: this.db.meta.nodeId, dir: this.paths.dir,
      logFile: this.logFile, debug: this.#o.debug, capture: this.capture.status(), diskFull: this.disk.status(), client: this.status(),
      reint: this.reint.status(),
    }));
  }
}

/** A forwarded record failed to apply here (as opposed to the stream failing). */
class ApplyFailure extends Error {
  readonly record: KmlRecord;

  constructor(record: KmlRecord, cause: unknown) {
    super(`apply ${formatTid(record.tid)}: ${(cause as Error).message}`, { cause });
    this.record = record;
  }
}


function earliest(a: number | null, b: number | null): number | null {
  return a === null ? b : b === null ? a : Math.min(a, b);
}

/** A server that answered with a certificate this node does not trust: waiting does not change that. */
function untrustedCertificate(e: IntersyncError): boolean {
  let c: unknown = e.cause;
  for (let i = 0; i < 4 && c instanceof Error; i++) {
    const code = (c as NodeJS.ErrnoException).code ?? '';
    if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|TLS_PIN/.test(code) || /certificate/i.test(c.message)) return true;
    c = c.cause;
  }
  return false;
}
