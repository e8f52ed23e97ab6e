/**
 * How a client's first copy (or resync) shows its progress: a bar on a terminal, else a plain line every
 * few seconds (and one when all files are in), so a service's journal shows progress too.
 */
import type { CopyProgress } from '#daemon/copy.js';
import { fmtBytes } from './output.js';

/** How often a first copy or resync not on a terminal prints a progress line (INTERSYNC_PROGRESS_MS overrides). */
export const PROGRESS_EVERY_MS = 5000;

/** The bar a terminal gets (cli-progress's SingleBar, narrowed to what is used). */
export interface ProgressBar {
  start(total: number, value: number, payload: Record<string, string>): void;
  update(value: number, payload: Record<string, string>): void;
  stop(): void;
}

export interface CopyReporter {
  readonly onProgress: (p: CopyProgress) => void;
  /** The copy is over: the bar (if any) is closed. */
  stop(): void;
}

/** The line a progress report prints when not on a terminal. */
export function progressLine(p: CopyProgress): string {
  return `copy: ${p.files}/${p.totalFiles} files, ${fmtBytes(p.bytes)} of ${fmtBytes(p.totalBytes)}`;
}

/**
 * A reporter: with a `bar`, every report moves it; without one (not a terminal), a line when `everyMs`
 * passed since the last line (`now` is a monotonic clock in ms), and one when the last file is in.
 */
export function copyReporter(o: { bar: ProgressBar | null; print: (line: string) => void; everyMs: number; now: () => number }): CopyReporter {
  const bar = o.bar;
  let started = false;
  let lastLine = -Infinity;
  let lastFiles = -1;
  const t0 = o.now();
  return {
    onProgress: (p) => {
      if (bar === null) {
        const t = o.now();
        if (t - lastLine >= o.everyMs || (p.files === p.totalFiles && lastFiles !== p.files)) {
          lastLine = t;
          lastFiles = p.files;
          o.print(progressLine(p));
        }
        return;
      }
      const secs = Math.max(0.001, (o.now() - t0) / 1000);
      const payload = { size: `${fmtBytes(p.bytes)} of ${fmtBytes(p.totalBytes)}`, rate: fmtBytes(Math.round(p.bytes / secs)) };
      if (!started) {
        bar.start(p.totalFiles, p.files, payload);
        started = true;
      } else bar.update(p.files, payload);
    },
    stop: () => bar?.stop(),
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
    format: 'first copy |{bar}| {value}/{total} files | {size} | {rate}/s | ETA {eta_formatted}',
    hideCursor: true,
  }, progress.Presets.shades_classic);
  return copyReporter({ bar, print, everyMs, now });
}
