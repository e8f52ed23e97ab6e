/**
 * What happens to a log line between pino and the file: each key once (a child logger's binding, such
 * as `component`, replaces its parent's instead of repeating it), JSON or a pretty line, and repeated
 * identical warnings summarised. Invariant: the first occurrence of a warning is always written; within
 * `windowMs` after it, identical ones (same level, component, message, code, error, peer) are counted,
 * not written, and the count appears on the next one written (`suppressed`) or at flush.
 */
export type LogFormat = 'json' | 'pretty';

const IDENTITY_KEYS = ['level', 'component', 'msg', 'code', 'err', 'peer', 'url', 'path'] as const;
const WARN_LEVELS = new Set(['warn', 'error', 'fatal']);

interface Seen {
  until: number;
  suppressed: number;
  last: Record<string, unknown>;
}

export class LogShaper {
  readonly #format: LogFormat;
  readonly #out: (line: string) => void;
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #seen = new Map<string, Seen>();

  constructor(format: LogFormat, out: (line: string) => void, o: { windowMs?: number; now?: () => number } = {}) {
    this.#format = format;
    this.#out = out;
    this.#windowMs = o.windowMs ?? 60_000;
    this.#now = o.now ?? Date.now;
  }

  write(line: string): void {
    let obj: Record<string, unknown>;
    try {
      // JSON.parse keeps the last of duplicated keys: the innermost binding.
      obj = JSON.parse(line) as Record<string, unknown>;
    } catch {
      this.#out(line);
      return;
    }
    if (WARN_LEVELS.has(String(obj.level))) {
      const id = JSON.stringify(IDENTITY_KEYS.map((k) => obj[k] ?? null));
      const now = this.#now();
      const s = this.#seen.get(id);
      if (s !== undefined && now < s.until) {
        s.suppressed++;
        s.last = obj;
        return;
      }
      if (s !== undefined && s.suppressed > 0) obj = { ...obj, suppressed: s.suppressed, suppressedMs: this.#windowMs };
      this.#seen.set(id, { until: now + this.#windowMs, suppressed: 0, last: obj });
      if (this.#seen.size > 1000) this.#prune(now);
    }
    this.#emit(obj);
  }

  /** Write the counts still held (at stop). */
  flush(): void {
    for (const s of this.#seen.values()) {
      if (s.suppressed > 0) this.#emit({ ...s.last, time: this.#now(), suppressed: s.suppressed, msg: `${String(s.last.msg)} (repeated)` });
      s.suppressed = 0;
    }
  }

  #prune(now: number): void {
    for (const [k, s] of this.#seen) if (s.until <= now && s.suppressed === 0) this.#seen.delete(k);
  }

  #emit(obj: Record<string, unknown>): void {
    this.#out(this.#format === 'json' ? `${JSON.stringify(obj)}\n` : `${prettyLine(obj)}\n`);
  }
}

/** `2024-05-01T10:00:00.000Z WARN  server: refused request: bad credential ip=1.2.3.4 code=UNAUTHORIZED` */
export function prettyLine(obj: Record<string, unknown>): string {
  const { time, level, component, msg, pid: _pid, fileset: _fs, ...rest } = obj;
  const t = typeof time === 'number' ? new Date(time).toISOString() : String(time ?? '');
  const fields = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'string' && !/[\s"]/.test(v) ? v : JSON.stringify(v)}`);
  return `${t} ${String(level ?? '').toUpperCase().padEnd(5)} ${component === undefined ? '' : `${String(component)}: `}${String(msg ?? '')}${fields.length > 0 ? ` ${fields.join(' ')}` : ''}`;
}
