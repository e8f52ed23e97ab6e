import { existsSync, readdirSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { Backoff } from '#core/backoff.js';
import { IntersyncError } from '#core/errors.js';
import { META_DIR } from '#core/format.js';
import { formatTid } from '#core/ids.js';
import type { ApplyPath } from '#apply/apply-path.js';
import { join } from 'node:path';
import { FilesetDb } from '#journal/fileset-db.js';
import { checkBackingDir, findFileset, listFilesets, type FilesetPaths } from '#journal/layout.js';
import { ensureNodeId, mkfs } from '#journal/mkfs.js';
import { releasePidFile, takePidFile } from '#journal/pid-file.js';
import { PeerClient, type HelloInfo } from '#net/peer-client.js';
import type { EchoGuard } from '#fsio/echo-guard.js';
import type { IgnoreRules } from '#presto/ignore-rules.js';
import type { Capture } from '#presto/capture.js';
import { SPLIT_SCAN_MIN } from '#presto/scan.js';
import type { Reintegrator } from '#reint/reintegrator.js';
import { statePaths, type StatePaths } from '#journal/state-dir.js';
import type { Transfers } from '#core/transfers.js';
import type { Service } from '#core/service.js';
import { adopt, adoptionPending, finishAdoption, noteAdoption } from './adopt.js';
import type { AdoptSummary } from './adopt-plan.js';
import { ensureCredential, initialBearer, pinOf, requireCredential } from './enrolment.js';
import { learnServerAttrs } from '#copy/client-attrs.js';
import type { DiskFullState } from '#core/disk-full.js';
import { ClientAcks } from './client-acks.js';
import { keepServerContent } from './client-catch-up.js';
import { adoptDeps, firstCopy } from './client-copy.js';
import { clientFollower } from './client-sink.js';
import { recover } from './client-recover.js';
import { ClientState } from './client-state.js';
import { clientStatus, writeStatus } from './client-status.js';
import type { ClientNodeOptions, ClientStatus } from './client-types.js';

export type { ClientNodeOptions, ClientStatus } from './client-types.js';

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
  readonly guard: EchoGuard;
  /** This node's own disk refusing writes for want of space: a state, retried by each step, shown in status. */
  readonly disk: DiskFullState;
  readonly log: Logger;
  readonly logFile: string;
  /** Large files moving now (both directions: the reintegrator reports its uploads here). */
  readonly transfers: Transfers;
  /** The state the parts share (client-state.ts): the parts above, and what they read and change. */
  readonly #s: ClientState;
  /** The acks of what the follow loop applied (client-acks.ts): stop clears their timer. */
  readonly #acks: ClientAcks;
  #offlineTimer: NodeJS.Timeout | undefined;
  /** What runs until stop: the follower of the server's stream (net/record-follower.ts) and the reintegrator. */
  #services: Service[] = [];
  #loops: Promise<unknown>[] = [];
  #statusTimer: NodeJS.Timeout | undefined;

  private constructor(o: ClientNodeOptions, paths: FilesetPaths, db: FilesetDb, client: PeerClient, hello: HelloInfo | null) {
    // The wiring (the old constructor's body, in its order) is ClientState's.
    const s: ClientState = new ClientState(o, paths, db, client, hello, {
      writeStatus: () => this.#writeStatus(),
      beforeSend: (lml) => keepServerContent(s, lml),
    });
    this.#s = s;
    this.paths = s.paths;
    this.db = s.db;
    this.ignore = s.ignore;
    this.capture = s.capture;
    this.apply = s.apply;
    this.client = s.client;
    this.reint = s.reint;
    this.guard = s.guard;
    this.disk = s.disk;
    this.log = s.log;
    this.logFile = s.logFile;
    this.transfers = s.transfers;
    this.#acks = new ClientAcks(s);
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
    if (db.getMeta('role') === 'slave') {
      db.close();
      await client.close();
      throw IntersyncError.IS_A_SLAVE(dir, 'running it as a client would send its files to the server as changes made here');
    }
    client.uuid = db.meta.uuid;
    const holder = takePidFile(paths.pidFile);
    if (holder !== undefined) {
      db.close();
      throw IntersyncError.DAEMON_RUNNING(dir, holder);
    }
    let made: ClientNode | undefined;
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
      made = node;
      node.log.info({ dir, server: client.url, uuid: db.meta.uuid, node: db.meta.nodeId }, 'starting client');
      if (hello !== null) learnServerAttrs(db, hello.attrs, node.log);
      await recover(node.#s);
      // The first copy runs before capture starts: the start-up scan that follows it journals whatever was
      // changed here meanwhile, so nothing made during the copy is lost, and nothing the copy wrote echoes.
      // The file-system thread writes a first copy's files, then shares the lstats of a large tree's scan.
      const copying = db.getMeta('copy_done') === undefined;
      // The status from here on: a first copy and a big tree's start-up scan take minutes (capture.progress).
      node.#writeStatus();
      node.#statusTimer = setInterval(() => node.#writeStatus(), 1000);
      node.#statusTimer.unref();
      await node.apply.withThread(copying || db.objectCount() >= SPLIT_SCAN_MIN, async (statMany, hashMany) => {
        const adopting = adoptionPending(db) ? adoptDeps(node.#s) : null;
        let adopted: AdoptSummary | null = null;
        if (copying && adopting !== null) adopted = await adopt(adopting);
        if (copying) await firstCopy(node.#s, 'first copy');
        if (adopting !== null) {
          finishAdoption(adopting, adopted);
          if (adopted !== null) o.onAdopted?.(adopted);
        }
        await node.capture.start(statMany, hashMany);
      });
      node.#checkOffline();
      node.#offlineTimer = setInterval(() => node.#checkOffline(), 200);
      node.#offlineTimer.unref();
      // The server's records first, then the LML (the reconnection sequence): released by the stream's hello.
      node.reint.holdForStream();
      node.#services = [clientFollower(node.#s, node.#acks), node.reint];
      node.#loops = node.#services.map((x) => x.run());
      node.#writeStatus();
      return node;
    } catch (e) {
      if (made !== undefined && made.#statusTimer !== undefined) clearInterval(made.#statusTimer);
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
    return this.#s.copy !== null;
  }

  async stop(): Promise<void> {
    this.#s.stopped = true;
    // Each ends at its next turn (the follower's open stream is cut now); awaited below, after capture.
    const stopping = this.#services.map((x) => x.stop());
    if (this.#statusTimer !== undefined) clearInterval(this.#statusTimer);
    if (this.#offlineTimer !== undefined) clearInterval(this.#offlineTimer);
    this.#acks.stop();
    this.#s.versions?.stop();
    await this.capture.stop();
    await Promise.allSettled([...this.#loops, ...stopping]);
    this.#writeStatus();
    this.log.info({ lastRcvd: formatTid(this.db.lastRcvdOf(this.#s.serverNode())) }, 'stopped');
    this.db.close();
    releasePidFile(this.paths.pidFile);
    await this.client.close();
    this.#s.flushLog();
  }

  status(): ClientStatus {
    return clientStatus(this.#s);
  }

  /** Follow `intersync disconnect` / `reconnect`: the flag file is the switch. */
  #checkOffline(): void {
    const offline = existsSync(this.paths.offlineFile);
    if (offline === this.#s.offline) return;
    this.#s.offline = offline;
    this.reint.setOffline(offline);
    if (offline) {
      this.log.info('disconnected on request');
      this.#s.disconnectedSince ??= this.#s.o.clock.now();
      this.#s.abort.abort();
    } else {
      this.log.info('reconnecting on request');
      this.reint.holdForStream(); // the server's records first (the reconnection sequence)
    }
    this.#s.wakeFollow.fire();
    this.#writeStatus();
  }

  #writeStatus(): void {
    writeStatus(this.#s);
  }
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
