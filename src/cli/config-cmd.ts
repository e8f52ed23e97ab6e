/**
 * `intersync config DIR [KEY=VALUE...]`: every setting with its effective value and where it came from
 * (the running daemon's view when one runs: flag, file, fileset database or default); an assignment
 * is validated by the schema, written to the config file (and the fileset database for fileset
 * settings), and a running daemon is told with SIGHUP.
 */
import { accessSync, constants, existsSync } from 'node:fs';
import type { Command } from 'commander';
import { parseDebug } from '#core/debug.js';
import { IntersyncError } from '#core/errors.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { findFileset } from '#journal/layout.js';
import { readPidFile } from '#journal/pid-file.js';
import { CONFIG_SCHEMA, fieldOf, schemaKey, validateValue, type ConfigValue } from './config-schema.js';
import { dirConfigPath, findConfig, mergeConfig, readConfig, renderConfig, setConfigKey, writeConfigFile, type Effective } from './config-file.js';
import { readPublished, storedReader } from './daemon-config.js';

type Print = (line: string) => void;

/** The daemon options given on the command line (not commander's defaults), as config keys. */
export function flagsGiven(cmd: Command, o: Record<string, unknown>): Map<string, ConfigValue> {
  const out = new Map<string, ConfigValue>();
  for (const k of CONFIG_SCHEMA) {
    const field = fieldOf(k.key);
    const v = o[field];
    if (v === undefined || cmd.getOptionValueSource(field) !== 'cli') continue;
    out.set(k.key, k.key === 'debug' ? parseDebug(String(v)) : (v as ConfigValue));
  }
  return out;
}

interface Shown extends Effective {
  readonly file: string | null;
}

function effective(dir: string, fileset: string, explicit: string | undefined): { file: string | null; keys: Effective[]; daemon: boolean } {
  const pub = explicit === undefined ? readPublished(dir, fileset) : undefined;
  if (pub !== undefined) return { file: pub.file, keys: [...pub.keys], daemon: true };
  const file = findConfig(explicit, dir, fileset);
  const values = file !== null && existsSync(file) ? readConfig(file) : null;
  return { file: values === null ? null : file, keys: mergeConfig(new Map(), values, storedReader(dir, fileset)), daemon: false };
}

export function cmdConfig(dir: string, assignments: string[], o: { fileset?: string; config?: string; json: boolean }, print: Print): void {
  const paths = findFileset(dir, o.fileset);
  const updates: Array<[string, ConfigValue]> = [];
  for (const a of assignments) {
    const eq = a.indexOf('=');
    const key = eq < 0 ? a : a.slice(0, eq);
    if (eq < 0 || schemaKey(key) === undefined) {
      throw IntersyncError.BAD_ARGUMENT(`unknown setting ${JSON.stringify(a)}`, `settings: ${CONFIG_SCHEMA.map((k) => k.key).join(', ')} (as KEY=VALUE)`);
    }
    let v: ConfigValue;
    try {
      v = validateValue('setting', key, a.slice(eq + 1), true);
    } catch (e) {
      throw IntersyncError.BAD_ARGUMENT((e as Error).message, 'intersync config DIR lists every key with its value');
    }
    if (key === 'conflict-hook') {
      try {
        accessSync(String(v), constants.X_OK);
      } catch {
        throw IntersyncError.BAD_ARGUMENT(`conflict-hook ${String(v)} is not an executable file`, 'give the absolute path of a script that prints local, remote or both');
      }
    }
    updates.push([key, v]);
  }
  if (updates.length > 0) {
    let file = findConfig(o.config, paths.dir, paths.name);
    if (file === null || !existsSync(file)) {
      file ??= dirConfigPath(paths.dir, paths.name);
      const base = mergeConfig(new Map(), null, storedReader(paths.dir, paths.name));
      writeConfigFile(file, renderConfig(base.map((k) => (k.source === 'fileset' ? k : { ...k, value: null }))));
    }
    for (const [k, v] of updates) setConfigKey(file, k, v);
    const stored = updates.filter(([k]) => schemaKey(k)?.stored === true);
    if (stored.length > 0) {
      const db = FilesetDb.open(paths.db, { check: false });
      try {
        for (const [k, v] of stored) db.setMeta(k, String(v));
      } finally {
        db.close();
      }
    }
    const pid = readPidFile(paths.pidFile);
    if (pid !== undefined) process.kill(pid, 'SIGHUP');
  }
  const e = effective(paths.dir, paths.name, o.config);
  // Just changed: show the new values (a running daemon republishes once it has reloaded).
  const keys: Shown[] = e.keys.map((k) => {
    const u = updates.find(([x]) => x === k.key);
    return { ...(u === undefined ? k : { ...k, value: u[1], source: 'file' }), file: e.file };
  });
  if (o.json) {
    print(JSON.stringify({ dir: paths.dir, fileset: paths.name, file: e.file, daemon: e.daemon, keys }));
    return;
  }
  print(`# ${paths.dir} fileset ${paths.name}; file ${e.file ?? '(none yet: the daemon writes one at start)'}${e.daemon ? '; as the running daemon sees it' : ''}`);
  const w = Math.max(...keys.map((k) => k.key.length));
  for (const k of keys) {
    const from = k.source === 'file' ? `file ${e.file ?? ''}` : k.source === 'fileset' ? 'fileset database' : k.source;
    print(`${k.key.padEnd(w)} = ${k.value === null ? '(unset)' : JSON.stringify(k.value)}  [${from}${k.live ? ', live' : ''}]`);
  }
}

export function addConfigCommand(program: Command, print: Print): void {
  program
    .command('config')
    .description('show every setting with its effective value and where it came from (flag, file, fileset database, default), or change settings')
    .argument('<DIR>', 'the backing directory')
    .argument('[KEY=VALUE...]', 'settings to change: written to the config file (fileset settings to the database too); a running daemon reloads on SIGHUP')
    .option('--fileset <NAME>', 'fileset (default: the only one in DIR)')
    .option('--config <FILE>', 'the config file (default: /etc/intersync/<fileset>.toml, else DIR/.intermezzo/<fileset>/config.toml)')
    .option('--json', 'print as JSON: {file, daemon, keys: [{key, value, source, live}]}', false)
    .addHelpText('after', [
      '', 'Live keys (SIGHUP, or this command, applies them at once): ' + CONFIG_SCHEMA.filter((k) => k.live).map((k) => k.key).join(', '),
      '', 'Examples:',
      '  intersync config /exports/site                                  every key, its value and source',
      '  intersync config /exports/site conflict-policy=server-wins      change the policy (live)',
      '  intersync config /exports/site --json | jq \'.keys[] | select(.source=="flag")\'',
    ].join('\n'))
    .action((dir: string, kv: string[], o: { fileset?: string; config?: string; json: boolean }) => cmdConfig(dir, kv, o, print));
}
