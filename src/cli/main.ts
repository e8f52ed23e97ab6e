#!/usr/bin/env node
import { Command, CommanderError, Option } from 'commander';
import { systemClock } from '#core/clock.js';
import { parseDebug } from '#core/debug.js';
import { IntersyncError } from '#core/errors.js';
import { formatTid } from '#core/ids.js';
import { FilesetNode } from '#daemon/fileset-node.js';
import { DEFAULT_FILESET } from '#journal/layout.js';
import { cmdDigest, cmdKml, cmdMkfs, cmdStatus } from './commands.js';
import { EXIT_USAGE, errorJson, errorLine, exitCodeOf } from './output.js';

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

async function runDaemon(dir: string, o: { fileset?: string; debug: string; logDir?: string; settleMs?: number }): Promise<void> {
  const debug = parseDebug(o.debug);
  const node = await FilesetNode.start({
    dir, debug, clock: systemClock,
    ...(o.fileset === undefined ? {} : { fileset: o.fileset }),
    ...(o.logDir === undefined ? {} : { logDir: o.logDir }),
    ...(o.settleMs === undefined ? {} : { settleMs: o.settleMs }),
    onWarning: (err) => process.stderr.write(`${errorLine(err)}\n`),
  });
  const c = node.capture.status();
  if (node.created) print(`created fileset '${node.paths.name}' (${node.db.meta.uuid}); secret in ${node.paths.secret}`);
  print(`intersync: serving fileset '${node.paths.name}' from ${node.paths.dir}`);
  print(`  node ${node.db.meta.nodeId}, last TID ${formatTid(node.db.lastTid)}, ${c.watchedDirs} directories watched`);
  if (c.lastScan !== null) print(`  start-up scan: ${c.lastScan.entries} entries, ${c.lastScan.dirty} changed while stopped, ${c.lastScan.durMs} ms`);
  print(`  log ${node.logFile}; stop with Ctrl-C`);
  let stopping = false;
  const stop = (sig: string): void => {
    if (stopping) return;
    stopping = true;
    node.log.info({ signal: sig }, 'signal');
    node.stop().then(
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

function build(): Command {
  const program = new Command();
  program
    .name('intersync')
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
    .option('--settle-ms <N>', 'quiet time before a batch of changes is journaled', positiveInt('--settle-ms'))
    .showHelpAfterError()
    .action(async (dir: string | undefined, o: { fileset?: string; debug: string; logDir?: string; settleMs?: number }) => {
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
    .option('--json', 'print the result as JSON', false)
    .action((dir: string, o: { fileset: string; force: boolean; json: boolean }) => cmdMkfs(dir, o, print));

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

  for (const c of [program, ...program.commands]) {
    c.exitOverride();
    c.configureOutput({ writeErr: (s) => process.stderr.write(s) });
  }
  return program;
}

async function main(argv: string[]): Promise<void> {
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
