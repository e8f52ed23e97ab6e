import { accessSync, constants, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';

export const DEFAULT_LOG_DIR = '/var/log/intersync';

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

/** JSON lines, one per event, to `<dir>/intersync-<fileset>.log`; any debug flag lowers the level to debug. */
export function createLogger(dir: string, fileset: string, debug: number): { log: Logger; file: string; flush: () => void } {
  const file = join(dir, `intersync-${fileset}.log`);
  const dest = pino.destination({ dest: file, sync: false, mkdir: true });
  const log = pino({ level: debug !== 0 ? 'debug' : 'info', base: { pid: process.pid, fileset } }, dest);
  const flush = (): void => {
    try {
      dest.flushSync();
    } catch {
      // not open yet (stopped right after start): nothing was buffered that could be lost
    }
  };
  return { log, file, flush };
}

/** A logger that drops everything (tests, read-only commands). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
