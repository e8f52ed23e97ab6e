/**
 * The daemon as commands: the root command (`intersync [options] DIR`, a server, or a client with
 * --server) with one option per config key, and `join` (a client's first start from a join token).
 * Both load the settings (flag > file > fileset database > default) and hand them to run-daemon.ts.
 */
import { existsSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { IntersyncError } from '#core/errors.js';
import { isJoinToken } from '#net/protocol/join-token.js';
import { flagsGiven } from './config-cmd.js';
import { DaemonConfig } from './daemon-config.js';
import { defaultOf, fieldOf } from './config-schema.js';
import type { ConfigValue } from './config-schema.js';
import { runDaemon, type RunOptions } from './run-daemon.js';

type Print = (line: string) => void;

export function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(n)) throw IntersyncError.BAD_ARGUMENT(`${name} takes a whole number, got ${JSON.stringify(v)}`);
    return n;
  };
}

function debugOption(): Option {
  return new Option('--debug <X>', 'debug flags, a sum of 1 D_INFO, 2 D_KML, 4 D_UPCALL, 8 D_HTTP, 16 D_REINT').default('0');
}

/** The daemon's options from its effective settings (flag, else file, else fileset database, else default). */
export function optionsOf(cfg: DaemonConfig): RunOptions {
  const o: Record<string, unknown> = {};
  for (const k of cfg.keys) {
    if (k.value === null) continue;
    o[fieldOf(k.key)] = k.key === 'debug' ? String(k.value) : k.value;
  }
  // Attribute settings only when given (flag or file): otherwise the fileset's stored ones stand.
  for (const k of cfg.keys) if ((k.key === 'preserve-setid' || k.key === 'preserve-owner' || k.key === 'safe-links') && k.source !== 'flag' && k.source !== 'file') delete o[fieldOf(k.key)];
  return o as unknown as RunOptions;
}

/**
 * `intersync stauts` is a mistyped command, not a directory to serve: a DIR that does not exist, has no
 * slash and is close to a command's name is refused with the closest match.
 */
function refuseMistypedCommand(program: Command, dir: string): void {
  if (dir.includes('/') || existsSync(dir)) return;
  const names = program.commands.map((c) => c.name());
  const near = names.map((n) => ({ n, d: editDistance(dir.toLowerCase(), n) })).filter((x) => x.d <= Math.max(1, Math.floor(x.n.length / 3))).sort((a, b) => a.d - b.d);
  if (near.length === 0) return;
  throw IntersyncError.BAD_ARGUMENT(`unknown command '${dir}' (did you mean ${near[0]!.n}?)`, `intersync help lists the commands; to serve a directory of that name: intersync ./${dir}`);
}

/** Levenshtein distance, for the closest command name. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

/** The root command: its description, one option per daemon setting, help texts, and running the daemon. */
export function defineDaemonCommand(program: Command, print: Print): void {
  program
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
    .option('--settle-ms <N>', `quiet time (ms) before a batch of changes is journaled (default ${String(defaultOf('settle-ms'))}); per subtree: subtree-settle-ms in the config file`, positiveInt('--settle-ms'))
    .option('--rescan-interval-s <N>', `walk the whole tree every N seconds and journal what capture missed (default ${String(defaultOf('rescan-interval-s'))}); 0: never`, positiveInt('--rescan-interval-s'))
    .option('--listen <ADDR:PORT>', 'server: where to serve the fileset (HTTPS; plain HTTP by default on a loopback address; http:// or https:// to choose), or "none"', String(defaultOf('listen')))
    .option('--insecure-http', 'allow plain HTTP outside the loopback address (server: serve it; client: talk to it), with a warning', false)
    .option('--state-dir <DIR>', 'where secrets, the TLS key and credentials live, never in DIR (default /var/lib/intersync for root, else $XDG_STATE_HOME/intersync)')
    .option('--tls-cert <FILE>', 'server: serve HTTPS with this certificate (PEM) instead of the self-signed one')
    .option('--tls-key <FILE>', 'server: the certificate\'s private key (PEM)')
    .option('--token-scope <SCOPE>', 'server: which write token a client\'s change needs: "none" (the version check decides; writers never wait on each other), one per "fileset" or per top-level "subtree" (writers take turns)', String(defaultOf('token-scope')))
    .option('--lease-ms <N>', 'server: write token lease, renewed while in use', positiveInt('--lease-ms'), Number(defaultOf('lease-ms')))
    .option('--retain-records <N>', 'server: journal records kept for replicators that are away; past that they resync in full', positiveInt('--retain-records'), Number(defaultOf('retain-records')))
    .option('--server <URL|TOKEN>', 'client mode: a join token from intersync invite, or the server\'s https://HOST:PORT (once joined)')
    .option('--connect-timeout <SECONDS>', 'client: a first start waits for its server, retrying with backoff; give up after this long (default: wait as long as it takes)', positiveInt('--connect-timeout'))
    .option('--secret-file <FILE>', 'client: enrol with the fileset secret (the server\'s STATE/<node>/<fileset>/secret) instead of a token')
    .option('--replicate', 'client: register as a replicator, receiving every update', false)
    .option('--tls-ca <FILE>', 'client: trust this CA (PEM) for an https server')
    .option('--preserve-setid', 'keep set-uid/set-gid bits peers send (stored as intersync config DIR preserve-setid=true; a client takes them only when the server\'s fileset says so too)')
    .option('--preserve-owner', 'as root: give objects the owners peers name (stored; a client only when the server\'s fileset says so too)')
    .option('--safe-links', 'refuse symlinks from peers whose target is absolute or leaves the tree (stored; a client skips them)')
    .option('--conflict-policy <POLICY>', 'keep-both|server-wins|client-wins|newest-wins|hook[:discard] (stored; SIGHUP reloads it from the file)')
    .option('--conflict-hook <SCRIPT>', 'the script the hook policy asks (prints local, remote or both)')
    .option('--bwlimit <RATE>', 'limit content transfers (first copy, forwarded records, fetches, uploads; both directions, all peers together) to RATE bytes (not bits) per second, as rsync: k, m, g are KiB/s, MiB/s, GiB/s (e.g. 2m); 0: no limit (default)')
    .option('--versioning <MODE>', 'keep what peers overwrite or delete: off, trash (the last version of each file) or simple (--versions-keep of them); intersync versions DIR PATH lists them, intersync restore brings one back', String(defaultOf('versioning')))
    .option('--versions-keep <AGE|N>', 'with --versioning: keep versions for this long (30d, 12h, 90m) or this many per file (10)', String(defaultOf('versions-keep')))
    .option('--metrics <ADDR:PORT>', 'also serve /metrics (Prometheus text) without a credential on this address; /metrics on --listen always needs the fileset credential')
    .option('--ui', 'server: serve the dashboard at https://HOST:PORT/ui/ (login: the fileset secret or --admin-password-file)', false)
    .option('--admin-password-file <FILE>', 'server: a file holding a password that also opens the dashboard')
    .option('--dry-run', 'client: print what the first start would do in DIR (files kept, fetched, kept beside, sent) and change nothing', false)
    .option('--json', 'with --dry-run: print the plan as one JSON object', false)
    .addHelpText('after', [
      '',
      'Modes, owners and links from peers are a fileset policy, safe by default: set-id bits are dropped and files',
      'get this node\'s owner unless the fileset says otherwise. On the server:',
      '  intersync mkfs --preserve-setid --preserve-owner --safe-links DIR     (or: intersync config DIR preserve-setid=true)',
      'A client also needs its own consent for set-id bits and owners:',
      '  intersync --server HOST --secret-file SECRET --preserve-setid --preserve-owner DIR',
    ].join('\n'))
    .allowExcessArguments() // refused in the action, after a mistyped command is told apart
    .showHelpAfterError()
    .addHelpText('after', [
      '', 'Examples:',
      '  intersync /exports/site                          serve a directory (HTTPS on 7777, self-signed certificate)',
      '  intersync invite /exports/site                   print a join token for one new client',
      '  intersync join isync1-eyJ2Ijo… /imports/site     on the client: join with that token and replicate',
      '  intersync --server https://srv:7777 /imports/site   restart a client that joined before',
      '  intersync --bwlimit 2m --server https://srv:7777 /imports/site   the same, moving content at 2 MiB/s at most',
      '  intersync --server https://srv:7777 --secret-file SECRET --dry-run /var/www/site',
      '                                                   what adopting a populated web root would do (nothing changed)',
    ].join('\n'))
    .action(async (dir: string | undefined, o: RunOptions, cmd: Command) => {
      if (dir === undefined) {
        program.help({ error: true });
        return;
      }
      refuseMistypedCommand(program, dir);
      if (cmd.args.length > 1) throw IntersyncError.BAD_ARGUMENT(`too many arguments: ${cmd.args.slice(1).join(' ')}`, 'intersync serves one DIR; intersync help lists the commands');
      const cfg = DaemonConfig.load(dir, flagsGiven(cmd, o as unknown as Record<string, unknown>), o.config);
      if (o.dryRun === true) {
        const given = optionsOf(cfg);
        if (given.server === undefined) throw IntersyncError.BAD_ARGUMENT('--dry-run shows a client\'s first start: give --server', 'for a client that was disconnected: intersync reconnect DIR --dry-run');
        const { adoptDryRun } = await import('./adopt-dry-run.js');
        await adoptDryRun(dir, { ...given, json: o.json === true }, print);
        return;
      }
      await runDaemon(dir, { ...optionsOf(cfg), ...(o.config === undefined ? {} : { config: o.config }) }, cfg, print);
    });
}

/** `join TOKEN DIR`: a client's first start from a join token (then it runs as the daemon). */
export function addJoinCommand(program: Command, print: Print): void {
  program
    .command('join')
    .description('set up a client from a join token (printed by intersync invite on the server) and run it: enrol, first copy, then replicate')
    .argument('<TOKEN>', 'the join token, isync1-…')
    .argument('<DIR>', 'the client\'s backing directory: empty, already holding the files (adopted: compared with the server\'s, see intersync --help), or a client of the same fileset')
    .addOption(debugOption())
    .option('--log-dir <DIR>', 'where JSON logs go')
    .option('--state-dir <DIR>', 'where this node\'s credential goes, never in DIR (default /var/lib/intersync for root, else $XDG_STATE_HOME/intersync)')
    .option('--replicate', 'register as a replicator, receiving every update', false)
    .option('--connect-timeout <SECONDS>', 'wait for the server, retrying with backoff, at most this long (default: as long as it takes)', positiveInt('--connect-timeout'))
    .option('--insecure-http', 'allow a plain-HTTP server outside the loopback address', false)
    .option('--bwlimit <RATE>', 'limit content transfers to RATE bytes (not bits) per second: k, m, g are KiB/s, MiB/s, GiB/s (e.g. 2m)')
    .option('--versioning <MODE>', 'keep what peers overwrite or delete: off, trash or simple (default: off)')
    .option('--versions-keep <AGE|N>', 'with --versioning: for this long (30d) or this many per file (10) (default: 30d)')
    .addHelpText('after', '\nExample:\n  intersync join isync1-eyJ2Ijo… /imports/site\n  later restarts: intersync --server https://srv:7777 /imports/site')
    .action(async (token: string, dir: string, o: Partial<RunOptions>, cmd: Command) => {
      if (!isJoinToken(token)) throw IntersyncError.BAD_TOKEN('it does not start with isync1-');
      const flags = new Map<string, ConfigValue>([...flagsGiven(cmd, o as Record<string, unknown>), ['server', token], ['listen', 'none']]);
      const cfg = DaemonConfig.load(dir, flags, undefined);
      await runDaemon(dir, optionsOf(cfg), cfg, print);
    });
}
