import { randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Clock } from '#core/clock.js';
import { IntersyncError } from '#core/errors.js';
import { META_DIR } from '#core/format.js';
import { isNodeId, type NodeId } from '#core/ids.js';
import { FilesetDb } from './fileset-db.js';
import { checkBackingDir, checkFilesetName, filesetPaths, nodeIdFile, type FilesetPaths } from './layout.js';
import { readPidFile } from './pid-file.js';

export interface MkfsOptions {
  readonly fileset: string;
  readonly force: boolean;
  readonly clock: Clock;
  /** The shared uuid of an existing fileset this node joins (a client); a new one when absent. */
  readonly uuid?: string;
  /** Fileset settings to store (`preserve-setid`, `preserve-owner`, `safe-links`: 'true' or 'false'). */
  readonly settings?: Readonly<Record<string, string>>;
}

export interface MkfsResult {
  readonly paths: FilesetPaths;
  readonly uuid: string;
  readonly nodeId: NodeId;
}

/**
 * Create a fileset in a backing directory (the seeds' mkizofs): its metadata
 * folder, database, shared uuid and this node's id. Secrets (the fileset
 * secret, TLS key, credentials) live in the state directory, never here. Refuses an
 * existing fileset unless `force`, and never touches the files themselves.
 */
export function mkfs(dir: string, opts: MkfsOptions): MkfsResult {
  const name = checkFilesetName(opts.fileset);
  const abs = checkBackingDir(dir);
  const paths = filesetPaths(abs, name);
  if (existsSync(paths.db)) {
    if (!opts.force) throw IntersyncError.FILESET_EXISTS(abs, name);
    const pid = readPidFile(paths.pidFile);
    if (pid !== undefined) throw IntersyncError.DAEMON_RUNNING(abs, pid);
  }
  try {
    const nodeId = ensureNodeId(abs);
    mkdirSync(paths.meta, { recursive: true, mode: 0o700 });
    // Build the new store beside the old one and rename it into place, so a
    // failed mkfs --force leaves the old journal as it was.
    const staging = `${paths.db}.new`;
    rmSync(staging, { force: true });
    rmSync(`${staging}-wal`, { force: true });
    rmSync(`${staging}-shm`, { force: true });
    const uuid = opts.uuid ?? randomUUID();
    const db = FilesetDb.create(staging, { fileset: name, uuid, nodeId, created: opts.clock.now() });
    for (const [k, v] of Object.entries(opts.settings ?? {})) db.setMeta(k, v);
    db.close();
    for (const suffix of ['-wal', '-shm']) rmSync(`${paths.db}${suffix}`, { force: true });
    renameSync(staging, paths.db);
    mkdirSync(paths.tmp, { recursive: true, mode: 0o700 });
    return { paths, uuid, nodeId };
  } catch (e) {
    if (e instanceof IntersyncError) throw e.wrap('mkfs');
    throw IntersyncError.IO('mkfs: write', paths.meta, e);
  }
}

/** This node's id, kept in DIR/.intermezzo/node-id and created on first use. */
export function ensureNodeId(dir: string): NodeId {
  const file = nodeIdFile(dir);
  if (existsSync(file)) {
    const id = readFileSync(file, 'utf8').trim();
    if (!isNodeId(id)) throw IntersyncError.DB_CORRUPT(file, new Error('node-id is not 16 hex digits'));
    return id;
  }
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const id = randomBytes(8).toString('hex') as NodeId;
  writeFileAtomic(file, `${id}\n`, 0o644);
  return id;
}

function writeFileAtomic(file: string, text: string, mode: number): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, text, { mode, flush: true });
  chmodSync(tmp, mode);
  renameSync(tmp, file);
}

export { META_DIR };
