import { systemClock } from '#core/clock.js';
import { formatDigest } from '#core/digest.js';
import { debugNames } from '#core/debug.js';
import { IntersyncError } from '#core/errors.js';
import { NO_VERSION, formatTid, parseTid } from '#core/ids.js';
import type { KmlRecord } from '#core/record.js';
import { existsSync } from 'node:fs';
import { ATTR_SETTINGS } from '#policy/attr-policy.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { findFileset } from '#journal/layout.js';
import { mkfs } from '#journal/mkfs.js';
import { statePaths } from '#journal/state-dir.js';
import { ensureSecret, ensureSelfSignedCert } from '#daemon/server-keys.js';
import { readPidFile } from '#journal/pid-file.js';
import { readStatusFile } from '#daemon/status-file.js';
import { resolveOpenConflict, type Keep } from '#daemon/resolve.js';
import type { ClientStatus } from '#daemon/client-node.js';
import type { ReintStatus } from '#reint/reintegrator.js';
import type { Transfer } from '#core/transfers.js';
import { formatRate } from '#net/rate-limit.js';
import { digestOfDisk } from '#presto/scan.js';
import { versionStats } from '#apply/versions.js';
import { readPublished } from './daemon-config.js';
import { IgnoreRules } from '#presto/ignore-rules.js';
import { configuredIgnore } from './config-file.js';
import { fmtAge, fmtBytes, fmtStartProgress } from './output.js';
import { NOTHING_WAITING, conflictCounts, lagOf, scopeWords, waitingAfter, waitingLocal, type Waiting } from './in-flight.js';

type Print = (line: string) => void;

export function cmdMkfs(
  dir: string,
  o: { fileset: string; force: boolean; json: boolean; stateDir: string; tlsCert?: string; preserveSetid: boolean; preserveOwner: boolean; safeLinks: boolean },
  print: Print,
): void {
  const settings = Object.fromEntries(ATTR_SETTINGS.map(([key, field]) => [key, String(o[field])]));
  const r = mkfs(dir, { fileset: o.fileset, force: o.force, clock: systemClock, settings });
  // Server side: the secret and (unless the site brings its own certificate) a self-signed one, outside the tree.
  const sp = statePaths(o.stateDir, r.nodeId, r.paths.name);
  ensureSecret(sp, r.paths.legacySecret);
  const fingerprint = o.tlsCert === undefined ? ensureSelfSignedCert(sp, `intersync-${r.nodeId}`) : null;
  const db = FilesetDb.open(r.paths.db, { check: false });
  try {
    db.setMeta('state_dir', o.stateDir);
  } finally {
    db.close();
  }
  if (o.json) {
    print(JSON.stringify({
      dir: r.paths.dir, fileset: r.paths.name, uuid: r.uuid, nodeId: r.nodeId, db: r.paths.db, stateDir: sp.dir, secretFile: sp.secret,
      tlsCert: fingerprint === null ? null : sp.tlsCert, tlsKey: fingerprint === null ? null : sp.tlsKey, fingerprint, settings,
    }));
    return;
  }
  print(`created fileset '${r.paths.name}' in ${r.paths.dir}`);
  print(`  shared-uuid  ${r.uuid}`);
  print(`  node id      ${r.nodeId}`);
  print(`  database     ${r.paths.db}`);
  print(`  state        ${sp.dir}  (secret, TLS key and enrolled nodes; outside the served tree)`);
  if (fingerprint !== null) print(`  certificate  ${sp.tlsCert} (self-signed, ${fingerprint})`);
  print(`  settings     ${Object.entries(settings).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  print(`  clients join with a token: intersync invite ${r.paths.dir}`);
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
  // originSeq is a bigint (an LML sequence number of another node): JSON has no 64-bit integer, so it is text.
  return {
    ...r, tid: formatTid(r.tid), preVersion: formatTid(r.preVersion), postVersion: formatTid(r.postVersion),
    originSeq: r.originSeq === null ? null : r.originSeq.toString(),
  };
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
    const d = await digestOfDisk(paths.dir, new IgnoreRules(paths.dir, configuredIgnore(paths.dir, paths.name)));
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

interface ServerSection {
  url: string | null;
  connected: string[];
  tokens: Array<{ scope: string; holder: string; expires: number }>;
  /** Absent from a daemon of an older release. */
  transfers?: Transfer[];
  bytes?: { in: number; out: number };
  bwlimit?: number | null;
}

export function cmdStatus(dir: string, o: { fileset?: string; json: boolean }, print: Print): void {
  const paths = findFileset(dir, o.fileset);
  const daemon = readStatusFile(paths.statusFile);
  const pid = readPidFile(paths.pidFile);
  const running = pid !== undefined && daemon?.pid === pid;
  const now = Date.now();
  withDb(dir, o.fileset, (db) => {
    const role = db.getMeta('role') === 'client' ? 'client' : 'server';
    const server = running ? ((daemon.server ?? null) as ServerSection | null) : null;
    const client = running ? ((daemon.client ?? null) as ClientStatus | null) : null;
    const reint = running ? ((daemon.reint ?? null) as ReintStatus | null) : null;
    const acked = new Map(db.lastRcvd().map((p) => [p.peer, p]));
    const peers = role === 'server'
      ? db.peers().map((p) => {
        const a = acked.get(p.node);
        const tid = a?.tid ?? 0n;
        const lag = lagOf(db, tid as never, now);
        return {
          node: p.node, replicate: p.replicate, connected: server?.connected.includes(p.node) ?? false, address: p.address,
          lastRcvd: formatTid(tid), lagRecords: lag.records, lagSince: lag.since, lagSeconds: lag.seconds,
          // What this peer still has to receive (files with new content and their bytes).
          waiting: lag.records > 0 ? waitingAfter(db, tid as never) : NOTHING_WAITING,
          lastSeen: p.lastSeen,
        };
      })
      : [];
    const s = {
      dir: paths.dir, fileset: paths.name, uuid: db.meta.uuid, nodeId: db.meta.nodeId, role,
      daemon: running ? { pid, since: daemon.startedAt, logFile: daemon.logFile, debug: debugNames(daemon.debug) } : null,
      lastTid: formatTid(db.lastTid), records: db.recordCount(), objects: db.objectCount(), digest: formatDigest(db.digest),
      pendingLocal: db.lmlCount(),
      // This node's own disk refusing writes for want of space, as the daemon saw it last (null when not, or not running).
      diskFull: running ? (daemon.diskFull ?? null) : null,
      conflicts: conflictCounts(db),
      // What peers replaced or removed, kept here (apply/versions.ts); the mode as the running daemon has it.
      versions: { ...versionStats(paths.meta), versioning: running ? (readPublished(paths.dir, paths.name)?.keys.find((k) => k.key === 'versioning')?.value ?? null) : null },
      capture: running ? daemon.capture : null,
      // Names matched by .intersyncignore or the config's ignore (not journaled), as capture met them; null when not running.
      ignored: running ? (daemon.capture.ignored ?? null) : null,
      server: role === 'server' ? {
        url: server?.url ?? null, tokens: (server?.tokens ?? []).map((t) => ({ ...t, words: scopeWords(t.scope) })), peers,
        // Large files moving now, each with its peer and progress; bytes on the server's connections since start.
        transfers: server?.transfers ?? [], bytesIn: server?.bytes?.in ?? null, bytesOut: server?.bytes?.out ?? null,
        bwlimit: server?.bwlimit ?? null, // bytes per second (--bwlimit), null: none
      } : null,
      client: role === 'client' ? {
        server: db.getMeta('server_url') ?? null, connected: client?.connected ?? false, offline: existsSync(paths.offlineFile),
        disconnectedSince: client?.disconnectedSince ?? null, lastRcvd: formatTid(db.lastRcvdOf(db.getMeta('server_node') ?? '')),
        serverTid: client?.serverTid ?? null,
        // Lag as the server counts it for this node (journal/in-flight.ts): records after last_rcvd, and the
        // time the oldest of them was journaled; the server's status shows the same lagSince.
        lagRecords: client?.lagRecords ?? null, lagSince: client?.lagSince ?? null, lagSeconds: client?.lagSeconds ?? null,
        tokensHeld: reint?.heldTokens ?? [], conflicts: client?.conflicts ?? 0, stale: client?.stale ?? 0,
        refused: reint?.refused ?? 0, lastRefusal: reint?.lastRefusal ?? null, resyncs: client?.resyncs ?? Number(db.getMeta('resyncs') ?? '0'),
        stuckSince: client?.stuckSince ?? null, firstCopy: client?.copy ?? null,
        // Up: the LML (files with new content and bytes); down: what the server has that this node has not applied.
        waitingUp: waitingLocal(db), waitingDown: client?.waitingDown ?? null,
        // Large files moving now, each with its progress; bytes on the connections to the server since start.
        transfers: client?.transfers ?? [],
        bytesIn: client?.bytesIn ?? null, bytesOut: client?.bytesOut ?? null, bwlimit: client?.bwlimit ?? null,
      } : null,
      // The reintegrator's own view (pending, refusals, the last one, since when stuck), as the daemon published it.
      reint: role === 'client' ? reint : null,
      lastError: client?.lastError ?? daemon?.capture.lastError ?? null,
    };
    if (o.json) {
      print(JSON.stringify(s));
      return;
    }
    print(`fileset ${s.fileset} (${s.uuid}) in ${s.dir}`);
    print(`  node ${s.nodeId}, role ${s.role}`);
    if (s.daemon === null) print('  daemon: not running');
    else print(`  daemon: running, pid ${s.daemon.pid}, up ${fmtAge(now - s.daemon.since)}, log ${s.daemon.logFile}`);
    print(`  journal: last TID ${s.lastTid}, ${s.records} records, ${s.objects} objects`);
    print(`  digest: ${s.digest}`);
    if (s.diskFull !== null) {
      print(`  DISK FULL since ${new Date(s.diskFull.since).toISOString()} (${fmtAge(now - s.diskFull.since)}) [DISK_FULL]: ${s.diskFull.steps.join('; ')}`);
      print(`           ${s.diskFull.hint}`);
    }
    if (s.client !== null) {
      const c = s.client;
      const since = c.disconnectedSince === null ? '' : ` since ${new Date(c.disconnectedSince).toISOString()}`;
      const link = s.daemon === null ? 'daemon not running' : c.connected ? 'connected' : c.offline ? `disconnected on request${since}` : `disconnected${since}, retrying`;
      // A client that cannot progress is not "lag 0": its records do not move, whatever the stream says.
      const lag = c.stuckSince !== null ? ', STUCK' : c.lagRecords === null ? '' : `, lag ${c.lagRecords} records / ${c.lagSeconds ?? '?'} s`;
      print(`  server: ${c.server ?? '?'} (${link}), last_rcvd ${c.lastRcvd}${lag}`);
      if (c.stuckSince !== null) {
        const last = c.lastRefusal === null ? '' : `; last refusal: change ${c.lastRefusal.seq}${c.lastRefusal.code === null ? '' : ` [${c.lastRefusal.code}]`}: ${c.lastRefusal.message}`;
        print(`  STUCK: unable to progress since ${new Date(c.stuckSince).toISOString()} (${fmtAge(now - c.stuckSince)}), ${c.refused} refusals, ${c.resyncs} resyncs${last}`);
      }
      if (!c.connected) print(`  disconnected${c.disconnectedSince === null ? '' : ` since ${new Date(c.disconnectedSince).toISOString()}`}, ${s.pendingLocal} pending records`);
      print(`  pending local records (LML): ${s.pendingLocal}; write tokens held: ${c.tokensHeld.length === 0 ? 'none' : c.tokensHeld.map(scopeWords).join(', ')}`);
      print(`  waiting up (to the server): ${fmtWaiting(c.waitingUp)}; down (from it): ${c.waitingDown === null ? '?' : fmtWaiting(c.waitingDown)}`);
      for (const t of c.transfers) print(`  ${fmtTransfer(t)}`);
      if (c.bytesIn !== null && c.bytesOut !== null) print(`  bytes on the wire since start: ${fmtBytes(c.bytesIn)} in, ${fmtBytes(c.bytesOut)} out${c.bwlimit === null ? '' : `; limit ${formatRate(c.bwlimit)}`}`);
      if (c.conflicts > 0 || c.refused > 0 || c.resyncs > 0) print(`  conflicts kept beside: ${c.conflicts}; changes refused by the server: ${c.refused}; resyncs: ${c.resyncs}`);
      if (c.firstCopy !== null && !c.firstCopy.done) print(`  first copy: ${c.firstCopy.files}/${c.firstCopy.totalFiles} files`);
    }
    if (s.server !== null) {
      if (s.server.url !== null) print(`  serving at ${s.server.url}`);
      print(`  write tokens: ${s.server.tokens.length === 0 ? 'none held' : s.server.tokens.map((t) => `${t.words} held by ${t.holder}`).join(', ')}`);
      for (const p of s.server.peers) {
        print(`  peer ${p.node}${p.replicate ? ' (replicator)' : ''}: ${p.connected ? 'connected' : 'away'}, last_rcvd ${p.lastRcvd}, lag ${p.lagRecords} records / ${p.lagSeconds} s`);
        if (p.lagRecords > 0) print(`    waiting for it: ${fmtWaiting(p.waiting)}`);
      }
      for (const t of s.server.transfers) print(`  ${fmtTransfer(t)}${t.peer === null ? '' : `, ${t.direction === 'up' ? 'from' : 'to'} ${t.peer}`}`);
      if (s.server.bytesIn !== null && s.server.bytesOut !== null) print(`  bytes on the wire since start: ${fmtBytes(s.server.bytesIn)} in, ${fmtBytes(s.server.bytesOut)} out${s.server.bwlimit === null ? '' : `; limit ${formatRate(s.server.bwlimit)}`}`);
    }
    print(`  conflicts: ${s.conflicts.open} open, ${s.conflicts.settled} settled`);
    if (s.versions.count > 0 || (s.versions.versioning !== null && s.versions.versioning !== 'off')) {
      print(`  versions kept: ${s.versions.count}, ${fmtBytes(s.versions.bytes)}${s.versions.versioning === null ? '' : ` (versioning ${String(s.versions.versioning)})`}; intersync versions ${s.dir} lists them`);
    }
    const c = s.capture;
    if (c !== null) {
      print(`  capture: ${c.kind} ${c.state}, ${c.watchedDirs} directories watched, ${c.pending} events pending, ${c.records} records since start`);
      // While the daemon starts (a big tree's scan and first journaling: minutes); absent from an older daemon's status.
      if (c.progress !== undefined && c.progress !== null) print(`  starting: ${fmtStartProgress(c.progress)}`);
      if (c.lastScan !== null) print(`  start-up scan: ${c.lastScan.entries} entries, ${c.lastScan.dirty} changed, ${c.lastScan.durMs} ms`);
      if (s.ignored !== null && s.ignored.patterns > 0) print(`  ignored: ${s.ignored.paths} paths (${s.ignored.patterns} patterns: .intersyncignore and the config's ignore)`);
      if (c.watchLimit !== null) {
        print(`  WARNING: inotify watch limit reached${c.watchLimit.limit === null ? '' : ` (max_user_watches ${c.watchLimit.limit})`} ${fmtAge(now - c.watchLimit.since)} ago; ${c.watchLimit.unwatchedDirs} directories are rescanned instead of watched`);
        print(`           ${c.watchLimit.hint}`);
      }
    }
    if (s.lastError !== null) print(`  last error: ${s.lastError}`);
  });
}

export { fmtBytes };

/** "transfer down: big.bin 1.0 MiB of 3.0 MiB (33%)": a large file moving, and how far it got. */
function fmtTransfer(t: Transfer): string {
  return `transfer ${t.direction}: ${t.path} ${fmtProgress(t.bytes, t.total)}${t.total === t.size ? '' : ` (a delta of a ${fmtBytes(t.size)} file)`}`;
}

function fmtProgress(done: number, total: number): string {
  return `${fmtBytes(done)} of ${fmtBytes(total)} (${total === 0 ? 100 : Math.floor((done * 100) / total)}%)`;
}

function fmtWaiting(w: Waiting): string {
  return `${w.atLeast ? 'at least ' : ''}${w.records} records, ${w.files} files, ${fmtBytes(w.bytes)}`;
}

export function cmdConflicts(dir: string, o: { fileset?: string; all: boolean; json: boolean }, print: Print): void {
  withDb(dir, o.fileset, (db) => {
    const rows = db.conflicts(o.all);
    if (o.json) {
      // mine: this node's version (kept beside the name); theirs: the server's, at the name.
      for (const c of rows) print(JSON.stringify({ ...c, remoteTid: c.remoteTid === null ? null : formatTid(c.remoteTid), mine: c.kept, theirs: c.path }));
      return;
    }
    if (rows.length === 0) print(o.all ? 'no conflicts' : 'no open conflicts (--all lists the resolved ones too)');
    else if (rows.some((c) => c.status === 'open')) print(`settle one with: intersync resolve ${dir} PATH --keep mine|theirs|both`);
    for (const c of rows) {
      const when = new Date(c.time).toISOString();
      const kept = c.kept === null ? '' : `; mine (this node's version) kept at ${c.kept}, theirs (the server's) at the name`;
      const how = c.status === 'open' ? 'OPEN' : `resolved: ${c.resolution ?? c.decision}`;
      print(`#${c.id} ${when} ${c.path} [${c.kind}] policy ${c.policy}, decision ${c.decision}${kept} (${how})`);
    }
  });
}

/** Settle one open conflict by hand: keep the local (kept-beside) version, the remote one at the name, or both. */
export function cmdResolve(dir: string, path: string, o: { fileset?: string; keep: string; json: boolean }, print: Print): void {
  // mine = local (this node's version, kept beside the name), theirs = remote (the server's, at the name).
  const keep = ({ local: 'local', mine: 'local', remote: 'remote', theirs: 'remote', both: 'both' } as const)[o.keep as 'local'];
  if (keep === undefined) throw IntersyncError.BAD_ARGUMENT(`--keep ${o.keep} is not mine (local), theirs (remote) or both`);
  const paths = findFileset(dir, o.fileset);
  const db = FilesetDb.open(paths.db, { check: false });
  try {
    const c = resolveOpenConflict(db, paths.dir, { path }, keep as Keep, Date.now());
    if (o.json) print(JSON.stringify({ id: c.id, path: c.path, kept: keep }));
    else print(`conflict #${c.id} on ${c.path} resolved: kept ${keep === 'local' ? 'mine (this node\'s version)' : keep === 'remote' ? 'theirs (the server\'s version)' : 'both'}`);
  } finally {
    db.close();
  }
}
