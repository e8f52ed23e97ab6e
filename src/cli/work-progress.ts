/**
 * How a running daemon shows long work other than a copy (cli/copy-progress.ts has the copy): a large file
 * moving either way (a forwarded write fetched, an upload of reintegration, on a server what its clients
 * fetch and send), and a reintegration of many records. On a terminal: a bar per piece of work (cli-progress,
 * one MultiBar); otherwise a line every few seconds per piece of work that progressed, and one when it is
 * done, so a service's journal shows it too. The node is polled (its transfers list and the reintegrator's
 * counts), so the daemon needs no hook for it.
 * Invariant: work shorter than `delayMs` shows nothing; a line is printed only when the work moved since its
 * last line (a client that is stuck or away does not repeat itself), and every piece of work that printed a
 * line prints its last one.
 */
import type { Transfer } from '#core/transfers.js';
import { fmtBytes } from './output.js';
import { PROGRESS_EVERY_MS, type ProgressBar } from './copy-progress.js';

/** What is going on now, as the reporter polls it. */
export interface WorkNow {
  readonly transfers: readonly Transfer[];
  /** A client's reintegrator: records pending (the LML), and sent since start; null on a server. */
  readonly reint: { readonly pending: number; readonly sent: number } | null;
  /** The client talks to its server (false: away or disconnected on request, nothing moves). */
  readonly connected: boolean;
}

/** Bars on a terminal: cli-progress's MultiBar narrowed to what is used. */
export interface BarSet {
  create(total: number, value: number, payload: Record<string, string>): ProgressBar & { setTotal(total: number): void };
  remove(bar: ProgressBar): void;
  stop(): void;
}

export interface WorkReporter {
  /** Look at the work now (called by the poll timer, or by a test). */
  tick(w: WorkNow): void;
  /** Stop the bars (the daemon stops). */
  stop(): void;
}

interface Shown {
  /** When it was first seen. */
  readonly t0: number;
  /** (time, amount) over the last RATE_WINDOW_MS and one before: the rate is the recent one. */
  readonly samples: Array<[number, number]>;
  lastLine: number;
  lastValue: number;
  printed: boolean;
  bar: (ProgressBar & { setTotal(total: number): void }) | null;
  /** Its last line, when it is gone. */
  done: (secs: number) => string;
}

/** One piece of work as a reporter shows it. */
interface Item {
  readonly key: string;
  readonly value: number;
  readonly total: number;
  line(rate: number): string;
  done(secs: number): string;
  readonly payload: (rate: number) => Record<string, string>;
}

const REINT_KEY = 'reint';
const RATE_WINDOW_MS = 5000;

function transferKey(t: Transfer): string {
  return `${t.direction}\u0000${t.path}\u0000${t.since}\u0000${t.peer ?? ''}`;
}

function transferItem(t: Transfer): Item {
  const name = `${t.direction === 'up' ? 'upload' : 'download'} ${t.path}`;
  const pct = t.total === 0 ? 100 : Math.floor((t.bytes * 100) / t.total);
  return {
    key: transferKey(t), value: t.bytes, total: t.total,
    line: (rate) => `${name}: ${fmtBytes(t.bytes)} of ${fmtBytes(t.total)} (${pct}%), ${fmtBytes(Math.round(rate))}/s`,
    done: (secs) => `${name}: done, ${fmtBytes(t.total)} in ${secs.toFixed(1)} s`,
    payload: (rate) => ({ what: name, size: `${fmtBytes(t.bytes)} of ${fmtBytes(t.total)}`, rate: `${fmtBytes(Math.round(rate))}/s` }),
  };
}

/**
 * A reporter. `bars`: a terminal's (null: lines through `print`); `everyMs`: the interval between two lines
 * of one piece of work; `delayMs`: how long work must last before it is shown; `now`: monotonic ms.
 */
export function workReporter(o: { bars: (() => BarSet) | null; print: (line: string) => void; everyMs: number; delayMs: number; now: () => number }): WorkReporter {
  const shown = new Map<string, Shown>();
  let bars: BarSet | null = null;
  // A reintegration run: from the first look with records pending to the first with none.
  let run: { sent0: number; total: number } | null = null;

  const finish = (key: string, s: Shown, last: string): void => {
    if (s.bar !== null) bars?.remove(s.bar);
    else if (s.printed) o.print(last);
    shown.delete(key);
  };

  return {
    tick: (w) => {
      const t = o.now();
      const items: Item[] = w.transfers.map(transferItem);
      if (w.reint !== null) {
        if (w.reint.pending > 0 && run === null) run = { sent0: w.reint.sent, total: w.reint.pending };
        if (run !== null) {
          const done = Math.max(0, w.reint.sent - run.sent0);
          run.total = Math.max(run.total, done + w.reint.pending);
          const r = { done, total: run.total };
          if (w.reint.pending > 0) {
            items.push({
              key: REINT_KEY, value: r.done, total: r.total,
              line: (rate) => `reintegration: ${r.done}/${r.total} records sent, ${rate.toFixed(0)}/s${w.connected ? '' : ' (server away)'}`,
              done: () => '',
              payload: (rate) => ({ what: 'reintegration', size: `${r.done}/${r.total} records`, rate: `${rate.toFixed(0)} records/s` }),
            });
          } else {
            const s = shown.get(REINT_KEY);
            if (s !== undefined) finish(REINT_KEY, s, `reintegration: ${r.total}/${r.total} records sent, done in ${((t - s.t0) / 1000).toFixed(1)} s`);
            run = null;
          }
        }
      }
      const now = new Set(items.map((i) => i.key));
      // Transfers gone from the list are done (or dropped): their last line.
      for (const [key, s] of shown) {
        if (key === REINT_KEY || now.has(key)) continue;
        finish(key, s, s.done((t - s.t0) / 1000));
      }
      for (const it of items) {
        let s = shown.get(it.key);
        if (s === undefined) {
          s = { t0: t, samples: [], lastLine: t, lastValue: it.value, printed: false, bar: null, done: it.done };
          shown.set(it.key, s);
        }
        s.done = it.done;
        s.samples.push([t, it.value]);
        while (s.samples.length > 2 && s.samples[1]![0] <= t - RATE_WINDOW_MS) s.samples.shift();
        if (t - s.t0 < o.delayMs) continue;
        const [ts, vs] = s.samples[0]!;
        const rate = t > ts ? ((it.value - vs) * 1000) / (t - ts) : 0;
        if (o.bars !== null) {
          bars ??= o.bars();
          if (s.bar === null) s.bar = bars.create(it.total, it.value, it.payload(rate));
          else {
            s.bar.setTotal(it.total);
            s.bar.update(it.value, it.payload(rate));
          }
          continue;
        }
        // A line when the interval passed since the last one and the work moved (the first one: once shown).
        if ((!s.printed || t - s.lastLine >= o.everyMs) && (!s.printed || it.value !== s.lastValue)) {
          o.print(it.line(rate));
          s.printed = true;
          s.lastLine = t;
          s.lastValue = it.value;
        }
      }
      if (bars !== null && shown.size === 0) {
        bars.stop(); // nothing left: the terminal is the log's again
        bars = null;
      }
    },
    stop: () => {
      bars?.stop();
      bars = null;
    },
  };
}

/**
 * Watch a daemon's work: every so often (200 ms on a terminal, else the line interval within 0.1-1 s) look
 * at `poll()` and show it, a bar per piece of work when stderr is a terminal (cli-progress, loaded only
 * then), else lines through `print` every INTERSYNC_PROGRESS_MS (5 s by default). While `busy()` (a copy
 * shows its own bar) a terminal shows nothing else. Returns the stop.
 */
export async function watchWork(print: (line: string) => void, poll: () => WorkNow, busy: () => boolean): Promise<() => void> {
  const everyMs = Number(process.env.INTERSYNC_PROGRESS_MS ?? PROGRESS_EVERY_MS);
  const tty = process.stderr.isTTY;
  let bars: (() => BarSet) | null = null;
  if (tty) {
    const progress = await import('cli-progress');
    bars = () => {
      const m = new progress.MultiBar({
        format: '{what} |{bar}| {size} | {rate} | ETA {eta_formatted}', hideCursor: true, clearOnComplete: true,
      }, progress.Presets.shades_classic);
      return { create: (total, value, payload) => m.create(total, value, payload), remove: (b) => m.remove(b as never), stop: () => m.stop() };
    };
  }
  const r = workReporter({ bars, print, everyMs, delayMs: tty ? Math.min(1000, everyMs) : everyMs, now: () => performance.now() });
  const timer = setInterval(() => {
    if (tty && busy()) return;
    r.tick(poll());
  }, tty ? 200 : Math.max(100, Math.min(1000, everyMs)));
  timer.unref();
  return () => {
    clearInterval(timer);
    r.stop();
  };
}
