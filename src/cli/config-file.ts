/**
 * The config file of one fileset: found, read, validated against the schema, merged with the flags
 * (a flag wins over the file, the file over the fileset database, that over the default), written with
 * every default spelled out when a daemon starts without one. TOML (smol-toml), or JSON by extension.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parse as parseToml, stringify as tomlString } from 'smol-toml';
import { IntersyncError } from '#core/errors.js';
import { CONFIG_SCHEMA, configError, tomlValue, validateValue, type ConfigValue } from './config-schema.js';

/** Where `/etc/intersync/<fileset>.toml` lives; INTERSYNC_ETC moves it (tests never write /etc). */
export function etcDir(): string {
  const e = process.env.INTERSYNC_ETC;
  return e !== undefined && e !== '' ? e : '/etc/intersync';
}

/** The per-fileset file inside the metadata folder. */
export function dirConfigPath(dir: string, fileset: string): string {
  return join(resolve(dir), '.intermezzo', fileset, 'config.toml');
}

/** The file to read: --config, else /etc/intersync/<fileset>.toml, else DIR/.intermezzo/<fs>/config.toml; null if none exists. */
export function findConfig(explicit: string | undefined, dir: string, fileset: string): string | null {
  if (explicit !== undefined) return resolve(explicit);
  for (const f of [join(etcDir(), `${fileset}.toml`), dirConfigPath(dir, fileset)]) if (existsSync(f)) return f;
  return null;
}

export type ConfigValues = Map<string, ConfigValue>;

/** Read and validate a whole file: every key is known and well typed, or the first bad one is refused. */
export function readConfig(file: string): ConfigValues {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw IntersyncError.IO('read config file', file, e).wrap('load config');
  }
  let obj: Record<string, unknown>;
  try {
    obj = (file.endsWith('.json') ? JSON.parse(text) : parseToml(text)) as Record<string, unknown>;
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';
    throw new IntersyncError('BAD_CONFIG', `${file}: not valid ${file.endsWith('.json') ? 'JSON' : 'TOML'}: ${msg}`, {
      hint: 'fix the syntax; intersync config DIR lists every key with its default',
    });
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw configError(file, '(top)', obj, 'the file must hold a table of keys');
  const out: ConfigValues = new Map();
  for (const [k, raw] of Object.entries(obj)) out.set(k, validateValue(file, k, raw));
  return out;
}

export type Source = 'flag' | 'file' | 'fileset' | 'default' | 'unset';

export interface Effective {
  readonly key: string;
  readonly value: ConfigValue | null;
  readonly source: Source;
  readonly live: boolean;
}

/**
 * Merge, per key: the flag given on the command line, else the file, else the fileset database
 * (`stored` keys, as `intersync config` and mkfs set them), else the schema's default.
 */
export function mergeConfig(flags: ReadonlyMap<string, ConfigValue>, file: ConfigValues | null, stored: (key: string) => string | undefined): Effective[] {
  return CONFIG_SCHEMA.map((k) => {
    const f = flags.get(k.key);
    if (f !== undefined) return { key: k.key, value: f, source: 'flag', live: k.live };
    const v = file?.get(k.key);
    if (v !== undefined) return { key: k.key, value: v, source: 'file', live: k.live };
    const s = k.stored === true ? stored(k.key) : undefined;
    if (s !== undefined && s !== '') {
      try {
        return { key: k.key, value: validateValue('fileset database', k.key, s, true), source: 'fileset', live: k.live };
      } catch {
        // a value the database holds from an older release that the schema refuses: the default applies
      }
    }
    return { key: k.key, value: k.default ?? null, source: k.default === undefined ? 'unset' : 'default', live: k.live };
  });
}

/** The file a daemon writes at first start: every key with its value (unset ones commented out), one comment each. */
export function renderConfig(values: readonly Effective[]): string {
  const lines = ['# intersync settings of this fileset (written at first start; every key with its value).',
    '# A command-line flag wins over this file. SIGHUP reloads the keys marked (live); the others need a restart.', ''];
  for (const k of CONFIG_SCHEMA) {
    const e = values.find((x) => x.key === k.key);
    lines.push(`# ${k.doc}${k.live ? ' (live)' : ''}`);
    if (e === undefined || e.value === null) lines.push(`# ${k.key} = ""`);
    else lines.push(tomlLine(k.key, e.value));
  }
  return `${lines.join('\n')}\n`;
}

/** `key = value` on one line: lists and tables inline, so that a table never swallows the keys after it. */
function tomlLine(key: string, value: ConfigValue): string {
  return typeof value === 'object' ? `${key} = ${tomlValue(value)}` : tomlString({ [key]: value }).trim();
}

export function writeConfigFile(file: string, text: string): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o644 });
  renameSync(tmp, file);
}

/** Set one key in an existing TOML file, keeping its other lines and comments. */
export function setConfigKey(file: string, key: string, value: ConfigValue): void {
  const line = tomlLine(key, value);
  const text = readFileSync(file, 'utf8');
  if (file.endsWith('.json')) {
    const obj = JSON.parse(text) as Record<string, unknown>;
    obj[key] = value;
    writeConfigFile(file, `${JSON.stringify(obj, null, 2)}\n`);
    return;
  }
  const re = new RegExp(`^#?\\s*${key.replace(/[-]/g, '\\-')}\\s*=.*$`, 'm');
  writeConfigFile(file, re.test(text) ? text.replace(re, line) : `${text.trimEnd()}\n${line}\n`);
}

/** The `ignore` patterns of DIR's fileset as its config file gives them (none when there is no file or no key). */
export function configuredIgnore(dir: string, fileset: string): readonly string[] {
  const file = findConfig(undefined, dir, fileset);
  if (file === null || !existsSync(file)) return [];
  const v = readConfig(file).get('ignore');
  return Array.isArray(v) ? (v as readonly string[]) : [];
}
