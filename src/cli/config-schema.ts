/**
 * The one schema of intersync's settings: every key of the config file, the daemon flag that sets it,
 * its type, default, whether SIGHUP applies it live, and what it means. The CLI's defaults, the
 * validation of a file, the file written at first start and `intersync config` all read it.
 * Invariant: a key validates to exactly one typed value, or is refused with key, value and reason.
 */
import { parseDebug } from '#core/debug.js';
import { IntersyncError } from '#core/errors.js';
import { POLICY_NAMES, parsePolicy } from '#policy/conflict-policy.js';
import { parseRate } from '#net/rate-limit.js';
import { parseKeep } from '#apply/versions.js';

export type ConfigValue = string | number | boolean;

export interface ConfigKey {
  readonly key: string;
  readonly type: 'string' | 'int' | 'bool' | 'enum' | 'path';
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
  { key: 'settle-ms', type: 'int', live: false, doc: 'quiet time (ms) before a batch of changes is journaled (default 20)' },
  { key: 'listen', type: 'string', default: '0.0.0.0:7777', live: false, doc: 'server: ADDR:PORT to serve on (HTTPS; plain HTTP by default on loopback), or "none"', check: (v) => (LISTEN_RE.test(String(v)) ? undefined : 'not ADDR:PORT, http(s)://ADDR:PORT or none') },
  { key: 'insecure-http', type: 'bool', default: false, live: false, doc: 'allow plain HTTP outside the loopback address, with a warning' },
  { key: 'state-dir', type: 'path', live: false, doc: 'where secrets, the TLS key and credentials live, never in DIR' },
  { key: 'tls-cert', type: 'path', live: false, doc: 'server: serve HTTPS with this certificate (PEM) instead of the self-signed one' },
  { key: 'tls-key', type: 'path', live: false, doc: 'server: the certificate\'s private key (PEM)' },
  { key: 'token-scope', type: 'enum', values: ['fileset', 'subtree'], default: 'fileset', live: false, doc: 'server: write tokens per fileset or per top-level subtree' },
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
