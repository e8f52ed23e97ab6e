#!/usr/bin/env node
import { Command, CommanderError, Option } from 'commander';
import { systemClock } from '#core/clock.js';
import { parseDebug } from '#core/debug.js';
import { IntersyncError } from '#core/errors.js';
import { formatTid } from '#core/ids.js';
import { PROTOCOL_VERSION, STORE_FORMAT } from '#core/format.js';
import { readFileSync } from 'node:fs';
import { DEFAULT_FILESET } from '#journal/layout.js';
import { ATTR_SETTINGS } from '#policy/attr-policy.js';
import { cmdConfig, cmdConflicts, cmdDigest, cmdDisconnect, cmdKml, cmdMkfs, cmdReconnect, cmdResolve, cmdStatus } from './commands.js';
import { EXIT_USAGE, errorJson, errorLine, exitCodeOf, fmtBytes, parseListen } from './output.js';

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
  preserveSetid?: boolean;
  preserveOwner?: boolean;
  safeLinks?: boolean;
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

async function runDaemon(dir: string, o: RunOptions): Promise<void> {
  const debug = parseDebug(o.debug);
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
  if (o.server !== undefined) {
    if (o.secretFile === undefined) {
      throw IntersyncError.BAD_ARGUMENT('a client needs the fileset secret: --secret-file FILE', 'copy the server\'s DIR/.intermezzo/<fileset>/secret to this machine');
    }
    let secret: string;
    try {
      secret = readFileSync(o.secretFile, 'utf8').trim();
    } catch (e) {
      throw IntersyncError.IO('read secret file', o.secretFile, e);
    }
    // Loaded only for a terminal (a service's start is faster without it).
    const progress = process.stderr.isTTY ? await import('cli-progress') : null;
    const bar = progress === null ? null : new progress.SingleBar({
      format: 'first copy |{bar}| {value}/{total} files | {size} | {rate}/s | ETA {eta_formatted}',
      hideCursor: true,
    }, progress.Presets.shades_classic);
    let started = false;
    const t0 = performance.now();
    // The daemons are loaded when run: a client needs no HTTP server (fastify), other commands neither.
    const { ClientNode } = await import('#daemon/client-node.js');
    const node = await ClientNode.start({
      ...common, server: o.server, secret, replicate: o.replicate,
      settings: Object.fromEntries(ATTR_SETTINGS.filter(([, field]) => o[field] !== undefined).map(([key, field]) => [key, o[field] === true])),
      ...(o.tlsCa === undefined ? {} : { ca: o.tlsCa }),
      onProgress: (p) => {
        if (bar === null) return;
        const secs = Math.max(0.001, (performance.now() - t0) / 1000);
        const payload = { size: `${fmtBytes(p.bytes)} of ${fmtBytes(p.totalBytes)}`, rate: fmtBytes(Math.round(p.bytes / secs)) };
        if (!started) {
          bar.start(p.totalFiles, p.files, payload);
          started = true;
        } else bar.update(p.files, payload);
      },
    });
    bar?.stop();
    const c = node.status();
    if (node.created) print(`first copy: ${c.copy?.files ?? 0} files from ${node.client.url}`);
    print(`intersync: client of ${node.client.url} for fileset '${node.paths.name}' in ${node.paths.dir}${o.replicate ? ' (replicator)' : ''}`);
    print(`  node ${node.db.meta.nodeId}, last_rcvd ${c.lastRcvd}, ${node.db.lmlCount()} local records pending`);
    print(`  log ${node.logFile}; stop with Ctrl-C`);
    installStop(() => node.stop(), node.log);
    return;
  }
  const l = parseListen(o.listen);
  const { FilesetNode } = await import('#daemon/fileset-node.js');
  const node = await FilesetNode.start({
    ...common,
    ...(o.fileset === undefined ? {} : { fileset: o.fileset }),
    listen: l === null ? null : {
      ...l, tokenScope: o.tokenScope as 'fileset' | 'subtree', leaseMs: o.leaseMs, retainRecords: o.retainRecords,
      ...(o.tlsCert === undefined || o.tlsKey === undefined ? {} : { tls: { cert: o.tlsCert, key: o.tlsKey } }),
    },
  });
  // The attribute settings given on the command line are the fileset's (clients learn them at hello).
  for (const [key, field] of ATTR_SETTINGS) if (o[field] !== undefined) node.db.setMeta(key, String(o[field]));
  const c = node.capture.status();
  if (node.created) print(`created fileset '${node.paths.name}' (${node.db.meta.uuid}); secret in ${node.paths.secret}`);
  print(`intersync: serving fileset '${node.paths.name}' from ${node.paths.dir}${node.listenUrl === null ? '' : ` at ${node.listenUrl}`}`);
  print(`  node ${node.db.meta.nodeId}, last TID ${formatTid(node.db.lastTid)}, ${c.watchedDirs} directories watched`);
  if (c.lastScan !== null) print(`  start-up scan: ${c.lastScan.entries} entries, ${c.lastScan.dirty} changed while stopped, ${c.lastScan.durMs} ms`);
  if (node.listenUrl !== null) print(`  clients: intersync --server ${node.listenUrl} --secret-file <copy of ${node.paths.secret}> DIR`);
  print(`  log ${node.logFile}; stop with Ctrl-C`);
  installStop(() => node.stop(), node.log);
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
    .option('--fileset <NAME>', 'fileset to serve (default: the only one in DIR, or a new one named "default")')
    .addOption(debugOption())
    .option('--log-dir <DIR>', 'where JSON logs go (default /var/log/intersync when writable, else DIR/.intermezzo/<fileset>/log)')
    .option('--settle-ms <N>', 'quiet time (ms) before a batch of changes is journaled', positiveInt('--settle-ms'))
    .option('--listen <ADDR:PORT>', 'server: where to serve the fileset over HTTP, or "none"', '0.0.0.0:7777')
    .option('--tls-cert <FILE>', 'server: serve HTTPS with this certificate (PEM)')
    .option('--tls-key <FILE>', 'server: the certificate\'s private key (PEM)')
    .option('--token-scope <SCOPE>', 'server: write tokens per "fileset" or per top-level "subtree"', 'fileset')
    .option('--lease-ms <N>', 'server: write token lease, renewed while in use', positiveInt('--lease-ms'), 30_000)
    .option('--retain-records <N>', 'server: journal records kept for replicators that are away; past that they resync in full', positiveInt('--retain-records'), 1_000_000)
    .option('--server <URL>', 'client mode: the fileset\'s server, HOST[:PORT] or http(s)://HOST:PORT (default port 7777)')
    .option('--secret-file <FILE>', 'client: file holding the fileset secret (the server\'s DIR/.intermezzo/<fileset>/secret)')
    .option('--replicate', 'client: register as a replicator, receiving every update', false)
    .option('--tls-ca <FILE>', 'client: trust this CA (PEM) for an https server')
    .option('--preserve-setid', 'keep set-uid/set-gid bits peers send (stored as intersync config DIR preserve-setid=true; a client takes them only when the server\'s fileset says so too)')
    .option('--preserve-owner', 'as root: give objects the owners peers name (stored; a client only when the server\'s fileset says so too)')
    .option('--safe-links', 'refuse symlinks from peers whose target is absolute or leaves the tree (stored; a client skips them)')
    .addHelpText('after', [
      '',
      'Modes, owners and links from peers are a fileset policy, safe by default: set-id bits are dropped and files',
      'get this node\'s owner unless the fileset says otherwise. On the server:',
      '  intersync mkfs --preserve-setid --preserve-owner --safe-links DIR     (or: intersync config DIR preserve-setid=true)',
      'A client also needs its own consent for set-id bits and owners:',
      '  intersync --server HOST --secret-file SECRET --preserve-setid --preserve-owner DIR',
    ].join('\n'))
    .showHelpAfterError()
    .action(async (dir: string | undefined, o: RunOptions) => {
      if (dir === undefined) {
        program.help({ error: true });
        return;
      }
      await runDaemon(dir, o);
    });

  program
    .command('mkfs')
    .description('create a fileset in DIR: metadata folder, journal database, shared-uuid, secret and node id (the seeds\' mkizofs)')
    .argument('<DIR>', 'the backing directory (must exist)')
    .option('--fileset <NAME>', 'fileset name', DEFAULT_FILESET)
    .option('--force', 'replace an existing fileset\'s journal (the files in DIR are kept)', false)
    .option('--preserve-setid', 'keep set-uid/set-gid bits that peers send (default: dropped); e.g. intersync mkfs --preserve-setid DIR', false)
    .option('--preserve-owner', 'give objects the owner peers name, when running as root (default: this node\'s owner)', false)
    .option('--safe-links', 'refuse symlinks from peers whose target is absolute or leaves the tree (as rsync --safe-links)', false)
    .option('--json', 'print the result as JSON', false)
    .action((dir: string, o: { fileset: string; force: boolean; json: boolean; preserveSetid: boolean; preserveOwner: boolean; safeLinks: boolean }) => cmdMkfs(dir, o, print));

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

  program
    .command('config')
    .description(
      'show or change fileset settings: conflict-policy=keep-both|server-wins|client-wins|newest-wins|hook[:discard], conflict-hook=SCRIPT, ' +
        'preserve-setid=true|false, preserve-owner=true|false, safe-links=true|false ' +
        '(e.g. intersync config DIR preserve-setid=true; clients learn the server\'s at hello, and take set-id bits and owners only when their own setting agrees)',
    )
    .argument('<DIR>', 'the backing directory')
    .argument('[KEY=VALUE...]', 'settings to change')
    .option('--fileset <NAME>', 'fileset (default: the only one in DIR)')
    .option('--json', 'print as JSON', false)
    .action((dir: string, kv: string[], o: { fileset?: string; json: boolean }) => cmdConfig(dir, kv, o, print));

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
