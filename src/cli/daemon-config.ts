/**
 * The settings of a running daemon: loaded once at start (an invalid file refuses the start),
 * published beside the status file for `intersync config DIR`, written with its defaults when the
 * fileset had no file, and reloaded on SIGHUP (live keys applied, the rest named as needing a restart).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { FilesetDb } from '#journal/fileset-db.js';
import { filesetPaths, listFilesets, DEFAULT_FILESET } from '#journal/layout.js';
import { readPidFile } from '#journal/pid-file.js';
import { CONFIG_SCHEMA, sameValue, type ConfigValue } from './config-schema.js';
import { dirConfigPath, findConfig, mergeConfig, readConfig, renderConfig, writeConfigFile, type Effective } from './config-file.js';

/** The name of the published effective settings inside the fileset's metadata folder. */
const EFFECTIVE_FILE = 'config.effective.json';

export interface PublishedConfig {
  readonly pid: number;
  readonly file: string | null;
  readonly keys: readonly Effective[];
}

/** The fileset a command on DIR means: the one named, else the only one, else "default". */
export function filesetOf(dir: string, named: string | undefined): string {
  if (named !== undefined) return named;
  try {
    const names = listFilesets(dir);
    if (names.length === 1) return names[0]!;
  } catch {
    // no such directory yet: the daemon's own check says so
  }
  return DEFAULT_FILESET;
}

/** A stored (fileset database) setting, read-only; undefined when there is no database yet. */
export function storedReader(dir: string, fileset: string): (key: string) => string | undefined {
  const db = filesetPaths(dir, fileset).db;
  if (!existsSync(db)) return () => undefined;
  const values = new Map<string, string>();
  try {
    const d = FilesetDb.open(db, { readonly: true, check: false });
    try {
      for (const k of CONFIG_SCHEMA) {
        const v = k.stored === true ? d.getMeta(k.key) : undefined;
        if (v !== undefined) values.set(k.key, v);
      }
    } finally {
      d.close();
    }
  } catch {
    // a damaged store: the daemon's own open refuses it with DB_CORRUPT
  }
  return (k) => values.get(k);
}

/** The daemon's settings and how to reload them. */
export class DaemonConfig {
  readonly flags: ReadonlyMap<string, ConfigValue>;
  /** The file read, or null when the fileset had none (one is written once the daemon runs). */
  file: string | null;
  keys: Effective[];
  readonly #dir: string;
  readonly #fileset: string;

  private constructor(dir: string, fileset: string, flags: ReadonlyMap<string, ConfigValue>, file: string | null, keys: Effective[]) {
    this.#dir = dir;
    this.#fileset = fileset;
    this.flags = flags;
    this.file = file;
    this.keys = keys;
  }

  /** Load at start: the file given or found (refused with key, value and reason when invalid), merged with the flags. */
  static load(dir: string, flags: ReadonlyMap<string, ConfigValue>, explicit: string | undefined): DaemonConfig {
    const fileset = filesetOf(dir, flags.get('fileset') as string | undefined);
    const found = findConfig(explicit, dir, fileset);
    // --config naming a file that does not exist yet: it is written there once the daemon runs.
    const file = found !== null && existsSync(found) ? found : null;
    const values = file === null ? null : readConfig(file);
    const fs = (flags.get('fileset') as string | undefined) ?? (values?.get('fileset') as string | undefined) ?? fileset;
    return new DaemonConfig(dir, fs, flags, file, mergeConfig(flags, values, storedReader(dir, fs)));
  }

  get(key: string): ConfigValue | undefined {
    const v = this.keys.find((k) => k.key === key)?.value;
    return v === null ? undefined : v;
  }

  /** The stored keys given by a flag or the file: the daemon writes them to the fileset database. */
  storedOverrides(): Array<[string, string]> {
    return this.keys.filter((k) => schemaStored(k.key) && (k.source === 'flag' || k.source === 'file') && k.value !== null).map((k) => [k.key, String(k.value)]);
  }

  /**
   * Once the daemon runs (its fileset exists): write the file if there was none (`explicit` path or
   * the fileset's own) with every key and its default (commented: a later release's default applies),
   * the fileset's stored settings and a client's server URL spelled out; then publish.
   */
  afterStart(fileset: string, explicit: string | undefined, override: ReadonlyMap<string, ConfigValue>): void {
    if (this.file === null) {
      const target = explicit ?? dirConfigPath(this.#dir, fileset);
      const shown = this.keys.map((k) => {
        const o = override.get(k.key);
        if (o !== undefined) return { ...k, value: o };
        // Flags stay flags (a service's unit names them); the fileset's stored settings are spelled out.
        return k.source === 'fileset' ? k : { ...k, value: null };
      });
      const text = renderConfig(shown).replace(/^# ([a-z-]+) = ""$/gm, (line, key: string) => {
        const d = CONFIG_SCHEMA.find((x) => x.key === key)?.default;
        return d === undefined ? line : `# ${key} = ${JSON.stringify(d)}`;
      });
      writeConfigFile(target, text);
      this.file = target;
    }
    this.publish(fileset);
  }

  /**
   * The daemon runs: write the stored keys given by a flag or the file into the fileset database, write
   * the file if there was none (a client's `server` as its URL, never a one-time join token), publish,
   * and reload on SIGHUP.
   */
  started(
    db: { setMeta(k: string, v: string): void; getMeta(k: string): string | undefined }, fileset: string, log: Logger, explicit: string | undefined, client: boolean,
    onLive?: (key: string, value: ConfigValue | null) => void,
  ): void {
    for (const [k, v] of this.storedOverrides()) db.setMeta(k, v);
    const override = new Map<string, ConfigValue>();
    const url = client ? db.getMeta('server_url') : undefined;
    if (url !== undefined) override.set('server', url);
    this.afterStart(fileset, explicit, override);
    process.on('SIGHUP', () => {
      this.reload(log, (k, v) => {
        if (schemaStored(k)) db.setMeta(k, v === null ? '' : String(v));
        onLive?.(k, v);
      });
    });
  }

  publish(fileset: string): void {
    const p: PublishedConfig = { pid: process.pid, file: this.file, keys: this.keys };
    writeConfigFile(join(filesetPaths(this.#dir, fileset).meta, EFFECTIVE_FILE), `${JSON.stringify(p, null, 2)}\n`);
  }

  /**
   * SIGHUP: read the file again. An invalid file changes nothing (logged). Live keys that changed are
   * applied by `apply`; the others are logged as waiting for a restart. Returns the keys applied.
   */
  reload(log: Logger, apply: (key: string, value: ConfigValue | null) => void): string[] {
    if (this.file === null || !existsSync(this.file)) {
      log.warn({ file: this.file }, 'sighup: no config file to reload');
      return [];
    }
    let next: Effective[];
    try {
      next = mergeConfig(this.flags, readConfig(this.file), storedReader(this.#dir, this.#fileset));
    } catch (e) {
      log.error({ file: this.file, err: (e as Error).message, code: (e as { code?: string }).code }, 'sighup: config refused, nothing changed');
      return [];
    }
    const applied: string[] = [];
    const restart: string[] = [];
    for (const n of next) {
      const old = this.keys.find((k) => k.key === n.key);
      if (old === undefined || sameValue(old.value, n.value)) continue;
      if (n.live) {
        apply(n.key, n.value);
        applied.push(n.key);
        log.info({ key: n.key, from: old.value, to: n.value }, 'config changed live');
      } else restart.push(n.key);
    }
    if (restart.length > 0) log.warn({ keys: restart }, 'config changed: these keys take effect at the next restart');
    this.keys = next.map((n) => (restart.includes(n.key) ? this.keys.find((k) => k.key === n.key) ?? n : n));
    log.info({ file: this.file, applied: applied.length, pending: restart.length }, 'config reloaded');
    this.publish(this.#fileset);
    return applied;
  }
}

function schemaStored(key: string): boolean {
  return CONFIG_SCHEMA.find((k) => k.key === key)?.stored === true;
}

/** What a running daemon published, when it is the one running now. */
export function readPublished(dir: string, fileset: string): PublishedConfig | undefined {
  const p = filesetPaths(dir, fileset);
  try {
    const pub = JSON.parse(readFileSync(join(p.meta, EFFECTIVE_FILE), 'utf8')) as PublishedConfig;
    return readPidFile(p.pidFile) === pub.pid ? pub : undefined;
  } catch {
    return undefined;
  }
}
