import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Clock } from '#core/clock.js';
import { D_KML } from '#core/debug.js';
import { IntersyncError } from '#core/errors.js';
import { formatTid } from '#core/ids.js';
import type { KmlRecord } from '#core/record.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { DEFAULT_FILESET, checkBackingDir, filesetPaths, findFileset, listFilesets, type FilesetPaths } from '#journal/layout.js';
import { mkfs } from '#journal/mkfs.js';
import { releasePidFile, takePidFile } from '#journal/pid-file.js';
import { EchoGuard } from '#presto/echo-guard.js';
import type { WatchFn } from '#presto/dir-watcher.js';
import { WatchCapture } from '#presto/watch-capture.js';
import { chooseLogDir, createLogger } from './logger.js';
import { writeStatusFile } from './status-file.js';

export interface FilesetNodeOptions {
  readonly dir: string;
  readonly fileset?: string;
  readonly debug: number;
  readonly logDir?: string;
  readonly settleMs?: number;
  readonly pollMs?: number;
  readonly clock: Clock;
  readonly watchFn?: WatchFn;
  /** Conditions a person must hear about at once. */
  readonly onWarning?: (err: IntersyncError) => void;
  readonly onRecords?: (recs: KmlRecord[]) => void;
}

/**
 * One node serving one fileset from its backing directory: the database, the
 * watch capture and the published status. Creates the fileset with defaults
 * when the directory has none, so `intersync DIR` needs no set-up.
 */
export class FilesetNode {
  readonly paths: FilesetPaths;
  readonly db: FilesetDb;
  readonly capture: WatchCapture;
  readonly guard = new EchoGuard();
  readonly log: Logger;
  readonly logFile: string;
  readonly created: boolean;
  readonly #flushLog: () => void;
  readonly #opts: FilesetNodeOptions;
  readonly #startedAt: number;
  #statusTimer: NodeJS.Timeout | undefined;

  private constructor(o: FilesetNodeOptions, paths: FilesetPaths, db: FilesetDb, created: boolean) {
    this.#opts = o;
    this.paths = paths;
    this.db = db;
    this.created = created;
    this.#startedAt = o.clock.now();
    const logDir = chooseLogDir(o.logDir, paths.logDir);
    const l = createLogger(logDir, paths.name, o.debug);
    this.log = l.log.child({ component: 'node' });
    this.logFile = l.file;
    this.#flushLog = l.flush;
    const kmlLog = l.log.child({ component: 'kml' });
    this.capture = new WatchCapture({
      db, root: paths.dir, nodeId: db.meta.nodeId, clock: o.clock, log: l.log, debug: o.debug, guard: this.guard,
      ...(o.settleMs === undefined ? {} : { settleMs: o.settleMs }),
      ...(o.pollMs === undefined ? {} : { pollMs: o.pollMs }),
      ...(o.watchFn === undefined ? {} : { watchFn: o.watchFn }),
      journal: (changes) => {
        const recs = db.commit(changes);
        if ((o.debug & D_KML) !== 0) {
          for (const r of recs) kmlLog.debug({ tid: formatTid(r.tid), kind: r.kind, path: r.path, newPath: r.newPath }, 'record');
        }
        o.onRecords?.(recs);
        return recs.length;
      },
      onWarning: (err) => {
        this.#writeStatus();
        o.onWarning?.(err);
      },
    });
  }

  static async start(o: FilesetNodeOptions): Promise<FilesetNode> {
    const dir = checkBackingDir(o.dir);
    let paths: FilesetPaths;
    let created = false;
    if (o.fileset === undefined && listFilesets(dir).length === 0) {
      paths = mkfs(dir, { fileset: DEFAULT_FILESET, force: false, clock: o.clock }).paths;
      created = true;
    } else if (o.fileset !== undefined && !existsSync(filesetPaths(dir, o.fileset).db)) {
      paths = mkfs(dir, { fileset: o.fileset, force: false, clock: o.clock }).paths;
      created = true;
    } else {
      paths = findFileset(dir, o.fileset);
    }
    // Refuse a damaged store before touching anything, then take the pid file.
    const db = FilesetDb.open(paths.db);
    const holder = takePidFile(paths.pidFile);
    if (holder !== undefined) {
      db.close();
      throw IntersyncError.DAEMON_RUNNING(dir, holder);
    }
    try {
      const node = new FilesetNode(o, paths, db, created);
      node.log.info({ dir, uuid: db.meta.uuid, node: db.meta.nodeId, lastTid: formatTid(db.lastTid) }, 'starting');
      await node.capture.start();
      node.#writeStatus();
      node.#statusTimer = setInterval(() => node.#writeStatus(), 1000);
      node.#statusTimer.unref();
      return node;
    } catch (e) {
      db.close();
      releasePidFile(paths.pidFile);
      throw e;
    }
  }

  async stop(): Promise<void> {
    if (this.#statusTimer !== undefined) clearInterval(this.#statusTimer);
    await this.capture.stop();
    this.log.info({ lastTid: formatTid(this.db.lastTid) }, 'stopped');
    this.#writeStatus();
    this.db.close();
    releasePidFile(this.paths.pidFile);
    this.#flushLog();
  }

  #writeStatus(): void {
    try {
      writeStatusFile(this.paths.statusFile, {
        pid: process.pid, startedAt: this.#startedAt, updatedAt: this.#opts.clock.now(), role: 'server',
        fileset: this.paths.name, uuid: this.db.meta.uuid, nodeId: this.db.meta.nodeId, dir: this.paths.dir,
        logFile: this.logFile, debug: this.#opts.debug, capture: this.capture.status(),
      });
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'cannot write status file');
    }
  }
}
