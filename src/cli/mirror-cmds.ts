/**
 * The mirror commands (issue 15, as HAMMER's): `pfs-status` (a fileset's part in mirroring), `pfs-slave` (an empty
 * slave bound to a master's shared-uuid) and `mirror-stream` (a master into a slave, continuously or --once). Their
 * work is in src/mirror/.
 */
import type { Command } from 'commander';
import pino from 'pino';
import { systemClock } from '#core/clock.js';
import { formatTid } from '#core/ids.js';
import { DEFAULT_FILESET, findFileset } from '#journal/layout.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { formatRate, parseRate } from '#net/rate-limit.js';
import { makeSlave, parseSharedUuid, pfsStatus, upgradeSlave } from '#mirror/pfs.js';
import { readPidFile } from '#journal/pid-file.js';
import { mirrorStream, type MasterSpec, type MirrorReport } from '#mirror/mirror-stream.js';
import { isJoinToken, parseJoinToken } from '#net/protocol/join-token.js';
import { clientTarget } from './run-daemon.js';
import { resolveStateDir } from './state-dir.js';
import { fmtBytes } from './output.js';

type Print = (line: string) => void;

export function cmdPfsStatus(dir: string, o: { fileset?: string; json: boolean }, print: Print): void {
  const paths = findFileset(dir, o.fileset);
  const db = FilesetDb.open(paths.db, { readonly: true, check: false });
  try {
    const s = pfsStatus(paths, db);
    if (o.json) {
      print(JSON.stringify(s));
      return;
    }
    print(`${s.dir}  fileset '${s.fileset}'`);
    print(`    shared-uuid=${s.sharedUuid}`);
    print(`    role=${s.role} (${s.mirrorRole === 'slave' ? 'a mirror slave: read-only, written by mirror-stream' : 'a master: mirror-stream can read it'})`);
    print(`    last-tid=${s.lastTid}`);
    print(`    digest=${s.digest}`);
    print(`    objects=${s.objects}`);
    print(`    history=${s.history}`);
    if (s.slave !== null) {
      print(`    synced-tid=${s.slave.syncedTid ?? 'none (first copy not done)'}`);
      print(`    master=${s.slave.master ?? 'none yet'}${s.slave.source === null ? '' : ` (last read from ${s.slave.source})`}`);
      for (const c of s.slave.handChanges) print(`    HAND CHANGE ${new Date(c.time).toISOString()} ${c.what} ${c.path}: ${c.undone ? 'undone' : 'NOT undone'}`);
    }
  } finally {
    db.close();
  }
}

export function cmdPfsSlave(dir: string, uuidArg: string, o: { fileset: string; json: boolean }, print: Print): void {
  const uuid = parseSharedUuid(uuidArg);
  const r = makeSlave(dir, { fileset: o.fileset, uuid, clock: systemClock });
  if (o.json) {
    print(JSON.stringify({ dir: r.paths.dir, fileset: r.paths.name, sharedUuid: r.uuid, nodeId: r.nodeId, role: 'slave' }));
    return;
  }
  print(`created slave fileset '${r.paths.name}' in ${r.paths.dir}`);
  print(`    shared-uuid=${r.uuid}`);
  print(`    fill it with: intersync mirror-stream MASTER ${r.paths.dir}`);
}

export function cmdPfsUpgrade(dir: string, o: { fileset?: string; json: boolean }, print: Print): void {
  const paths = findFileset(dir, o.fileset);
  const db = FilesetDb.open(paths.db);
  try {
    const r = upgradeSlave(paths, db, readPidFile(paths.pidFile));
    if (o.json) print(JSON.stringify({ dir: paths.dir, fileset: paths.name, role: 'server', syncedTid: formatTid(r.syncedTid) }));
    else print(`${paths.dir} is a master now, at ${formatTid(r.syncedTid)}: serve it with intersync ${paths.dir} (the old master's clients can follow it)`);
  } finally {
    db.close();
  }
}

function reportLine(r: MirrorReport): string {
  if (r.copy !== undefined) {
    return `first copy: ${r.copy.files}/${r.copy.totalFiles} files, ${fmtBytes(r.copy.bytes)} of ${fmtBytes(r.copy.totalBytes)} (master at ${r.masterTid})`;
  }
  return `tid ${r.tid}  ${r.recordsPerSec} records/s  ${formatRate(r.bytesPerSec)}  lag ${r.lagRecords} records ${r.lagSeconds.toFixed(1)} s  verified ${r.verified}`;
}

interface MirrorCmdOptions {
  bwlimit?: string;
  verbose: boolean;
  once: boolean;
  json: boolean;
  srcFileset?: string;
  fileset?: string;
  secretFile?: string;
  stateDir?: string;
  insecureHttp: boolean;
  handCheck: number;
}

/**
 * SRC as the user wrote it: a join token, `HOST[:PORT][/DIR]` or an http(s) URL (a daemon: the DIR part names the
 * master's directory for the record, the daemon at that port serves one fileset), else a local directory.
 */
export function masterSpec(src: string, dst: string, o: MirrorCmdOptions): MasterSpec {
  const remote = isJoinToken(src) || /^https?:\/\//.test(src) || /^[A-Za-z0-9.-]+:[0-9]+(\/.*)?$/.test(src) || /^\[[0-9a-fA-F:]+\](:[0-9]+)?(\/.*)?$/.test(src);
  if (!remote) return { kind: 'local', dir: src, ...(o.srcFileset === undefined ? {} : { fileset: o.srcFileset }) };
  const token = isJoinToken(src);
  const server = token ? src : /^((?:https?:\/\/)?[^/]+)(\/.*)?$/.exec(src)![1]!;
  const where = token ? parseJoinToken(src).url : src;
  const t = clientTarget({ server, replicate: false, insecureHttp: o.insecureHttp, ...(o.secretFile === undefined ? {} : { secretFile: o.secretFile }) });
  return { kind: 'remote', url: t.url, where, ...(t.uuid === undefined ? {} : { uuid: t.uuid }), trust: t.trust, stateDir: resolveStateDir(o.stateDir, dst, o.fileset) };
}

export async function cmdMirrorStream(src: string, dst: string, o: MirrorCmdOptions, print: Print): Promise<void> {
  const rate = o.bwlimit === undefined ? null : parseRate(o.bwlimit, '-b');
  const from = masterSpec(src, dst, o);
  const log = pino({ level: o.verbose ? 'info' : 'warn', base: { cmd: 'mirror-stream' } }, pino.destination({ dest: 2, sync: true }));
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const r = await mirrorStream({
      src: from, dst, ...(o.fileset === undefined ? {} : { dstFileset: o.fileset }),
      rate, once: o.once, clock: systemClock, log, signal: stop.signal, handCheckMs: o.handCheck * 1000,
      report: o.verbose ? (x) => print(o.json ? JSON.stringify(x) : reportLine(x)) : null,
    });
    if (o.json) {
      print(JSON.stringify(r));
      return;
    }
    for (const c of r.handChanges) print(`hand change in the slave: ${c.what} ${c.path}: ${c.undone ? 'undone' : 'NOT undone'}${c.note === undefined ? '' : ` (${c.note})`}`);
    print(`synced ${r.slave} to ${r.syncedTid} (${r.records} records, ${r.verified} verified, ${fmtBytes(r.bytesSent)} of content sent${r.copied === null ? '' : `; first copy ${r.copied.files} files`})`);
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

export function addMirrorCommands(program: Command, print: Print): void {
  program
    .command('pfs-status')
    .description('a fileset\'s part in mirroring: name, shared-uuid, role (server, client or slave), last TID, state digest there, history mode; for a slave its synchronized TID and master')
    .argument('<DIR>', 'the backing directory')
    .option('--fileset <NAME>', 'fileset (default: the only one in DIR)')
    .option('--json', 'print as JSON', false)
    .addHelpText('after', '\nExamples:\n  intersync pfs-status /exports/site | grep shared-uuid\n  intersync pfs-status --json /backup/site')
    .action((dir: string, o: { fileset?: string; json: boolean }) => cmdPfsStatus(dir, o, print));

  program
    .command('pfs-slave')
    .description('make DIR (empty) a read-only mirror slave bound to a master\'s shared-uuid; mirror-stream fills it')
    .argument('<DIR>', 'an existing, empty directory')
    .argument('<shared-uuid=UUID>', 'the master\'s shared-uuid, as pfs-status prints it')
    .option('--fileset <NAME>', 'fileset name', DEFAULT_FILESET)
    .option('--json', 'print as JSON', false)
    .addHelpText('after', '\nExamples:\n  intersync pfs-slave /backup/site shared-uuid=$(intersync pfs-status --json /exports/site | jq -r .sharedUuid)')
    .action((dir: string, uuid: string, o: { fileset: string; json: boolean }) => cmdPfsSlave(dir, uuid, o, print));

  program
    .command('pfs-upgrade')
    .description('turn a mirror slave into a master (fail-over), once it holds a fully synchronized TID and no mirror runs into it')
    .argument('<DIR>', 'the slave\'s backing directory')
    .option('--fileset <NAME>', 'fileset (default: the only one in DIR)')
    .option('--json', 'print as JSON', false)
    .addHelpText('after', '\nExamples:\n  intersync pfs-upgrade /backup/site && intersync --listen 0.0.0.0:7777 /backup/site')
    .action((dir: string, o: { fileset?: string; json: boolean }) => cmdPfsUpgrade(dir, o, print));

  program
    .command('mirror-stream')
    .description('mirror the master SRC (a local fileset directory or a daemon) into the slave DST: a first copy, then every record as the master journals it, the state digest compared after each; runs until stopped (or --once)')
    .argument('<SRC>', 'the master: a local backing directory (any fileset: a server\'s, a client\'s, another slave), a daemon as HOST[:PORT][/DIR], or a join token from intersync invite')
    .argument('<DST>', 'the slave\'s backing directory (made with pfs-slave)')
    .option('-b, --bwlimit <RATE>', 'bytes per second of content, with k, m or g (powers of 1024), e.g. 500k or 2m')
    .option('-v, --verbose', 'a line a second: TID, records/s, bytes/s, lag in records and seconds', false)
    .option('--once', 'copy up to the master\'s TID now, then exit (for cron)', false)
    .option('--src-fileset <NAME>', 'the master\'s fileset (default: the only one in SRC)')
    .option('--fileset <NAME>', 'the slave\'s fileset (default: the only one in DST)')
    .option('--hand-check <S>', 'seconds between checks of the slave\'s disk against its journal (changes made by hand are reported and undone); 0: only at start and end', (v) => Number(v), 10)
    .option('--secret-file <FILE>', 'a remote master: enrol with its fileset secret (a join token carries its own invitation)')
    .option('--state-dir <DIR>', 'a remote master: where this slave keeps its credential (as a client\'s)')
    .option('--insecure-http', 'a remote master over plain http on a network that is not loopback', false)
    .option('--json', 'the reports and the result as JSON lines', false)
    .addHelpText('after', [
      '', 'Killed at any moment, it resumes at the TID last applied (in a first copy: the files already placed are not sent again).',
      'DST/.intermezzo/<fileset>/synced names the last fully synchronized TID. A digest that differs stops it (exit 1), naming the first differing path.',
      '', 'Examples:',
      '  intersync mirror-stream -v /exports/site /backup/site',
      '  intersync mirror-stream --once -b 2m /exports/site /backup/site',
      '  intersync mirror-stream -v isync1-eyJ2Ijox... /backup/site     a remote master: a token from intersync invite on it',
    ].join('\n'))
    .action((src: string, dst: string, o: MirrorCmdOptions) => cmdMirrorStream(src, dst, o, print));
}
