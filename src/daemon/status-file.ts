import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { CaptureStatus } from '#presto/watch-capture.js';

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
  /** Server: peers, tokens, listen address. */
  readonly server?: unknown;
  /** Client: connection, lag, conflicts, first copy. */
  readonly client?: unknown;
  readonly reint?: unknown;
}

export function writeStatusFile(file: string, s: DaemonStatus): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(s, null, 2)}\n`);
  renameSync(tmp, file);
}

export function readStatusFile(file: string): DaemonStatus | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as DaemonStatus;
  } catch {
    return undefined;
  }
}
