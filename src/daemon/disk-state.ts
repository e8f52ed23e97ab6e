import type { Logger } from 'pino';
import type { Clock } from '#core/clock.js';
import { DiskFullState } from '#core/disk-full.js';

/** A node's disk-full state (core/disk-full.ts), whose start and end are each logged once, with code DISK_FULL. */
export function diskFullState(clock: Clock, log: Logger): DiskFullState {
  return new DiskFullState(clock, (full) => {
    if (full !== null) log.error({ code: full.code, steps: full.steps, hint: full.hint }, 'disk full: writes wait and are retried until there is room');
    else log.info('disk has room again: writes go on');
  });
}
