import { accessSync, constants, existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { IntersyncError } from '#core/errors.js';
import { META_DIR } from '#core/format.js';

/** Where a fileset keeps its metadata inside its backing directory. */
export interface FilesetPaths {
  readonly dir: string; // the backing directory, absolute
  readonly name: string;
  readonly meta: string; // DIR/.intermezzo/<fileset>
  readonly db: string;
  /** Where releases before 0.4 kept the fileset secret, inside the served tree; moved to the state dir at start. */
  readonly legacySecret: string;
  readonly tmp: string; // temp files of the apply path, renamed into place
  readonly pidFile: string;
  readonly statusFile: string;
  readonly logDir: string; // fallback log directory
  readonly offlineFile: string; // present: the node was disconnected on purpose (intersync disconnect)
  readonly conflictsDir: string; // losing versions kept recoverable
}

export const DEFAULT_FILESET = 'default';

export function filesetPaths(dir: string, name: string): FilesetPaths {
  const abs = resolve(dir);
  const meta = join(abs, META_DIR, name);
  return {
    dir: abs,
    name,
    meta,
    db: join(meta, 'fileset.db'),
    legacySecret: join(meta, 'secret'),
    tmp: join(meta, 'tmp'),
    pidFile: join(meta, 'daemon.pid'),
    statusFile: join(meta, 'status.json'),
    logDir: join(meta, 'log'),
    offlineFile: join(meta, 'offline'),
    conflictsDir: join(meta, 'conflicts'),
  };
}

export function nodeIdFile(dir: string): string {
  return join(resolve(dir), META_DIR, 'node-id');
}

export function checkFilesetName(name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) {
    throw IntersyncError.BAD_ARGUMENT(
      `bad fileset name ${JSON.stringify(name)}`,
      'use 1 to 64 letters, digits, dot, dash or underscore, starting with a letter or digit',
    );
  }
  return name;
}

/** Check that `dir` is an existing directory this process can read, write and search. */
export function checkBackingDir(dir: string): string {
  const abs = resolve(dir);
  let st;
  try {
    st = statSync(abs);
  } catch (e) {
    throw IntersyncError.IO('stat', abs, e);
  }
  if (!st.isDirectory()) throw IntersyncError.NOT_A_DIRECTORY(abs);
  try {
    accessSync(abs, constants.R_OK | constants.W_OK | constants.X_OK);
  } catch (e) {
    throw IntersyncError.PERMISSION_DENIED(abs, e);
  }
  return abs;
}

/** Names of the filesets whose database exists in `dir`. */
export function listFilesets(dir: string): string[] {
  const root = join(resolve(dir), META_DIR);
  if (!existsSync(root)) return [];
  return readdirSync(root, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(join(root, e.name, 'fileset.db')))
    .map((e) => e.name)
    .sort();
}

/** The fileset to use in `dir`: the named one, or the only one there. */
export function findFileset(dir: string, name?: string): FilesetPaths {
  const abs = checkBackingDir(dir);
  if (name !== undefined) {
    checkFilesetName(name);
    const p = filesetPaths(abs, name);
    if (!existsSync(p.db)) throw IntersyncError.NO_FILESET(abs, name);
    return p;
  }
  const names = listFilesets(abs);
  if (names.length === 0) throw IntersyncError.NO_FILESET(abs);
  if (names.length > 1) throw IntersyncError.FILESET_AMBIGUOUS(abs, names);
  return filesetPaths(abs, names[0]!);
}
