import { IntersyncError } from '#core/errors.js';

/** Exit codes: 0 ok, 1 failure, 2 bad command line. */
export const EXIT_FAIL = 1;
export const EXIT_USAGE = 2;

/** One line a person can read: what failed, its stable code, and what to do. */
export function errorLine(e: unknown): string {
  if (e instanceof IntersyncError) {
    return `intersync: ${e.message} [${e.code}]${e.hint === undefined ? '' : ` (hint: ${e.hint})`}`;
  }
  const msg = e instanceof Error ? e.message : String(e);
  return `intersync: internal error: ${msg} [INTERNAL] (hint: this is a bug; run with --debug 1 and report the log)`;
}

export function errorJson(e: unknown): string {
  if (e instanceof IntersyncError) return JSON.stringify({ error: { code: e.code, message: e.message, hint: e.hint ?? null } });
  return JSON.stringify({ error: { code: 'INTERNAL', message: e instanceof Error ? e.message : String(e), hint: null } });
}

export function exitCodeOf(e: unknown): number {
  return e instanceof IntersyncError && e.code === 'BAD_ARGUMENT' ? EXIT_USAGE : EXIT_FAIL;
}

export function fmtBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** A count with thousands separators ("308,116"). */
export function fmtCount(n: number): string {
  return n.toLocaleString('en-US');
}

/** A rough count for an estimate: "950", "12k", "1.1M". */
export function fmtAbout(n: number): string {
  if (n < 1000) return String(n);
  if (n < 1_000_000) return `${n < 10_000 ? (n / 1000).toFixed(1) : Math.round(n / 1000)}k`;
  return `${(n / 1_000_000).toFixed(1)}M`;
}

/** A start's progress as status prints it (capture.progress): "journaling 308,116 of about 1.1M". */
export function fmtStartProgress(p: { phase: string; done: number; about: number | null }): string {
  if (p.phase === 'scanning') return `start-up scan: ${fmtCount(p.done)} entries so far`;
  return `journaling ${fmtCount(p.done)}${p.about === null ? '' : ` of about ${fmtAbout(p.about)}`}`;
}

export function fmtAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}

/** "ADDR:PORT", ":PORT", "PORT" or "[v6]:PORT"; "none" turns serving off. */
export function parseListen(text: string): { host: string; port: number } | null {
  if (text === 'none') return null;
  // The address, when given, ends at a colon: a bare "18581" is a port, not address 1858 and port 1.
  const m = /^(?:(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):)?([0-9]{1,5})$/.exec(text);
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || !(port >= 0 && port <= 65535)) {
    throw IntersyncError.BAD_ARGUMENT(`--listen ${text} is not ADDR:PORT`, 'for example --listen 0.0.0.0:7777, --listen 127.0.0.1:7777 or --listen none');
  }
  return { host: m[1] ?? (m[2] === undefined || m[2] === '' ? '0.0.0.0' : m[2]), port };
}

