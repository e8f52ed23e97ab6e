import { systemClock } from '#core/clock.js';
import { formatDigest } from '#core/digest.js';
import { debugNames } from '#core/debug.js';
import { IntersyncError } from '#core/errors.js';
import { NO_VERSION, formatTid, parseTid } from '#core/ids.js';
import type { KmlRecord } from '#core/record.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { findFileset } from '#journal/layout.js';
import { mkfs } from '#journal/mkfs.js';
import { readPidFile } from '#journal/pid-file.js';
import { readStatusFile } from '#daemon/status-file.js';
import { digestOfDisk } from '#presto/scan.js';
import { fmtAge, fmtBytes } from './output.js';

type Print = (line: string) => void;

export function cmdMkfs(dir: string, o: { fileset: string; force: boolean; json: boolean }, print: Print): void {
  const r = mkfs(dir, { fileset: o.fileset, force: o.force, clock: systemClock });
  if (o.json) {
    print(JSON.stringify({ dir: r.paths.dir, fileset: r.paths.name, uuid: r.uuid, nodeId: r.nodeId, secretFile: r.paths.secret, db: r.paths.db }));
    return;
  }
  print(`created fileset '${r.paths.name}' in ${r.paths.dir}`);
  print(`  shared-uuid  ${r.uuid}`);
  print(`  node id      ${r.nodeId}`);
  print(`  secret file  ${r.paths.secret}  (give it to clients with --secret-file)`);
  print(`  database     ${r.paths.db}`);
}

function withDb<T>(dir: string, fileset: string | undefined, fn: (db: FilesetDb) => T): T {
  const paths = findFileset(dir, fileset);
  const db = FilesetDb.open(paths.db, { readonly: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

export function recordLine(r: KmlRecord): string {
  const obj = r.newPath !== null ? `${r.path} -> ${r.newPath}` : r.target !== null ? `${r.path} -> ${r.target}` : r.path;
  const data = r.hash !== null ? ` size=${r.size ?? 0} sha256=${r.hash.slice(0, 16)}` : '';
  const pre = r.preVersion === NO_VERSION ? 'new' : formatTid(r.preVersion);
  return `${formatTid(r.tid)} ${r.kind.padEnd(8)} ${obj}  mode=${r.mode.toString(8).padStart(4, '0')}${data} pre=${pre} fid=${r.fid} origin=${r.origin}`;
}

export function recordJson(r: KmlRecord): Record<string, unknown> {
  return { ...r, tid: formatTid(r.tid), preVersion: formatTid(r.preVersion), postVersion: formatTid(r.postVersion) };
}

export function cmdKml(dir: string, o: { fileset?: string; since?: string; json: boolean }, print: Print): void {
  let since = NO_VERSION;
  if (o.since !== undefined) {
    const t = parseTid(o.since);
    if (t === undefined) throw IntersyncError.BAD_ARGUMENT(`--since takes a TID, got ${JSON.stringify(o.since)}`, 'write it as 0x0000000000000010 or 16');
    since = t;
  }
  withDb(dir, o.fileset, (db) => {
    let cursor = since;
    for (;;) {
      const page = db.readKml(cursor, 5000);
      for (const r of page) print(o.json ? JSON.stringify(recordJson(r)) : recordLine(r));
      if (page.length < 5000) break;
      cursor = page[page.length - 1]!.tid;
    }
  });
}

export async function cmdDigest(dir: string, o: { fileset?: string; scan: boolean; json: boolean }, print: Print): Promise<void> {
  const paths = findFileset(dir, o.fileset);
  if (o.scan) {
    const t0 = performance.now();
    const d = await digestOfDisk(paths.dir);
    const digest = formatDigest(d.digest);
    if (o.json) print(JSON.stringify({ source: 'disk', digest, objects: d.objects, bytes: d.bytes, durMs: Math.round(performance.now() - t0) }));
    else print(digest);
    return;
  }
  withDb(dir, o.fileset, (db) => {
    const digest = formatDigest(db.digest);
    if (o.json) print(JSON.stringify({ source: 'journal', digest, tid: formatTid(db.lastTid), objects: db.objectCount() }));
    else print(digest);
  });
}

export function cmdStatus(dir: string, o: { fileset?: string; json: boolean }, print: Print): void {
  const paths = findFileset(dir, o.fileset);
  const daemon = readStatusFile(paths.statusFile);
  const pid = readPidFile(paths.pidFile);
  const running = pid !== undefined && daemon?.pid === pid;
  withDb(dir, o.fileset, (db) => {
    const s = {
      dir: paths.dir, fileset: paths.name, uuid: db.meta.uuid, nodeId: db.meta.nodeId, role: 'server' as const,
      daemon: running ? { pid, since: daemon.startedAt, logFile: daemon.logFile, debug: debugNames(daemon.debug) } : null,
      lastTid: formatTid(db.lastTid), records: db.recordCount(), objects: db.objectCount(), digest: formatDigest(db.digest),
      capture: running ? daemon.capture : null,
      peers: db.lastRcvd().map((p) => ({ peer: p.peer, lastRcvd: formatTid(p.tid), updated: p.updated })),
    };
    if (o.json) {
      print(JSON.stringify(s));
      return;
    }
    print(`fileset ${s.fileset} (${s.uuid}) in ${s.dir}`);
    print(`  node ${s.nodeId}, role ${s.role}`);
    if (s.daemon === null) print('  daemon: not running');
    else print(`  daemon: running, pid ${s.daemon.pid}, up ${fmtAge(Date.now() - s.daemon.since)}, log ${s.daemon.logFile}`);
    print(`  journal: last TID ${s.lastTid}, ${s.records} records, ${s.objects} objects`);
    print(`  digest: ${s.digest}`);
    const c = s.capture;
    if (c !== null) {
      print(`  capture: ${c.kind} ${c.state}, ${c.watchedDirs} directories watched, ${c.pending} events pending, ${c.records} records since start`);
      if (c.lastScan !== null) print(`  start-up scan: ${c.lastScan.entries} entries, ${c.lastScan.dirty} changed, ${c.lastScan.durMs} ms`);
      if (c.watchLimit !== null) {
        print(`  WARNING: inotify watch limit reached${c.watchLimit.limit === null ? '' : ` (max_user_watches ${c.watchLimit.limit})`} ${fmtAge(Date.now() - c.watchLimit.since)} ago; ${c.watchLimit.unwatchedDirs} directories are rescanned instead of watched`);
        print(`           ${c.watchLimit.hint}`);
      }
      if (c.lastError !== null) print(`  last error: ${c.lastError}`);
    }
    for (const p of s.peers) print(`  peer ${p.peer}: last_rcvd ${p.lastRcvd}`);
  });
}

export { fmtBytes };
