#!/usr/bin/env node
import { Command, CommanderError, Option } from 'commander';
import { systemClock } from '#core/clock.js';
import { parseDebug } from '#core/debug.js';
import { IntersyncError } from '#core/errors.js';
import { formatTid } from '#core/ids.js';
import { PROTOCOL_VERSION, STORE_FORMAT } from '#core/format.js';
import { readFileSync } from 'node:fs';
import { DEFAULT_FILESET } from '#journal/layout.js';
import { readSecretFile } from '#journal/state-dir.js';
import { ATTR_SETTINGS } from '#policy/attr-policy.js';
import { cmdConflicts, cmdDigest, cmdDisconnect, cmdKml, cmdMkfs, cmdReconnect, cmdResolve, cmdStatus } from './commands.js';
import { EXIT_USAGE, errorJson, errorLine, exitCodeOf, fmtBytes, parseListen } from './output.js';
import { isJoinToken, parseJoinToken } from '#net/protocol/join-token.js';
import { isLoopback } from '#net/protocol/endpoint.js';
import type { ClientTrust } from '#daemon/enrolment.js';
import { resolveStateDir } from './state-dir.js';
import { addTrustCommands } from './trust.js';
import { addConfigCommand, flagsGiven } from './config-cmd.js';
import { addOpsCommands } from './ops.js';
import { DaemonConfig } from './daemon-config.js';
import { defaultOf } from './config-schema.js';
import type { ConfigValue } from './config-schema.js';

/** How often a first copy or resync not on a terminal prints a progress line. */
const PROGRESS_EVERY_MS = Number(process.env.INTERSYNC_PROGRESS_MS ?? 5000);

const print = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(n)) throw IntersyncError.BAD_ARGUMENT(`${name} takes a whole number, got ${JSON.stringify(v)}`);
    return n;
  };
}

function debugOption(): Option {
  return new Option('--debug <X>', 'debug flags, a sum of 1 D_INFO, 2 D_KML, 4 D_UPCALL, 8 D_HTTP, 16 D_REINT').default('0');
}

interface RunOptions {
  config?: string;
  fileset?: string;
  debug: string;
  logDir?: string;
  settleMs?: number;
  server?: string;
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
  ui?: boolean;
  adminPasswordFile?: string;
}

/** The daemon's options from its effective settings (flag, else file, else fileset database, else default). */
function optionsOf(cfg: DaemonConfig): RunOptions {
  const o: Record<string, unknown> = {};
  for (const k of cfg.keys) {
    if (k.value === null) continue;
    o[k.key.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase())] = k.key === 'debug' ? String(k.value) : k.value;
  }
  // Attribute settings only when given (flag or file): otherwise the fileset's stored ones stand.
  for (const k of cfg.keys) if ((k.key === 'preserve-setid' || k.key === 'preserve-owner' || k.key === 'safe-links') && k.source !== 'flag' && k.source !== 'file') delete o[k.key.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase())];
  return o as unknown as RunOptions;
}

const warn = (line: string): void => {
  process.stderr.write(`intersync: warning: ${line}\n`);
};

/** A client's server: a URL, or a join token (address, fileset, invitation, pinned certificate). */
function clientTarget(o: RunOptions): { url: string; trust: ClientTrust; uuid?: string; replicate: boolean } {
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

function installStop(stopFn: () => Promise<void>, log: { info: (o: object, m: string) => void }): void {
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

async function runDaemon(dir: string, o: RunOptions, cfg: DaemonConfig): Promise<void> {
  const debug = parseDebug(o.debug);
  // Loaded with the daemon (it brings pino); pretty on a terminal unless asked otherwise.
  const { configureLogs } = await import('#daemon/logger.js');
  configureLogs({ format: o.logFormat === 'json' || o.logFormat === 'pretty' ? o.logFormat : process.stderr.isTTY ? 'pretty' : 'json' });
  if (o.tokenScope !== 'fileset' && o.tokenScope !== 'subtree') {
    throw IntersyncError.BAD_ARGUMENT(`--token-scope ${o.tokenScope} is not fileset or subtree`);
  }
  if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) throw IntersyncError.BAD_ARGUMENT('--tls-cert and --tls-key go together');
  const common = {
    dir, debug, clock: systemClock,
    ...(o.logDir === undefined ? {} : { logDir: o.logDir }),
    ...(o.settleMs === undefined ? {} : { settleMs: o.settleMs }),
    onWarning: (err: IntersyncError) => process.stderr.write(`${errorLine(err)}\n`),
  };
  const stateDir = resolveStateDir(o.stateDir, dir, o.fileset);
  if (o.server !== undefined) {
    const target = clientTarget(o);
    // Loaded only for a terminal (a service's start is faster without it).
    const progress = process.stderr.isTTY ? await import('cli-progress') : null;
    const bar = progress === null ? null : new progress.SingleBar({
      format: 'first copy |{bar}| {value}/{total} files | {size} | {rate}/s | ETA {eta_formatted}',
      hideCursor: true,
    }, progress.Presets.shades_classic);
    let started = false;
    let lastLine = -Infinity;
    let lastFiles = -1;
    const t0 = performance.now();
    // The daemons are loaded when run: a client needs no HTTP server (fastify), other commands neither.
    const { ClientNode } = await import('#daemon/client-node.js');
    const { SiteWiring } = await import('./site-wiring.js');
    const site = new SiteWiring(o);
    const exit = new DaemonExit();
    const node = await ClientNode.start({
      ...common, server: target.url, onFatal: (e) => exit.fail(e), trust: target.trust, stateDir, replicate: target.replicate,
      ...(target.uuid === undefined ? {} : { uuid: target.uuid }),
      settings: Object.fromEntries(ATTR_SETTINGS.filter(([, field]) => o[field] !== undefined).map(([key, field]) => [key, o[field] === true])),
      ...(o.tlsCa === undefined ? {} : { ca: o.tlsCa }),
      onProgress: (p) => {
        if (bar === null) {
          // Not a terminal (a service): a line every few seconds, so its journal shows progress too.
          const t = performance.now();
          if (t - lastLine >= PROGRESS_EVERY_MS || (p.files === p.totalFiles && lastFiles !== p.files)) {
            lastLine = t;
            lastFiles = p.files;
            print(`copy: ${p.files}/${p.totalFiles} files, ${fmtBytes(p.bytes)} of ${fmtBytes(p.totalBytes)}`);
          }
          return;
        }
        const secs = Math.max(0.001, (performance.now() - t0) / 1000);
        const payload = { size: `${fmtBytes(p.bytes)} of ${fmtBytes(p.totalBytes)}`, rate: fmtBytes(Math.round(p.bytes / secs)) };
        if (!started) {
          bar.start(p.totalFiles, p.files, payload);
          started = true;
        } else bar.update(p.files, payload);
      },
    });
    bar?.stop();
    exit.started(async () => {
      await site.stop();
      await node.stop();
    });
    try {
      const c = node.status();
      if (node.created) print(`first copy: ${c.copy?.files ?? 0} files from ${node.client.url}`);
      print(`intersync: client of ${node.client.url} for fileset '${node.paths.name}' in ${node.paths.dir}${target.replicate ? ' (replicator)' : ''}`);
      print(`  node ${node.db.meta.nodeId}, last_rcvd ${c.lastRcvd}, ${node.db.lmlCount()} local records pending`);
      cfg.started(node.db, node.paths.name, node.log, o.config, true);
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
    installStop(async () => {
      await site.stop();
      await node.stop();
    }, node.log);
    return;
  }
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
    ...common, stateDir,
    ...(o.fileset === undefined ? {} : { fileset: o.fileset }),
    listen: l === null ? null : {
      http: site.http(),
      ...l, secure, tokenScope: o.tokenScope as 'fileset' | 'subtree', leaseMs: o.leaseMs, retainRecords: o.retainRecords,
      ...(o.tlsCert === undefined || o.tlsKey === undefined ? {} : { tls: { cert: o.tlsCert, key: o.tlsKey } }),
    },
  });
  exit.started(async () => {
    await site.stop();
    await node.stop();
  });
  try {
    // The fileset settings given by a flag or the file are the fileset's (clients learn them at hello).
    cfg.started(node.db, node.paths.name, node.log, o.config, false);
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
      db: node.db, dir: node.paths.dir, role: 'server', view: serverView(node, site.bytes, Date.now),
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
  installStop(async () => {
    await site.stop();
    await node.stop();
  }, node.log);
}

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return `intersync ${pkg.version} (store format ${STORE_FORMAT}, protocol ${PROTOCOL_VERSION})`;
}

function build(): Command {
  const program = new Command();
  program
    .name('intersync')
    .version(packageVersion(), '-V, --version', 'print the version (with its store format and protocol version)')
    .enablePositionalOptions()
    .description(
      'Journal every change to a directory (the KML) and keep it replicated.\n\n' +
        'Run on a directory, intersync serves its fileset (creating one with defaults when there is none),\n' +
        'journals what changed while it was stopped, then every change as it happens.',
    )
    .argument('[DIR]', 'the backing directory to serve')
    .option('--config <FILE>', 'settings file, TOML or JSON (default: /etc/intersync/<fileset>.toml, else DIR/.intermezzo/<fileset>/config.toml, written at first start); a flag wins over it')
    .option('--fileset <NAME>', 'fileset to serve (default: the only one in DIR, or a new one named "default")')
    .addOption(debugOption())
    .option('--log-dir <DIR>', 'where logs go (default /var/log/intersync when writable, else DIR/.intermezzo/<fileset>/log)')
    .option('--log-format <FORMAT>', 'json, pretty, or auto (pretty when stderr is a terminal)', String(defaultOf('log-format')))
    .option('--settle-ms <N>', 'quiet time (ms) before a batch of changes is journaled', positiveInt('--settle-ms'))
    .option('--listen <ADDR:PORT>', 'server: where to serve the fileset (HTTPS; plain HTTP by default on a loopback address; http:// or https:// to choose), or "none"', String(defaultOf('listen')))
    .option('--insecure-http', 'allow plain HTTP outside the loopback address (server: serve it; client: talk to it), with a warning', false)
    .option('--state-dir <DIR>', 'where secrets, the TLS key and credentials live, never in DIR (default /var/lib/intersync for root, else $XDG_STATE_HOME/intersync)')
    .option('--tls-cert <FILE>', 'server: serve HTTPS with this certificate (PEM) instead of the self-signed one')
    .option('--tls-key <FILE>', 'server: the certificate\'s private key (PEM)')
    .option('--token-scope <SCOPE>', 'server: write tokens per "fileset" or per top-level "subtree"', String(defaultOf('token-scope')))
    .option('--lease-ms <N>', 'server: write token lease, renewed while in use', positiveInt('--lease-ms'), Number(defaultOf('lease-ms')))
    .option('--retain-records <N>', 'server: journal records kept for replicators that are away; past that they resync in full', positiveInt('--retain-records'), Number(defaultOf('retain-records')))
    .option('--server <URL|TOKEN>', 'client mode: a join token from intersync invite, or the server\'s https://HOST:PORT (once joined)')
    .option('--secret-file <FILE>', 'client: enrol with the fileset secret (the server\'s STATE/<node>/<fileset>/secret) instead of a token')
    .option('--replicate', 'client: register as a replicator, receiving every update', false)
    .option('--tls-ca <FILE>', 'client: trust this CA (PEM) for an https server')
    .option('--preserve-setid', 'keep set-uid/set-gid bits peers send (stored as intersync config DIR preserve-setid=true; a client takes them only when the server\'s fileset says so too)')
    .option('--preserve-owner', 'as root: give objects the owners peers name (stored; a client only when the server\'s fileset says so too)')
    .option('--safe-links', 'refuse symlinks from peers whose target is absolute or leaves the tree (stored; a client skips them)')
    .option('--conflict-policy <POLICY>', 'keep-both|server-wins|client-wins|newest-wins|hook[:discard] (stored; SIGHUP reloads it from the file)')
    .option('--conflict-hook <SCRIPT>', 'the script the hook policy asks (prints local, remote or both)')
    .option('--metrics <ADDR:PORT>', 'also serve /metrics (Prometheus text) without a credential on this address; /metrics on --listen always needs the fileset credential')
    .option('--ui', 'server: serve the dashboard at https://HOST:PORT/ui/ (login: the fileset secret or --admin-password-file)', false)
    .option('--admin-password-file <FILE>', 'server: a file holding a password that also opens the dashboard')
    .addHelpText('after', [
      '',
      'Modes, owners and links from peers are a fileset policy, safe by default: set-id bits are dropped and files',
      'get this node\'s owner unless the fileset says otherwise. On the server:',
      '  intersync mkfs --preserve-setid --preserve-owner --safe-links DIR     (or: intersync config DIR preserve-setid=true)',
      'A client also needs its own consent for set-id bits and owners:',
      '  intersync --server HOST --secret-file SECRET --preserve-setid --preserve-owner DIR',
    ].join('\n'))
    .showHelpAfterError()
    .addHelpText('after', [
      '', 'Examples:',
      '  intersync /exports/site                          serve a directory (HTTPS on 7777, self-signed certificate)',
      '  intersync invite /exports/site                   print a join token for one new client',
      '  intersync join isync1-eyJ2Ijo… /imports/site     on the client: join with that token and replicate',
      '  intersync --server https://srv:7777 /imports/site   restart a client that joined before',
    ].join('\n'))
    .action(async (dir: string | undefined, o: RunOptions, cmd: Command) => {
      if (dir === undefined) {
        program.help({ error: true });
        return;
      }
      const cfg = DaemonConfig.load(dir, flagsGiven(cmd, o as unknown as Record<string, unknown>), o.config);
      await runDaemon(dir, { ...optionsOf(cfg), ...(o.config === undefined ? {} : { config: o.config }) }, cfg);
    });

  program
    .command('mkfs')
    .description('create a fileset in DIR: metadata folder, journal database, shared-uuid and node id (the seeds\' mkizofs); its secret and self-signed certificate go to the state directory')
    .argument('<DIR>', 'the backing directory (must exist)')
    .option('--fileset <NAME>', 'fileset name', DEFAULT_FILESET)
    .option('--force', 'replace an existing fileset\'s journal (the files in DIR are kept)', false)
    .option('--state-dir <DIR>', 'where the secret and TLS key go, never in DIR (default /var/lib/intersync for root, else $XDG_STATE_HOME/intersync)')
    .option('--tls-cert <FILE>', 'the server will serve this certificate: make no self-signed one')
    .option('--tls-key <FILE>', 'its private key')
    .option('--preserve-setid', 'keep set-uid/set-gid bits that peers send (default: dropped); e.g. intersync mkfs --preserve-setid DIR', false)
    .option('--preserve-owner', 'give objects the owner peers name, when running as root (default: this node\'s owner)', false)
    .option('--safe-links', 'refuse symlinks from peers whose target is absolute or leaves the tree (as rsync --safe-links)', false)
    .option('--json', 'print the result as JSON', false)
    .action((dir: string, o: { fileset: string; force: boolean; json: boolean; stateDir?: string; tlsCert?: string; preserveSetid: boolean; preserveOwner: boolean; safeLinks: boolean }) =>
      cmdMkfs(dir, { ...o, stateDir: resolveStateDir(o.stateDir) }, print));

  program
    .command('join')
    .description('set up a client from a join token (printed by intersync invite on the server) and run it: enrol, first copy, then replicate')
    .argument('<TOKEN>', 'the join token, isync1-…')
    .argument('<DIR>', 'the client\'s backing directory (empty, or a client of the same fileset)')
    .addOption(debugOption())
    .option('--log-dir <DIR>', 'where JSON logs go')
    .option('--state-dir <DIR>', 'where this node\'s credential goes, never in DIR (default /var/lib/intersync for root, else $XDG_STATE_HOME/intersync)')
    .option('--replicate', 'register as a replicator, receiving every update', false)
    .option('--insecure-http', 'allow a plain-HTTP server outside the loopback address', false)
    .addHelpText('after', '\nExample:\n  intersync join isync1-eyJ2Ijo… /imports/site\n  later restarts: intersync --server https://srv:7777 /imports/site')
    .action(async (token: string, dir: string, o: Partial<RunOptions>, cmd: Command) => {
      if (!isJoinToken(token)) throw IntersyncError.BAD_TOKEN('it does not start with isync1-');
      const flags = new Map<string, ConfigValue>([...flagsGiven(cmd, o as Record<string, unknown>), ['server', token], ['listen', 'none']]);
      const cfg = DaemonConfig.load(dir, flags, undefined);
      await runDaemon(dir, optionsOf(cfg), cfg);
    });

  program
    .command('kml')
    .description('print the journal, one line per record, oldest first (TIDs as 0x%016x)')
    .argument('<DIR>', 'the backing directory')
    .option('--fileset <NAME>', 'fileset (default: the only one in DIR)')
    .option('--since <TID>', 'only records after this TID (0x… or decimal)')
    .option('--json', 'one JSON object per line', false)
    .action((dir: string, o: { fileset?: string; since?: string; json: boolean }) => cmdKml(dir, o, print));

  program
    .command('digest')
    .description('print the fileset\'s state digest, as journaled; with --scan, recomputed from the files on disk')
    .argument('<DIR>', 'the backing directory')
    .option('--fileset <NAME>', 'fileset (default: the only one in DIR)')
    .option('--scan', 'recompute from disk (reads every file)', false)
    .option('--json', 'print as JSON', false)
    .action((dir: string, o: { fileset?: string; scan: boolean; json: boolean }) => cmdDigest(dir, o, print));

  program
    .command('status')
    .description('show the fileset, its daemon, journal position, capture state and warnings')
    .argument('<DIR>', 'the backing directory')
    .option('--fileset <NAME>', 'fileset (default: the only one in DIR)')
    .option('--json', 'print as JSON', false)
    .action((dir: string, o: { fileset?: string; json: boolean }) => cmdStatus(dir, o, print));

  program
    .command('disconnect')
    .description('take a client offline on purpose (a laptop leaving): it keeps journaling local changes to its LML')
    .argument('<DIR>', 'the client\'s backing directory')
    .option('--fileset <NAME>', 'fileset (default: the only one in DIR)')
    .option('--json', 'print as JSON', false)
    .action((dir: string, o: { fileset?: string; json: boolean }) => cmdDisconnect(dir, o, print));

  program
    .command('reconnect')
    .description('bring a disconnected client back: fetch what it missed, resolve conflicts, reintegrate its LML')
    .argument('<DIR>', 'the client\'s backing directory')
    .option('--fileset <NAME>', 'fileset (default: the only one in DIR)')
    .option('--json', 'print as JSON', false)
    .action((dir: string, o: { fileset?: string; json: boolean }) => cmdReconnect(dir, o, print));

  addConfigCommand(program, print);

  program
    .command('conflicts')
    .description('list the conflicts met on reconnection: open ones (a version kept beside the name), --all for every one')
    .argument('<DIR>', 'the backing directory')
    .option('--fileset <NAME>', 'fileset (default: the only one in DIR)')
    .option('--all', 'resolved ones too', false)
    .option('--json', 'one JSON object per line', false)
    .action((dir: string, o: { fileset?: string; all: boolean; json: boolean }) => cmdConflicts(dir, o, print));

  program
    .command('resolve')
    .description('settle an open conflict by hand: --keep local (the kept copy replaces the name), remote (the copy goes), both')
    .argument('<DIR>', 'the backing directory')
    .argument('<PATH>', 'the conflicting name, or its kept copy, relative to DIR')
    .requiredOption('--keep <WHICH>', 'local, remote or both')
    .option('--fileset <NAME>', 'fileset (default: the only one in DIR)')
    .option('--json', 'print as JSON', false)
    .action((dir: string, path: string, o: { fileset?: string; keep: string; json: boolean }) => cmdResolve(dir, path, o, print));

  addTrustCommands(program, print);
  addOpsCommands(program, print);

  for (const c of [program, ...program.commands]) {
    c.exitOverride();
    c.configureOutput({ writeErr: (s) => process.stderr.write(s) });
  }
  return program;
}

async function main(argv: string[]): Promise<void> {
  // `intersync kml DIR | head` closes the pipe early: that is the reader's choice, not an error.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
  const json = argv.includes('--json');
  try {
    await build().parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version exit 0; usage errors were already printed by commander.
      process.exitCode = e.exitCode === 0 ? 0 : EXIT_USAGE;
      return;
    }
    process.stderr.write(`${json ? errorJson(e) : errorLine(e)}\n`);
    process.exitCode = exitCodeOf(e);
  }
}

await main(process.argv);
