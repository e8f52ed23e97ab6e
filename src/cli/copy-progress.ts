/**
 * How a client's first copy and each resync show their progress: a bar on a terminal, else a plain line
 * every few seconds (and one when all files are in), so a service's journal shows progress too.
 */
import type { CopyKind, CopyObserver, CopyProgress } from '#copy/copy.js';
import { fmtBytes } from './output.js';

/** How often a first copy or resync not on a terminal prints a progress line (INTERSYNC_PROGRESS_MS overrides). */
export const PROGRESS_EVERY_MS = 5000;

/** The bar a terminal gets (cli-progress's SingleBar, narrowed to what is used). */
export interface ProgressBar {
  start(total: number, value: number, payload: Record<string, string>): void;
  update(value: number, payload: Record<string, string>): void;
  stop(): void;
}

/** Shows each copy (daemon/copy.ts's CopyObserver); `begin` starts a new bar or a new run of lines. */
export type CopyReporter = CopyObserver;

/** The line a progress report prints when not on a terminal: `copy:` for a first copy, `resync:` for a resync. */
export function progressLine(p: CopyProgress, kind: CopyKind = 'first copy'): string {
  return `${kind === 'resync' ? 'resync' : 'copy'}: ${p.files}/${p.totalFiles} files, ${fmtBytes(p.bytes)} of ${fmtBytes(p.totalBytes)}`;
}

/**
 * A reporter: with a `bar`, every report moves it; without one (not a terminal), a line when `everyMs`
 * passed since the last line (`now` is a monotonic clock in ms), and one when the last file is in. Each
 * copy starts afresh (a resync after the first copy gets its own bar, or its own lines up to its last file).
 */
export function copyReporter(o: { bar: ProgressBar | null; print: (line: string) => void; everyMs: number; now: () => number }): CopyReporter {
  const bar = o.bar;
  let kind: CopyKind = 'first copy';
  let started = false;
  let lastLine = -Infinity;
  let lastFiles = -1;
  let t0 = o.now();
  return {
    begin: (k) => {
      kind = k;
      started = false;
      lastLine = -Infinity;
      lastFiles = -1;
      t0 = o.now();
    },
    progress: (p) => {
      if (bar === null) {
        const t = o.now();
        if (t - lastLine >= o.everyMs || (p.files === p.totalFiles && lastFiles !== p.files)) {
          lastLine = t;
          lastFiles = p.files;
          o.print(progressLine(p, kind));
        }
        return;
      }
      const secs = Math.max(0.001, (o.now() - t0) / 1000);
      const payload = { kind, size: `${fmtBytes(p.bytes)} of ${fmtBytes(p.totalBytes)}`, rate: fmtBytes(Math.round(p.bytes / secs)) };
      if (!started) {
        bar.start(p.totalFiles, p.files, payload);
        started = true;
      } else bar.update(p.files, payload);
    },
    end: () => {
      if (started) bar?.stop();
      started = false;
    },
  };
}

/** The reporter of a daemon: a bar when stderr is a terminal (cli-progress, loaded only then), else lines. */
export async function daemonCopyReporter(print: (line: string) => void): Promise<CopyReporter> {
  const everyMs = Number(process.env.INTERSYNC_PROGRESS_MS ?? PROGRESS_EVERY_MS);
  const now = (): number => performance.now();
  if (!process.stderr.isTTY) return copyReporter({ bar: null, print, everyMs, now });
  // Loaded only for a terminal (a service's start is faster without it).
  const progress = await import('cli-progress');
  const bar = new progress.SingleBar({
    format: '{kind} |{bar}| {value}/{total} files | {size} | {rate}/s | ETA {eta_formatted}',
    hideCursor: true,
  }, progress.Presets.shades_classic);
  return copyReporter({ bar, print, everyMs, now });
}
