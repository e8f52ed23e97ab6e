/**
 * Commands for running intersync on a site: `stop` (the running daemon, cleanly, waiting for it),
 * `backup` (the fileset database, online, with SQLite's backup API) and `install-service` (the
 * systemd unit template with the paths of this installation).
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import type { Command } from 'commander';
import { IntersyncError } from '#core/errors.js';
import { formatTid } from '#core/ids.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { findFileset } from '#journal/layout.js';
import { readPidFile } from '#journal/pid-file.js';
import { fmtBytes } from './output.js';

type Print = (line: string) => void;

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The unit template shipped with the package. */
export const UNIT_TEMPLATE = join(ROOT, 'systemd', 'intersync@.service');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  // An exited process its parent has not reaped yet (a zombie) is gone for us.
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

/** SIGTERM the daemon of DIR and wait until its process is gone (it finishes its batch, closes the journal, removes its pid file). */
export async function cmdStop(dir: string, o: { fileset?: string; timeout: number; json: boolean }, print: Print): Promise<void> {
  const paths = findFileset(dir, o.fileset);
  const pid = readPidFile(paths.pidFile);
  if (pid === undefined) {
    if (o.json) print(JSON.stringify({ dir: paths.dir, running: false, stopped: false }));
    else print(`no daemon runs for ${paths.dir}`);
    return;
  }
  const t0 = Date.now();
  try {
    process.kill(pid, 'SIGTERM');
  } catch (e) {
    throw IntersyncError.IO('signal daemon', `pid ${pid}`, e);
  }
  while (alive(pid)) {
    if (Date.now() - t0 > o.timeout * 1000) {
      throw new IntersyncError('IO', `the daemon (pid ${pid}) of ${paths.dir} did not stop within ${o.timeout} s`, {
        hint: `look at its log; if it is hung, kill -9 ${pid} (nothing acknowledged is lost: the journal is a SQLite database in WAL mode)`,
      });
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const durMs = Date.now() - t0;
  if (o.json) print(JSON.stringify({ dir: paths.dir, running: true, stopped: true, pid, durMs }));
  else print(`stopped the daemon of ${paths.dir} (pid ${pid}) in ${durMs} ms`);
}

/** Copy the fileset database while the daemon runs (SQLite online backup), then check the copy opens and is whole. */
export async function cmdBackup(dir: string, out: string, o: { fileset?: string; force: boolean; json: boolean }, print: Print): Promise<void> {
  const paths = findFileset(dir, o.fileset);
  const dest = resolve(out);
  if (existsSync(dest) && !o.force) throw IntersyncError.BAD_ARGUMENT(`${dest} exists`, 'give a new file name, or --force to replace it');
  const tmp = `${dest}.${process.pid}.partial`;
  const src = new Database(paths.db, { readonly: true, fileMustExist: true });
  const t0 = Date.now();
  try {
    mkdirSync(dirname(dest), { recursive: true });
    await src.backup(tmp);
    // The copy keeps the store's WAL mode, and any open of it (the check below, a person's sqlite3) would leave
    // `-wal` and `-shm` files beside it, under the temp name once it is renamed: a backup is one file, in
    // rollback mode (a daemon's open of a restored copy sets WAL again).
    const copy = new Database(tmp, { fileMustExist: true });
    try {
      copy.pragma('journal_mode = DELETE');
    } finally {
      copy.close();
    }
  } catch (e) {
    for (const f of [tmp, `${tmp}-wal`, `${tmp}-shm`]) rmSync(f, { force: true });
    throw IntersyncError.IO('back up', paths.db, e).wrap('backup');
  } finally {
    src.close();
  }
  // A copy that does not pass the same checks as a start is no backup.
  let info: { lastTid: string; records: number; objects: number; uuid: string };
  try {
    const db = FilesetDb.open(tmp, { readonly: true });
    try {
      info = { lastTid: formatTid(db.lastTid), records: db.recordCount(), objects: db.objectCount(), uuid: db.meta.uuid };
    } finally {
      db.close();
    }
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e instanceof IntersyncError ? e.wrap('check backup') : e;
  }
  rmSync(dest, { force: true });
  const { renameSync, statSync } = await import('node:fs');
  renameSync(tmp, dest);
  const bytes = statSync(dest).size;
  if (o.json) print(JSON.stringify({ dir: paths.dir, fileset: paths.name, out: dest, bytes, durMs: Date.now() - t0, ...info }));
  else {
    print(`backed up ${paths.db} to ${dest} (${fmtBytes(bytes)}, ${Date.now() - t0} ms)`);
    print(`  fileset ${info.uuid}, last TID ${info.lastTid}, ${info.records} records, ${info.objects} objects; checked`);
    print(`  restore: stop the daemon, copy it to ${paths.db} (remove fileset.db-wal and -shm), start`);
  }
}

/** The unit template with this installation's node and entry point. */
export function renderUnit(): string {
  const main = join(ROOT, 'dist', 'cli', 'main.js');
  return readFileSync(UNIT_TEMPLATE, 'utf8').replace(/@NODE@/g, process.execPath).replace(/@MAIN@/g, main);
}

/** systemd's path escaping (systemd-escape --path) of a directory, for the instance name. */
export function escapePath(dir: string): string {
  const p = resolve(dir).replace(/^\/+|\/+$/g, '');
  if (p === '') return '-';
  // Like systemd-escape --path: "/" becomes "-", a leading "." and anything not [A-Za-z0-9:_.] becomes \xNN.
  return [...Buffer.from(p)].map((b, i) => {
    const c = String.fromCharCode(b);
    if (c === '/') return '-';
    if (/[A-Za-z0-9:_]/.test(c) || (c === '.' && i > 0)) return c;
    return `\\x${b.toString(16).padStart(2, '0')}`;
  }).join('');
}

export function cmdInstallService(dir: string, o: { unitDir: string; print: boolean; json: boolean }, print: Print): void {
  const abs = resolve(dir);
  const unit = renderUnit();
  const instance = `intersync@${escapePath(abs)}.service`;
  if (o.print) {
    print(unit.trimEnd());
    return;
  }
  const file = join(o.unitDir, 'intersync@.service');
  try {
    mkdirSync(o.unitDir, { recursive: true });
    writeFileSync(file, unit, { mode: 0o644 });
  } catch (e) {
    throw IntersyncError.IO('write unit', file, e);
  }
  if (o.json) {
    print(JSON.stringify({ unit: file, instance, dir: abs }));
    return;
  }
  print(`wrote ${file}`);
  print(`  start now and at boot:  systemctl daemon-reload && systemctl enable --now '${instance}'`);
  print(`  its log:                journalctl -u '${instance}'   (and the log file: intersync status ${abs})`);
  print(`  settings:               intersync config ${abs}   (edit the file it names, then systemctl reload '${instance}')`);
}

export function addOpsCommands(program: Command, print: Print): void {
  program
    .command('stop')
    .description('stop the daemon running for DIR cleanly (SIGTERM: it finishes the batch in hand and closes the journal) and wait until it has exited')
    .argument('<DIR>', 'the backing directory')
    .option('--fileset <NAME>', 'fileset (default: the only one in DIR)')
    .option('--timeout <S>', 'seconds to wait before giving up', (v) => Number(v), 60)
    .option('--json', 'print as JSON', false)
    .addHelpText('after', '\nExamples:\n  intersync stop /exports/site\n  intersync stop /exports/site --timeout 10 --json')
    .action((dir: string, o: { fileset?: string; timeout: number; json: boolean }) => cmdStop(dir, o, print));

  program
    .command('backup')
    .description('copy the fileset database (journal, objects, peers, conflicts) to OUT while the daemon runs, with SQLite\'s online backup API; the copy is checked before it is kept')
    .argument('<DIR>', 'the backing directory')
    .argument('<OUT>', 'the file to write (a new name, or --force)')
    .option('--fileset <NAME>', 'fileset (default: the only one in DIR)')
    .option('--force', 'replace OUT if it exists', false)
    .option('--json', 'print as JSON', false)
    .addHelpText('after', [
      '', 'The files themselves are not in it: back up the backing directory as usual (or keep a replica).',
      '', 'Examples:',
      '  intersync backup /exports/site /var/backups/site-$(date +%F).db',
      '  intersync backup /exports/site /var/backups/site.db --force --json',
    ].join('\n'))
    .action((dir: string, out: string, o: { fileset?: string; force: boolean; json: boolean }) => cmdBackup(dir, out, o, print));

  program
    .command('install-service')
    .description('install the systemd unit template intersync@.service (one instance per backing directory) and print how to enable it for DIR')
    .argument('<DIR>', 'the backing directory the instance serves')
    .option('--unit-dir <DIR>', 'where units go', '/etc/systemd/system')
    .option('--print', 'print the unit instead of writing it', false)
    .option('--json', 'print as JSON', false)
    .addHelpText('after', [
      '', 'The instance name is the escaped path (systemd-escape --path /exports/site = exports-site).',
      '', 'Examples:',
      '  intersync install-service /exports/site && systemctl enable --now intersync@exports-site.service',
      '  intersync install-service --print /exports/site > intersync@.service',
    ].join('\n'))
    .action((dir: string, o: { unitDir: string; print: boolean; json: boolean }) => cmdInstallService(dir, o, print));
}
