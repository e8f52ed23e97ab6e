/**
 * Running the daemon from its effective settings: a server of DIR's fileset, or (with a server URL or a
 * join token) a client. The daemons are loaded only here, when one runs: a client needs no HTTP server
 * (fastify), the other commands neither.
 */
import { systemClock } from '#core/clock.js';
import { parseDebug } from '#core/debug.js';
import { IntersyncError } from '#core/errors.js';
import { formatTid } from '#core/ids.js';
import { readSecretFile } from '#journal/state-dir.js';
import { ATTR_SETTINGS } from '#policy/attr-policy.js';
import { TOKEN_SCOPE_MODES } from '#policy/token-table.js';
import { isJoinToken, parseJoinToken } from '#net/protocol/join-token.js';
import { isLoopback } from '#net/protocol/endpoint.js';
import { RateLimit, parseRate } from '#net/rate-limit.js';
import type { Logger } from 'pino';
import type { Capture } from '#presto/capture.js';
import type { ClientTrust } from '#daemon/enrolment.js';
import type { LogFormat } from '#daemon/log-shaper.js';
import type { NodeLogs } from '#daemon/logger.js';
import { errorLine, parseListen } from './output.js';
import { resolveStateDir } from './state-dir.js';
import { daemonCopyReporter } from './copy-progress.js';
import { watchWork } from './work-progress.js';
import type { DaemonConfig } from './daemon-config.js';
import { versioningSettings, type VersioningSettings } from '#apply/versions.js';

type Print = (line: string) => void;

/** The daemon's options, as commander names them (one per config key). */
export interface RunOptions {
  config?: string;
  fileset?: string;
  debug: string;
  logDir?: string;
  settleMs?: number;
  rescanIntervalS?: number;
  subtreeSettleMs?: Record<string, number>;
  ignore?: string[];
  server?: string;
  connectTimeout?: number;
  secretFile?: string;
  replicate: boolean;
  listen: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  tokenScope: string;
  leaseMs: number;
  retainRecords: number;
  stateDir?: string;
  insecureHttp: boolean;
  preserveSetid?: boolean;
  preserveOwner?: boolean;
  safeLinks?: boolean;
  conflictPolicy?: string;
  conflictHook?: string;
  logFormat?: string;
  metrics?: string;
  versioning?: string;
  versionsKeep?: string;
  ui?: boolean;
  adminPasswordFile?: string;
  bwlimit?: string;
  /** Root command only: print the first start's plan (cli/adopt-dry-run.ts) instead of running. */
  dryRun?: boolean;
  json?: boolean;
}

/** SIGHUP with new `ignore` patterns in the config: capture rescans under them (see WatchCapture#ignoreChanged). */
function liveIgnore(node: { ignore: { setConfig(p: readonly string[]): boolean }; capture: { ignoreChanged(): void } }, key: string, v: unknown): void {
  if (key === 'ignore' && node.ignore.setConfig(Array.isArray(v) ? (v as string[]) : [])) node.capture.ignoreChanged();
}

const warn = (line: string): void => {
  process.stderr.write(`intersync: warning: ${line}\n`);
};

/** The log format asked for: json or pretty as given; auto (or nothing) is pretty on a terminal, else JSON. */
export function logFormatOf(asked: string | undefined, tty: boolean): LogFormat {
  return asked === 'json' || asked === 'pretty' ? asked : tty ? 'pretty' : 'json';
}

/** A client's server: a URL, or a join token (address, fileset, invitation, pinned certificate). */
export function clientTarget(o: Pick<RunOptions, 'server' | 'secretFile' | 'replicate' | 'insecureHttp'>): { url: string; trust: ClientTrust; uuid?: string; replicate: boolean } {
  let url = o.server!;
  let trust: ClientTrust = {};
  let uuid: string | undefined;
  let replicate = o.replicate;
  if (isJoinToken(url)) {
    const t = parseJoinToken(url);
    if (t.expires <= Date.now()) warn(`the join token expired at ${new Date(t.expires).toISOString()}; the server refuses it unless this node enrolled before`);
    url = t.url;
    uuid = t.uuid;
    replicate ||= t.replicate;
    trust = { invite: t.secret, ...(t.fingerprint === null ? {} : { pin: t.fingerprint }) };
  }
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(url)?.[1];
  if (scheme !== undefined && scheme.toLowerCase() !== 'http' && scheme.toLowerCase() !== 'https') {
    throw IntersyncError.BAD_ARGUMENT(`--server ${url}: intersync talks https:// (or http:// on a trusted network), not ${scheme}://`,
      'for example --server https://srv.example:7777, or a join token from intersync invite');
  }
  if (o.secretFile !== undefined) {
    const fetch = 'copy the server\'s fileset secret (intersync mkfs on the server prints its path) to this machine, mode 600, or join with a token from intersync invite';
    const secret = readSecretFile(o.secretFile, 'the --secret-file', fetch);
    if (secret === undefined) throw IntersyncError.NO_CREDENTIAL('the --secret-file', o.secretFile, 'does not exist', fetch);
    trust = { ...trust, secret };
  }
  const host = /^https?:\/\//.test(url) ? new URL(url).hostname : url.replace(/:[0-9]+$/, '');
  if (!/^https:/.test(url) && !isLoopback(host)) {
    if (!o.insecureHttp) throw IntersyncError.INSECURE_HTTP(`--server ${url}`);
    warn(`talking to ${url} over plain HTTP (--insecure-http): the credentials cross the network in clear text`);
  }
  return { url, trust, ...(uuid === undefined ? {} : { uuid }), replicate };
}

function installStop(stopFn: () => Promise<void>, log: { info: (o: object, m: string) => void }): (why: string) => void {
  let stopping = false;
  const stop = (sig: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal: sig }, 'signal');
    stopFn().then(
      () => process.exit(0),
      (e: unknown) => {
        process.stderr.write(`${errorLine(e)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  return stop;
}

/** What the running node offers a part attached to it (cli/mount-cmd.ts: the filter mount). */
export interface AttachedNode {
  readonly capture: Capture;
  readonly log: Logger;
  readonly paths: { readonly dir: string; readonly name: string };
}

/**
 * A part run with the daemon, started once its node runs (before it says it is serving) and stopped before
 * it: `attach` gets the node and a way to stop the daemon, and returns its own stop.
 */
export interface DaemonExtras {
  readonly attach?: (node: AttachedNode, stopDaemon: (why: string) => void) => Promise<() => Promise<void>>;
}

/**
 * The end of a daemon that cannot go on: its credential is gone (the node's `onFatal`), or a step after
 * its start failed. The error goes to stderr as one line, the node is stopped (at most 10 s) and the
 * process exits 1. Before this such a failure printed `[INTERNAL]` and left the process running, holding
 * its watches and journaling nothing. A failure reported before the node is known waits for it.
 */
class DaemonExit {
  #stop: (() => Promise<void>) | null = null;
  #pending: unknown = undefined;
  #failed = false;

  started(stop: () => Promise<void>): void {
    this.#stop = stop;
    if (this.#pending !== undefined) this.fail(this.#pending);
  }

  fail(e: unknown): void {
    if (this.#stop === null) {
      this.#pending ??= e;
      return;
    }
    if (this.#failed) return;
    this.#failed = true;
    process.stderr.write(`${errorLine(e)}\n`);
    setTimeout(() => process.exit(1), 10_000).unref();
    this.#stop().catch(() => undefined).finally(() => process.exit(1));
  }
}

/**
 * Test hook (test/big-start-kill.test.ts): INTERSYNC_TEST_JOURNAL_RUN_MS=N waits N ms before each run of a first
 * journaling, so that a test can see it half-way (and kill it there) whatever the machine's speed.
 */
function journalRunDelay(): { beforeJournalRun?: () => Promise<void> } {
  const ms = Number(process.env.INTERSYNC_TEST_JOURNAL_RUN_MS ?? '0');
  if (!Number.isFinite(ms) || ms <= 0) return {};
  return { beforeJournalRun: () => new Promise((r) => setTimeout(r, ms)) };
}

interface Common {
  readonly dir: string;
  readonly debug: number;
  readonly clock: typeof systemClock;
  readonly logDir?: string;
  /** The node's log, made here and given to it (the node no longer makes its own). */
  readonly logs: NodeLogs;
  readonly settleMs?: number;
  readonly rescanMs?: number;
  readonly versioning?: VersioningSettings;
  readonly subtreeSettleMs?: Readonly<Record<string, number>>;
  readonly ignore?: readonly string[];
  readonly onWarning: (err: IntersyncError) => void;
}

export async function runDaemon(dir: string, o: RunOptions, cfg: DaemonConfig, print: Print, extras: DaemonExtras = {}): Promise<void> {
  const debug = parseDebug(o.debug);
  // Loaded with the daemon (it brings pino); pretty on a terminal unless asked otherwise.
  const { configureLogs, fileLogs } = await import('#daemon/logger.js');
  configureLogs({ format: logFormatOf(o.logFormat, process.stderr.isTTY) });
  if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) throw IntersyncError.BAD_ARGUMENT('--tls-cert and --tls-key go together');
  const common: Common = {
    dir, debug, clock: systemClock, logs: fileLogs({ logDir: o.logDir, debug }),
    ...(o.logDir === undefined ? {} : { logDir: o.logDir }),
    ...(o.settleMs === undefined ? {} : { settleMs: o.settleMs }),
    ...(o.rescanIntervalS === undefined ? {} : { rescanMs: o.rescanIntervalS * 1000 }),
    ...(o.versioning === undefined || o.versioning === 'off' ? {} : { versioning: versioningSettings(o.versioning, o.versionsKeep ?? '30d') }),
    ...(o.subtreeSettleMs === undefined ? {} : { subtreeSettleMs: o.subtreeSettleMs }),
    ...(o.ignore === undefined ? {} : { ignore: o.ignore }),
    onWarning: (err: IntersyncError) => process.stderr.write(`${errorLine(err)}\n`),
  };
  const stateDir = resolveStateDir(o.stateDir, dir, o.fileset);
  // One bucket for the whole process: every transfer of this node shares the rate.
  const rate = o.bwlimit === undefined ? null : parseRate(o.bwlimit);
  const bw = rate === null ? null : new RateLimit(rate);
  if (o.server !== undefined) await runClient(o, cfg, common, stateDir, print, bw, extras);
  else await runServer(o, cfg, common, stateDir, print, bw, extras);
}

async function runClient(o: RunOptions, cfg: DaemonConfig, common: Common, stateDir: string, print: Print, bwlimit: RateLimit | null, extras: DaemonExtras): Promise<void> {
  const target = clientTarget(o);
  const copyShown = await daemonCopyReporter(print);
  // A copy in progress has the terminal for its bar (watchWork waits meanwhile).
  let copying = false;
  const progress: typeof copyShown = {
    begin: (k) => {
      copying = true;
      copyShown.begin(k);
    },
    progress: (p) => copyShown.progress(p),
    end: () => {
      copying = false;
      copyShown.end();
    },
  };
  const { ClientNode } = await import('#daemon/client-node.js');
  const { SiteWiring } = await import('./site-wiring.js');
  const site = new SiteWiring(o);
  const exit = new DaemonExit();
  const node = await ClientNode.start({
    ...common, metrics: site.prom, server: target.url, onFatal: (e) => exit.fail(e), trust: target.trust, stateDir, replicate: target.replicate,
    ...(target.uuid === undefined ? {} : { uuid: target.uuid }),
    settings: Object.fromEntries(ATTR_SETTINGS.filter(([, field]) => o[field] !== undefined).map(([key, field]) => [key, o[field] === true])),
    ...(o.tlsCa === undefined ? {} : { ca: o.tlsCa }),
    copyObserver: progress, bwlimit,
    ...(o.conflictPolicy === undefined ? {} : { conflictPolicy: o.conflictPolicy }),
    onAdopted: (s) => print(`adopted ${common.dir}: ${s.kept.files} files kept without a transfer, ${s.fetched.files} fetched, ${s.keptBeside} kept beside, ${s.savedAside} saved aside, ${s.sent.files} to send (policy ${s.policy})`),
    ...(o.connectTimeout === undefined ? {} : { connectTimeoutMs: o.connectTimeout * 1000 }),
    onWaiting: (err, waitMs) => warn(`${err.message}; waiting for the server, next try in ${(waitMs / 1000).toFixed(1)} s${o.connectTimeout === undefined ? ' (--connect-timeout to give up)' : ''}`),
  });
  // Large files moving and long reintegrations: a bar on a terminal, else a line every few seconds.
  const stopWork = await watchWork(print, () => {
    const r = node.reint.status();
    return { transfers: node.transfers.current(), reint: { pending: r.pending, sent: r.sent }, connected: node.status().connected };
  }, () => copying);
  let detach: (() => Promise<void>) | null = null;
  let requestStop: (why: string) => void = (why) => exit.fail(new Error(why));
  const stop = async (): Promise<void> => {
    await detach?.();
    stopWork();
    await site.stop();
    await node.stop();
  };
  exit.started(stop);
  try {
    if (extras.attach !== undefined) detach = await extras.attach(node, (why) => requestStop(why));
    const c = node.status();
    if (node.created) print(`first copy: ${c.copy?.files ?? 0} files from ${node.client.url}`);
    print(`intersync: client of ${node.client.url} for fileset '${node.paths.name}' in ${node.paths.dir}${target.replicate ? ' (replicator)' : ''}`);
    print(`  node ${node.db.meta.nodeId}, last_rcvd ${c.lastRcvd}, ${node.db.lmlCount()} local records pending`);
    cfg.started(node.db, node.paths.name, node.log, o.config, true, (k, v) => liveIgnore(node, k, v));
    const { clientView } = await import('#daemon/observe.js');
    const observeUrl = await site.started({
      db: node.db, dir: node.paths.dir, role: 'client', view: clientView(node), tokens: () => [],
      secrets: target.trust.secret === undefined ? [] : [target.trust.secret], withUi: o.ui === true,
    });
    if (observeUrl !== null) print(`  metrics ${observeUrl}/metrics${o.ui === true ? `; dashboard ${observeUrl}/ui/` : ''}`);
    print(`  config ${cfg.file ?? '(none)'}`);
    print(`  log ${node.logFile}; stop with Ctrl-C`);
  } catch (e) {
    exit.fail(e);
    return;
  }
  requestStop = installStop(stop, node.log);
}

async function runServer(o: RunOptions, cfg: DaemonConfig, common: Common, stateDir: string, print: Print, bwlimit: RateLimit | null, extras: DaemonExtras): Promise<void> {
  const tokenScope = TOKEN_SCOPE_MODES.find((m) => m === o.tokenScope);
  if (tokenScope === undefined) throw IntersyncError.BAD_ARGUMENT(`--token-scope ${o.tokenScope} is not one of ${TOKEN_SCOPE_MODES.join(', ')}`);
  const scheme = /^(https?):\/\//.exec(o.listen)?.[1];
  const l = parseListen(o.listen.replace(/^https?:\/\//, ''));
  if (scheme === 'http' && o.tlsCert !== undefined) throw IntersyncError.BAD_ARGUMENT('--listen http://… and --tls-cert contradict each other');
  // TLS unless asked otherwise; plain HTTP by default only on a loopback address, where nothing leaves the machine.
  const secure = scheme === 'https' || o.tlsCert !== undefined || (scheme === undefined && l !== null && !isLoopback(l.host) && !o.insecureHttp);
  if (l !== null && !secure && !isLoopback(l.host)) {
    if (!o.insecureHttp) throw IntersyncError.INSECURE_HTTP(`--listen ${o.listen}`);
    warn(`serving plain HTTP on ${l.host} (--insecure-http): secrets and credentials cross the network in clear text`);
  }
  const { FilesetNode } = await import('#daemon/fileset-node.js');
  const { SiteWiring } = await import('./site-wiring.js');
  const site = new SiteWiring(o);
  const exit = new DaemonExit();
  const node = await FilesetNode.start({
    ...common, metrics: site.prom, stateDir, ...journalRunDelay(),
    ...(o.fileset === undefined ? {} : { fileset: o.fileset }),
    listen: l === null ? null : {
      http: site.http(),
      ...l, secure, tokenScope, leaseMs: o.leaseMs, retainRecords: o.retainRecords, bwlimit,
      ...(o.tlsCert === undefined || o.tlsKey === undefined ? {} : { tls: { cert: o.tlsCert, key: o.tlsKey } }),
    },
  });
  const stopWork = await watchWork(print, () => ({ transfers: node.server?.transfers.current() ?? [], reint: null, connected: true }), () => false);
  let detach: (() => Promise<void>) | null = null;
  let requestStop: (why: string) => void = (why) => exit.fail(new Error(why));
  const stop = async (): Promise<void> => {
    await detach?.();
    stopWork();
    await site.stop();
    await node.stop();
  };
  exit.started(stop);
  try {
    if (extras.attach !== undefined) detach = await extras.attach(node, (why) => requestStop(why));
    // The fileset settings given by a flag or the file are the fileset's (clients learn them at hello).
    cfg.started(node.db, node.paths.name, node.log, o.config, false, (k, v) => liveIgnore(node, k, v));
    const c = node.capture.status();
    if (node.created) print(`created fileset '${node.paths.name}' (${node.db.meta.uuid})`);
    if (node.secretMoved) warn(`the fileset secret was inside the served tree; moved to ${node.state.secret}`);
    print(`intersync: serving fileset '${node.paths.name}' from ${node.paths.dir}${node.listenUrl === null ? '' : ` at ${node.listenUrl}`}`);
    print(`  node ${node.db.meta.nodeId}, last TID ${formatTid(node.db.lastTid)}, ${c.watchedDirs} directories watched`);
    if (c.lastScan !== null) print(`  start-up scan: ${c.lastScan.entries} entries, ${c.lastScan.dirty} changed while stopped, ${c.lastScan.durMs} ms`);
    print(`  state ${node.state.dir}${node.fingerprint === null ? '' : `; certificate ${node.fingerprint}`}`);
    if (node.listenUrl !== null) print(`  clients: intersync invite ${node.paths.dir}, then on the client: intersync join TOKEN DIR`);
    const { serverView } = await import('#daemon/observe.js');
    const observeUrl = await site.started({
      db: node.db, dir: node.paths.dir, role: 'server', view: serverView(node, Date.now),
      tokens: () => node.server?.tokens.grants(Date.now()) ?? [], secrets: [node.secret], withUi: false,
    });
    if (node.listenUrl !== null) print(`  metrics ${node.listenUrl}/metrics (with the credential)${o.ui === true ? `; dashboard ${node.listenUrl}/ui/` : ''}`);
    if (observeUrl !== null) print(`  metrics ${observeUrl}/metrics (no credential)`);
    print(`  config ${cfg.file ?? '(none)'}`);
    print(`  log ${node.logFile}; stop with Ctrl-C`);
  } catch (e) {
    exit.fail(e);
    return;
  }
  requestStop = installStop(stop, node.log);
}
