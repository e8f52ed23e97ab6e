import { closeSync, ftruncateSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import type { Logger } from 'pino';
import type { DiskFullState, DiskFullStatus } from '#core/disk-full.js';
import type { CaptureStatus } from '#presto/capture.js';

/** What a running daemon publishes about itself for `intersync status`. */
export interface DaemonStatus {
  readonly pid: number;
  readonly startedAt: number;
  readonly updatedAt: number;
  readonly role: 'server' | 'client';
  readonly fileset: string;
  readonly uuid: string;
  readonly nodeId: string;
  readonly dir: string;
  readonly logFile: string;
  readonly debug: number;
  readonly capture: CaptureStatus;
  /** This node's own disk refuses writes for want of space (null when not). */
  readonly diskFull?: DiskFullStatus | null;
  /** Server: peers, tokens, listen address. */
  readonly server?: unknown;
  /** Client: connection, lag, conflicts, first copy. */
  readonly client?: unknown;
  readonly reint?: unknown;
}

/**
 * Write the status file: a temp file renamed over it, so a reader sees the old one or the new one. On a full
 * disk (no room for the temp file) the file is overwritten in place, compact, within the blocks it already has
 * (a reader may then catch it half written: readStatusFile reads again); returns how it was written.
 */
export function writeStatusFile(file: string, s: DaemonStatus): 'renamed' | 'in-place' {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, `${JSON.stringify(s, null, 2)}\n`);
    renameSync(tmp, file);
    return 'renamed';
  } catch (e) {
    rmSync(tmp, { force: true }); // a temp file cut short by the full disk must not hold its blocks
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOSPC' && code !== 'EDQUOT') throw e;
    const text = `${JSON.stringify(s)}\n`;
    const fd = openSync(file, 'r+');
    try {
      writeSync(fd, text, 0);
      ftruncateSync(fd, Buffer.byteLength(text));
    } catch {
      throw e;
    } finally {
      closeSync(fd);
    }
    return 'in-place';
  }
}

export function readStatusFile(file: string): DaemonStatus | undefined {
  for (let tries = 0; tries < 3; tries++) {
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as DaemonStatus;
    } catch {
      // missing, or caught while written in place on a full disk: look again
    }
  }
  return undefined;
}

/**
 * Publishes a node's status file every second. A failure is said once (and its return once), not every
 * second; a full disk is noted in the node's disk-full state, and the file is still written in place.
 */
export class StatusPublisher {
  readonly #file: string;
  readonly #log: Logger;
  readonly #disk: DiskFullState;
  #failing = false;

  constructor(file: string, log: Logger, disk: DiskFullState) {
    this.#file = file;
    this.#log = log;
    this.#disk = disk;
  }

  publish(s: () => DaemonStatus): void {
    let how: 'renamed' | 'in-place' | null = null;
    let err: unknown = null;
    try {
      how = writeStatusFile(this.#file, s());
    } catch (e) {
      err = e;
    }
    if (how === 'renamed') {
      this.#disk.ok('status');
      if (this.#failing) this.#log.info('status file written again');
      this.#failing = false;
      return;
    }
    const full = this.#disk.note('status', err ?? Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }));
    if (this.#failing) return;
    this.#failing = true;
    if (how === 'in-place') this.#log.warn({ code: full?.code, file: this.#file }, 'cannot write status file: the disk is full; written in place until there is room');
    else this.#log.warn({ code: full?.code ?? (err as NodeJS.ErrnoException).code, err: (err as Error).message, file: this.#file }, 'cannot write status file');
  }
}
