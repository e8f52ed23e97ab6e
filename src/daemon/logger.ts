import { accessSync, constants, mkdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import pino, { type Logger } from 'pino';
import { LogShaper, type LogFormat } from './log-shaper.js';

export const DEFAULT_LOG_DIR = '/var/log/intersync';

/** How log lines are written; the CLI sets it once, before a daemon starts (`--log-format`). */
let logFormat: LogFormat = 'json';

export function configureLogs(o: { format: LogFormat }): void {
  logFormat = o.format;
}

/** The log directory: the one asked for, else /var/log/intersync when writable, else the fileset's own. */
export function chooseLogDir(asked: string | undefined, filesetLogDir: string): string {
  if (asked !== undefined) {
    mkdirSync(asked, { recursive: true });
    accessSync(asked, constants.W_OK);
    return asked;
  }
  try {
    mkdirSync(DEFAULT_LOG_DIR, { recursive: true });
    accessSync(DEFAULT_LOG_DIR, constants.W_OK);
    return DEFAULT_LOG_DIR;
  } catch {
    mkdirSync(filesetLogDir, { recursive: true });
    return filesetLogDir;
  }
}

/**
 * The log file of one fileset directory: `intersync-<fileset>@<path>.log`, the path escaped as systemd
 * does (`/exports/site` -> `exports-site`), so two daemons on one host never share a file, whatever
 * their filesets are called (a very long path is cut and a hash of it added).
 */
export function logFileName(fileset: string, dir: string): string {
  let p = resolve(dir).replace(/^\/+/, '').replace(/\//g, '-').replace(/[^A-Za-z0-9:_.-]/g, '_');
  if (p.length > 120) p = `${p.slice(0, 100)}~${createHash('sha256').update(resolve(dir)).digest('hex').slice(0, 12)}`;
  return `intersync-${fileset}@${p}.log`;
}

/**
 * One line per event to the fileset directory's log file: JSON (levels by name, each key once) or
 * pretty for a person; repeated identical warnings are summarised (see LogShaper). Any debug flag
 * lowers the level to debug.
 */
export function createLogger(dir: string, fileset: { readonly name: string; readonly dir: string }, debug: number): { log: Logger; file: string; flush: () => void } {
  const file = join(dir, logFileName(fileset.name, fileset.dir));
  const dest = pino.destination({ dest: file, sync: false, mkdir: true });
  const shaper = new LogShaper(logFormat, (line) => dest.write(line));
  const log = pino({
    level: debug !== 0 ? 'debug' : 'info',
    base: { pid: process.pid, fileset: fileset.name },
    formatters: { level: (label) => ({ level: label }) },
  }, { write: (line: string) => shaper.write(line) });
  const flush = (): void => {
    shaper.flush();
    try {
      dest.flushSync();
    } catch {
      // not open yet (stopped right after start): nothing was buffered that could be lost
    }
  };
  return { log, file, flush };
}

/** A node's log: its root logger (each part narrows it with a child), the file it writes (shown in status), and the flush at stop. */
export interface NodeLog {
  readonly log: Logger;
  readonly file: string;
  readonly flush: () => void;
}

/**
 * How a node gets its log, given by whoever runs it (cli/run-daemon.ts, a test). A maker and not a logger: the
 * file is named after the fileset, which a node knows only once it opened or made it (a client's first start
 * learns it from its server).
 */
export type NodeLogs = (fileset: { readonly name: string; readonly dir: string; readonly logDir: string }) => NodeLog;

/** The daemon's log: one file per fileset directory (createLogger) in the directory chooseLogDir picks. */
export function fileLogs(o: { readonly logDir?: string | undefined; readonly debug: number }): NodeLogs {
  return (fileset) => createLogger(chooseLogDir(o.logDir, fileset.logDir), fileset, o.debug);
}

/** A logger that drops everything (tests, read-only commands). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
