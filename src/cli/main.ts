#!/usr/bin/env node
/**
 * The entry point: builds the command line from its groups (the daemon and `join` in daemon-cmd.ts,
 * fileset commands in fileset-cmds.ts, config, trust and site operations in their own files), parses
 * argv and turns an error into one line and an exit code. The only place that reads argv or sets the
 * exit code.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { PROTOCOL_VERSION, STORE_FORMAT } from '#core/format.js';
import { EXIT_USAGE, errorJson, errorLine, exitCodeOf } from './output.js';
import { addJoinCommand, defineDaemonCommand } from './daemon-cmd.js';
import { addConflictCommands, addJournalCommands, addLinkCommands, addMkfsCommand } from './fileset-cmds.js';
import { addConfigCommand } from './config-cmd.js';
import { addTrustCommands } from './trust.js';
import { addOpsCommands } from './ops.js';
import { addVersionCommands } from './version-cmds.js';
import { addMountCommands } from './mount-cmd.js';
import { addMirrorCommands } from './mirror-cmds.js';

const print = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

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
    .helpCommand('help [COMMAND]', 'show help for a command, e.g. intersync help status');
  // The order here is the order of `intersync --help`.
  defineDaemonCommand(program, print);
  addMkfsCommand(program, print);
  addJoinCommand(program, print);
  addJournalCommands(program, print);
  addLinkCommands(program, print);
  addConfigCommand(program, print);
  addConflictCommands(program, print);
  addVersionCommands(program, print);
  addTrustCommands(program, print);
  addOpsCommands(program, print);
  addMountCommands(program, print);
  addMirrorCommands(program, print);

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
