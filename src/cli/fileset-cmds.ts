/**
 * The commands that read or act on one fileset directory, defined per group (their work is in
 * commands.ts): `mkfs`; the journal (`kml`, `digest`, `status`); a client's link (`disconnect`,
 * `reconnect`); conflicts (`conflicts`, `resolve`).
 */
import type { Command } from 'commander';
import { DEFAULT_FILESET } from '#journal/layout.js';
import { cmdConflicts, cmdDigest, cmdKml, cmdMkfs, cmdResolve, cmdStatus } from './commands.js';
import { cmdDisconnect, cmdReconnect } from './link-cmds.js';
import { positiveInt } from './daemon-cmd.js';
import { resolveStateDir } from './state-dir.js';

type Print = (line: string) => void;

const FILESET_HELP = 'fileset (default: the only one in DIR)';

export function addMkfsCommand(program: Command, print: Print): void {
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
    .addHelpText('after', '\nExamples:\n  intersync mkfs /exports/site                     a fileset with default settings\n  intersync mkfs --safe-links --json /exports/site   refuse absolute symlinks from peers; print as JSON')
    .action((dir: string, o: { fileset: string; force: boolean; json: boolean; stateDir?: string; tlsCert?: string; preserveSetid: boolean; preserveOwner: boolean; safeLinks: boolean }) =>
      cmdMkfs(dir, { ...o, stateDir: resolveStateDir(o.stateDir) }, print));
}

/** `kml`, `digest`, `status`: what the journal and the running daemon say. */
export function addJournalCommands(program: Command, print: Print): void {
  program
    .command('kml')
    .description('print the journal, one line per record, oldest first (TIDs as 0x%016x)')
    .argument('<DIR>', 'the backing directory')
    .option('--fileset <NAME>', FILESET_HELP)
    .option('--since <TID>', 'only records after this TID (0x… or decimal)')
    .option('--json', 'one JSON object per line', false)
    .addHelpText('after', '\nExamples:\n  intersync kml /exports/site                      the whole journal\n  intersync kml --since 0x0000000000000100 --json /exports/site | jq .path   records after a TID, for a script')
    .action((dir: string, o: { fileset?: string; since?: string; json: boolean }) => cmdKml(dir, o, print));

  program
    .command('digest')
    .description('print the fileset\'s state digest, as journaled; with --scan, recomputed from the files on disk')
    .argument('<DIR>', 'the backing directory')
    .option('--fileset <NAME>', FILESET_HELP)
    .option('--scan', 'recompute from disk (reads every file)', false)
    .option('--json', 'print as JSON', false)
    .addHelpText('after', '\nExamples:\n  intersync digest /exports/site                   the state digest as journaled (equal on nodes that agree)\n  intersync digest --scan /exports/site            recomputed from the files: equal to the above when nothing is left unjournaled')
    .action((dir: string, o: { fileset?: string; scan: boolean; json: boolean }) => cmdDigest(dir, o, print));

  program
    .command('status')
    .description('show the fileset, its daemon, journal position, capture state and warnings')
    .argument('<DIR>', 'the backing directory')
    .option('--fileset <NAME>', FILESET_HELP)
    .option('--json', 'print as JSON', false)
    .addHelpText('after', '\nExamples:\n  intersync status /imports/site                   connection, lag, pending records, conflicts, stuck or not\n  intersync status --json /imports/site | jq .client.lagRecords')
    .action((dir: string, o: { fileset?: string; json: boolean }) => cmdStatus(dir, o, print));
}

/** `disconnect`, `reconnect`: a client leaving and coming back on purpose. */
export function addLinkCommands(program: Command, print: Print): void {
  program
    .command('disconnect')
    .description('take a client offline on purpose (a laptop leaving): it keeps journaling local changes to its LML')
    .argument('<DIR>', 'the client\'s backing directory')
    .option('--fileset <NAME>', FILESET_HELP)
    .option('--json', 'print as JSON', false)
    .addHelpText('after', '\nExamples:\n  intersync disconnect ~/site                      work offline (a laptop leaving); intersync reconnect ~/site comes back')
    .action((dir: string, o: { fileset?: string; json: boolean }) => cmdDisconnect(dir, o, print));

  program
    .command('reconnect')
    .description('bring a disconnected client back: fetch what it missed, resolve conflicts, reintegrate its LML; waits for the outcome and prints it')
    .argument('<DIR>', 'the client\'s backing directory')
    .option('--fileset <NAME>', FILESET_HELP)
    .option('--no-wait', 'return at once; the daemon reconnects in the background')
    .option('--timeout <SECONDS>', 'wait at most this long for the outcome', positiveInt('--timeout'), 60)
    .option('--dry-run', 'print what the reconnection would decide (records applied, sent, conflicts and their outcome) and stay disconnected', false)
    .option('--state-dir <DIR>', 'with --dry-run: where this client\'s credential lives (as the daemon was started with)')
    .option('--tls-ca <FILE>', 'with --dry-run: trust this CA (PEM) for an https server')
    .option('--json', 'print as JSON', false)
    .addHelpText('after', '\nExamples:\n  intersync disconnect ~/site     work offline; changes are journaled\n  intersync reconnect ~/site      back online: prints records reintegrated and conflicts met (exit 1 if stuck)\n  intersync reconnect ~/site --dry-run    what it would decide, changing nothing')
    .action(async (dir: string, o: { fileset?: string; json: boolean; wait: boolean; timeout: number; dryRun: boolean; stateDir?: string; tlsCa?: string }) => {
      if (o.dryRun) {
        const { reconnectDryRun } = await import('./reconnect-dry-run.js');
        await reconnectDryRun(dir, o, print);
        return;
      }
      await cmdReconnect(dir, o, print);
    });
}

/** `conflicts`, `resolve`: the conflicts met on reconnection, and settling one by hand. */
export function addConflictCommands(program: Command, print: Print): void {
  program
    .command('conflicts')
    .description('list the conflicts met on reconnection: open ones (a version kept beside the name), --all for every one')
    .argument('<DIR>', 'the backing directory')
    .option('--fileset <NAME>', FILESET_HELP)
    .option('--all', 'resolved ones too', false)
    .option('--json', 'one JSON object per line', false)
    .addHelpText('after', '\nExamples:\n  intersync conflicts /imports/site                open conflicts, with where mine and theirs are\n  intersync conflicts --all --json /imports/site   every conflict met, as JSON lines')
    .action((dir: string, o: { fileset?: string; all: boolean; json: boolean }) => cmdConflicts(dir, o, print));

  program
    .command('resolve')
    .description('settle an open conflict by hand: --keep mine (this node\'s version, kept beside, replaces the name), theirs (the server\'s version at the name stays, the kept copy goes), or both')
    .argument('<DIR>', 'the backing directory')
    .argument('<PATH>', 'the conflicting name, or its kept copy, relative to DIR')
    .requiredOption('--keep <WHICH>', 'mine (or local), theirs (or remote), or both')
    .addHelpText('after', '\nExamples:\n  intersync conflicts /srv/site                      list the open conflicts, with where mine and theirs are\n  intersync resolve /srv/site index.html --keep mine  my version replaces the server\'s')
    .option('--fileset <NAME>', FILESET_HELP)
    .option('--json', 'print as JSON', false)
    .action((dir: string, path: string, o: { fileset?: string; keep: string; json: boolean }) => cmdResolve(dir, path, o, print));
}
