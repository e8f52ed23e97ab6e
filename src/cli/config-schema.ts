/**
 * The one schema of intersync's settings: every key of the config file, the daemon flag that sets it,
 * its type, default, whether SIGHUP applies it live, and what it means. The CLI's defaults, the
 * validation of a file, the file written at first start and `intersync config` all read it.
 * Invariant: a key validates to exactly one typed value, or is refused with key, value and reason.
 */
import { parseDebug } from '#core/debug.js';
import { IntersyncError } from '#core/errors.js';
import { POLICY_NAMES, parsePolicy } from '#policy/conflict-policy.js';
import { TOKEN_SCOPE_MODES } from '#policy/token-table.js';
import { parseRate } from '#net/rate-limit.js';
import { parseKeep } from '#apply/versions.js';

/** A key's value: a scalar, a list of strings (`ignore`), or a table of paths to whole numbers (`subtree-settle-ms`). */
export type ConfigValue = string | number | boolean | readonly string[] | Readonly<Record<string, number>>;

export interface ConfigKey {
  readonly key: string;
  readonly type: 'string' | 'int' | 'bool' | 'enum' | 'path' | 'list' | 'int-map';
  readonly values?: readonly string[];
  /** Undefined: unset unless given (the file shows it commented out). */
  readonly default?: ConfigValue;
  /** SIGHUP applies a new value without a restart. */
  readonly live: boolean;
  /** A fileset setting kept in the fileset database too (clients learn the server's at hello). */
  readonly stored?: boolean;
  readonly doc: string;
  /** Extra check: the reason a value is refused, or undefined. */
  readonly check?: (v: ConfigValue) => string | undefined;
}

const LISTEN_RE = /^(none|(https?:\/\/)?((\[[0-9a-fA-F:.]+\]|[^:[\]\s]*):)?[0-9]{1,5})$/;
const ADDR_RE = /^((\[[0-9a-fA-F:.]+\]|[^:[\]\s]*):)?[0-9]{1,5}$/;

export const CONFIG_SCHEMA: readonly ConfigKey[] = [
  { key: 'fileset', type: 'string', live: false, doc: 'fileset to serve (default: the only one in DIR, or a new one named "default")', check: (v) => (/^[A-Za-z0-9._-]{1,64}$/.test(String(v)) ? undefined : 'a fileset name is 1-64 letters, digits, ".", "_" or "-"') },
  { key: 'debug', type: 'int', default: 0, live: false, doc: 'debug flags, a sum of 1 D_INFO, 2 D_KML, 4 D_UPCALL, 8 D_HTTP, 16 D_REINT', check: (v) => tryReason(() => parseDebug(String(v))) },
  { key: 'log-dir', type: 'path', live: false, doc: 'where logs go (default /var/log/intersync when writable, else DIR/.intermezzo/<fileset>/log)' },
  { key: 'log-format', type: 'enum', values: ['auto', 'json', 'pretty'], default: 'auto', live: false, doc: 'log lines as JSON, or pretty for a person; auto: pretty when stderr is a terminal' },
  { key: 'settle-ms', type: 'int', default: 20, live: false, doc: 'quiet time (ms) before a batch of changes is journaled; a busy tree is journaled at least every 500 ms' },
  { key: 'rescan-interval-s', type: 'int', default: 3600, live: false, doc: 'walk the whole tree this often (seconds) and journal what capture missed (an event the kernel dropped, a change made while a directory had no watch); 0: never. The walk reads a file only when its stat data changed' },
  { key: 'subtree-settle-ms', type: 'int-map', default: {}, live: false, doc: 'quiet time (ms) of the files below a path, longest path first, e.g. { "www" = 500, "orders" = 0 }; other files follow settle-ms', check: checkSubtrees },
  { key: 'ignore', type: 'list', default: [], live: true, doc: 'patterns (gitignore syntax) this node neither watches, journals nor sends, besides the fileset\'s .intersyncignore, e.g. ["*.swp", "*~", ".#*", "4913", "*.tmp"]' },
  { key: 'listen', type: 'string', default: '0.0.0.0:7777', live: false, doc: 'server: ADDR:PORT to serve on (HTTPS; plain HTTP by default on loopback), or "none"', check: (v) => (LISTEN_RE.test(String(v)) ? undefined : 'not ADDR:PORT, http(s)://ADDR:PORT or none') },
  { key: 'insecure-http', type: 'bool', default: false, live: false, doc: 'allow plain HTTP outside the loopback address, with a warning' },
  { key: 'state-dir', type: 'path', live: false, doc: 'where secrets, the TLS key and credentials live, never in DIR' },
  { key: 'tls-cert', type: 'path', live: false, doc: 'server: serve HTTPS with this certificate (PEM) instead of the self-signed one' },
  { key: 'tls-key', type: 'path', live: false, doc: 'server: the certificate\'s private key (PEM)' },
  { key: 'token-scope', type: 'enum', values: TOKEN_SCOPE_MODES, default: 'none', live: false, doc: 'server: the write token a client\'s change needs: none (the version check decides, writers never wait on each other), one per fileset or per top-level subtree (writers take turns)' },
  { key: 'lease-ms', type: 'int', default: 30_000, live: false, doc: 'server: write token lease (ms), renewed while in use' },
  { key: 'retain-records', type: 'int', default: 1_000_000, live: false, doc: 'server: journal records kept for replicators that are away' },
  { key: 'server', type: 'string', live: false, doc: 'client mode: the server\'s https://HOST:PORT (a join token is for the first start only)' },
  { key: 'connect-timeout', type: 'int', live: false, doc: 'client: a first start waits for its server, retrying; give up after this many seconds (default: wait as long as it takes)' },
  { key: 'secret-file', type: 'path', live: false, doc: 'client: enrol with the fileset secret in this file' },
  { key: 'replicate', type: 'bool', default: false, live: false, doc: 'client: register as a replicator, receiving every update' },
  { key: 'tls-ca', type: 'path', live: false, doc: 'client: trust this CA (PEM) for an https server' },
  { key: 'preserve-setid', type: 'bool', default: false, live: true, stored: true, doc: 'keep set-uid/set-gid bits peers send' },
  { key: 'preserve-owner', type: 'bool', default: false, live: true, stored: true, doc: 'as root: give objects the owners peers name' },
  { key: 'safe-links', type: 'bool', default: false, live: true, stored: true, doc: 'refuse symlinks from peers whose target is absolute or leaves the tree' },
  { key: 'conflict-policy', type: 'string', default: 'keep-both', live: true, stored: true, doc: `conflict policy: ${POLICY_NAMES.join('|')}[:discard]`, check: (v) => (parsePolicy(String(v)) === undefined ? `not one of ${POLICY_NAMES.join(', ')} (optionally with :discard)` : undefined) },
  { key: 'conflict-hook', type: 'path', live: true, stored: true, doc: 'the script the hook policy asks (prints local, remote or both)' },
  { key: 'bwlimit', type: 'string', live: false, doc: 'limit content transfers (both directions, all peers together) to RATE bytes per second: k, m, g suffixes (KiB/s, MiB/s, GiB/s), e.g. "2m"; 0 or unset: no limit', check: (v) => tryReason(() => parseRate(String(v), 'bwlimit')) },
  { key: 'versioning', type: 'enum', values: ['off', 'trash', 'simple'], default: 'off', live: false, doc: 'keep what peers overwrite or delete in DIR/.intermezzo/<fileset>/versions: off; trash (the last version of each file); simple (versions-keep of them)' },
  { key: 'versions-keep', type: 'string', default: '30d', live: false, doc: 'versions kept: an age (30d, 12h, 90m) or a number of copies per file (10); trash keeps one, for at most that age', check: (v) => (parseKeep(String(v)) === undefined ? 'neither an age (30d, 12h, 90m) nor a number of copies (10)' : undefined) },
  { key: 'metrics', type: 'string', live: false, doc: 'also serve /metrics (Prometheus text, no credential) on this ADDR:PORT; /metrics on the main port always needs the credential', check: (v) => (ADDR_RE.test(String(v)) ? undefined : 'not ADDR:PORT') },
  { key: 'ui', type: 'bool', default: false, live: false, doc: 'server: serve the dashboard at /ui/ on the main port (login with the fileset secret or the admin password)' },
  { key: 'admin-password-file', type: 'path', live: false, doc: 'server: a file holding a password that also opens the dashboard' },
];

function checkSubtrees(v: ConfigValue): string | undefined {
  for (const p of Object.keys(v as Record<string, number>)) {
    if (p.split('/').some((s) => s === '..') || p.includes('\0') || p.replace(/[/.]/g, '') === '') return `${JSON.stringify(p)} is not a path inside the fileset (use settle-ms for the whole tree)`;
  }
  return undefined;
}

/** A list or table as one TOML line (a table inline, so that it may sit among the other keys). */
export function tomlValue(v: ConfigValue): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v !== 'object') return String(v);
  if (Array.isArray(v)) return `[${(v as readonly string[]).map((x) => JSON.stringify(x)).join(', ')}]`;
  const e = Object.entries(v as Record<string, number>);
  return e.length === 0 ? '{}' : `{ ${e.map(([k, n]) => `${JSON.stringify(k)} = ${n}`).join(', ')} }`;
}

/** Two values alike (lists and tables by content). */
export function sameValue(a: ConfigValue | null, b: ConfigValue | null): boolean {
  return a === b || (typeof a === 'object' && typeof b === 'object' && JSON.stringify(a) === JSON.stringify(b));
}

function tryReason(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

export function schemaKey(key: string): ConfigKey | undefined {
  return CONFIG_SCHEMA.find((k) => k.key === key);
}

/** The default of a key that has one (for the CLI's option defaults). */
export function defaultOf(key: string): ConfigValue {
  const d = schemaKey(key)?.default;
  if (d === undefined) throw new Error(`config key ${key} has no default`);
  return d;
}

/** The commander field of a key: log-dir -> logDir. */
export function fieldOf(key: string): string {
  return key.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
}

export function configError(where: string, key: string, value: unknown, why: string): IntersyncError {
  return new IntersyncError('BAD_CONFIG', `${where}: ${key} = ${JSON.stringify(value)}: ${why}`, {
    hint: 'fix that line of the config file (intersync config DIR lists every key with its default)',
  });
}

/**
 * Check one value read from a file (or given as text by `intersync config DIR KEY=VALUE`) and return
 * it typed; `fromText` accepts "true", "42" as the CLI gives them.
 */
export function validateValue(where: string, key: string, raw: unknown, fromText = false): ConfigValue {
  const k = schemaKey(key);
  if (k === undefined) {
    throw configError(where, key, raw, `unknown key (known: ${CONFIG_SCHEMA.map((x) => x.key).join(', ')})`);
  }
  let v: ConfigValue;
  switch (k.type) {
    case 'bool':
      if (typeof raw === 'boolean') v = raw;
      else if (fromText && (raw === 'true' || raw === 'false')) v = raw === 'true';
      else throw configError(where, key, raw, 'takes true or false');
      break;
    case 'int': {
      const n = typeof raw === 'bigint' ? Number(raw) : fromText && typeof raw === 'string' && /^[0-9]+$/.test(raw) ? Number(raw) : raw;
      if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw configError(where, key, raw, 'takes a whole number, 0 or more');
      v = n;
      break;
    }
    case 'enum':
      if (typeof raw !== 'string' || !(k.values ?? []).includes(raw)) throw configError(where, key, raw, `takes one of ${(k.values ?? []).join(', ')}`);
      v = raw;
      break;
    case 'list': {
      // From text (intersync config DIR ignore=…): a TOML/JSON list, or patterns separated by commas.
      const list = fromText && typeof raw === 'string' ? parseTextList(raw) : raw;
      if (!Array.isArray(list) || !list.every((x) => typeof x === 'string')) throw configError(where, key, raw, 'takes a list of strings, e.g. ["*.tmp", "*.swp"]');
      v = list as string[];
      break;
    }
    case 'int-map': {
      // From text: a JSON object, or PATH=MS pairs separated by commas (www=500,orders=0).
      const m = fromText && typeof raw === 'string' ? parseTextMap(raw) : raw;
      const ok = m !== null && typeof m === 'object' && !Array.isArray(m) &&
        Object.values(m).every((n) => (typeof n === 'number' || typeof n === 'bigint') && Number.isSafeInteger(Number(n)) && Number(n) >= 0);
      if (!ok) throw configError(where, key, raw, 'takes a table of paths to whole numbers, e.g. { "www" = 500 }');
      v = Object.fromEntries(Object.entries(m as Record<string, number | bigint>).map(([p, n]) => [p, Number(n)]));
      break;
    }
    case 'string':
    case 'path':
      if (typeof raw !== 'string' || raw === '') throw configError(where, key, raw, 'takes a non-empty string');
      if (k.type === 'path' && raw.includes('\0')) throw configError(where, key, raw, 'a path has no NUL');
      v = raw;
      break;
  }
  const why = k.check?.(v);
  if (why !== undefined) throw configError(where, key, raw, why);
  return v;
}

function parseTextList(raw: string): unknown {
  const t = raw.trim();
  if (t.startsWith('[')) {
    try {
      return JSON.parse(t);
    } catch {
      return undefined;
    }
  }
  return t === '' ? [] : t.split(',').map((x) => x.trim()).filter((x) => x !== '');
}

function parseTextMap(raw: string): unknown {
  const t = raw.trim();
  if (t.startsWith('{')) {
    try {
      return JSON.parse(t);
    } catch {
      return undefined;
    }
  }
  const out: Record<string, number> = {};
  for (const pair of t === '' ? [] : t.split(',')) {
    const eq = pair.lastIndexOf('=');
    const n = pair.slice(eq + 1).trim();
    if (eq < 1 || !/^[0-9]+$/.test(n)) return undefined;
    out[pair.slice(0, eq).trim()] = Number(n);
  }
  return out;
}
