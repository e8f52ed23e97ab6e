import type { Database as Db } from 'better-sqlite3';
import type { KmlRecord } from '#core/record.js';

/** Every prepared statement of a FilesetDb, by name (its type says which exist: no lookup can miss). */
export function prepareStatements(db: Db) {
  return {
    setMeta: db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
    byPath: db.prepare('SELECT * FROM objects WHERE path = ?'),
    byFid: db.prepare('SELECT * FROM objects WHERE fid = ?'),
    // The fid of the directory at a name (a record's parent: ObjectTable#placedOf), without the row.
    dirFidAt: db.prepare("SELECT fid FROM objects WHERE path = ? AND type = 'dir'").pluck(),
    byIno: db.prepare('SELECT * FROM objects WHERE ino = ?'),
    byHash: db.prepare('SELECT * FROM objects WHERE hash = ? LIMIT 8'),
    below: db.prepare("SELECT * FROM objects WHERE path > ? || '/' AND path < ? || '0' ORDER BY path"),
    childPaths: db.prepare("SELECT path FROM objects WHERE path > ? || '/' AND path < ? || '0' AND instr(substr(path, ?), '/') = 0").pluck(),
    rootPaths: db.prepare("SELECT path FROM objects WHERE instr(path, '/') = 0").pluck(),
    all: db.prepare('SELECT * FROM objects'),
    childStatRows: db.prepare(`SELECT path, type, ino, mode, uid, gid, size, mtime_ns, ctime_ns, racy FROM objects
      WHERE path > ? || '/' AND path < ? || '0' AND instr(substr(path, ?), '/') = 0`).raw(true),
    rootStatRows: db.prepare("SELECT path, type, ino, mode, uid, gid, size, mtime_ns, ctime_ns, racy FROM objects WHERE instr(path, '/') = 0").raw(true),
    count: db.prepare('SELECT count(*) AS n FROM objects'),
    contentRows: db.prepare(`SELECT fid, path, type, printf('0x%016x', version) AS version, size, hash
                             FROM objects WHERE fid IN (SELECT value FROM json_each(?))`).safeIntegers(false),
    insert: db.prepare(`INSERT INTO objects (fid, path, type, version, mode, uid, gid, mtime_ms, size, hash, target)
                        VALUES (@fid, @path, @type, @version, @mode, @uid, @gid, @mtimeMs, @size, @hash, @target)`),
    // A new name with the stat identity of the object just made (ObjectTable#applyToObjects: one insert, no update after).
    insertMade: db.prepare(`INSERT INTO objects (fid, path, type, version, mode, uid, gid, mtime_ms, size, hash, target, ino, mtime_ns, ctime_ns, racy)
                            VALUES (@fid, @path, @type, @version, @mode, @uid, @gid, @mtimeMs, @size, @hash, @target, @ino, @mtimeNs, @ctimeNs, @racy)`),
    insertFile: db.prepare(`INSERT INTO objects (fid, path, type, version, mode, uid, gid, mtime_ms, size, hash, target, ino, mtime_ns, ctime_ns, racy)
                            VALUES (?, ?, 'file', ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?)`),
    update: db.prepare(`UPDATE objects SET path = @path, version = @version, mode = @mode, uid = @uid, gid = @gid,
                        mtime_ms = @mtimeMs, size = @size, hash = @hash, target = @target WHERE fid = @fid`),
    movePath: db.prepare('UPDATE objects SET path = ? WHERE fid = ?'),
    remove: db.prepare('DELETE FROM objects WHERE fid = ?'),
    identity: db.prepare('UPDATE objects SET ino = ?, mtime_ns = ?, ctime_ns = ?, racy = ? WHERE fid = ?'),
    identityByIno: db.prepare('UPDATE objects SET mtime_ns = ?, ctime_ns = ?, racy = ? WHERE ino = ?'),
    // A NULL identity makes capture look at the object again (stat, then read if needed).
    forgetIno: db.prepare('UPDATE objects SET ino = NULL, mtime_ns = NULL, ctime_ns = NULL WHERE ino = ? AND fid != ?'),
    kmlInsert: db.prepare(`INSERT INTO kml (tid, kind, fid, path, new_path, target, pre_version, post_version, mode, uid, gid,
                           mtime_ms, size, hash, origin, time, digest, origin_seq, links, parent, target_fid)
                           VALUES (@tid, @kind, @fid, @path, @newPath, @target, @preVersion, @postVersion, @mode, @uid, @gid,
                           @mtimeMs, @size, @hash, @origin, @time, @digest, @originSeq, @links, @parent, @targetFid)`),
    kmlByOrigin: db.prepare('SELECT * FROM kml WHERE origin = ? AND origin_seq = ?'),
    kmlLaterOfFid: db.prepare('SELECT 1 FROM kml WHERE tid > ? AND fid = ? LIMIT 1'),
    kmlLastByFidAfter: db.prepare('SELECT fid, max(tid) AS tid FROM kml WHERE tid > ? GROUP BY fid'),
    kmlLaterOfFidFromOthers: db.prepare('SELECT 1 FROM kml WHERE tid > ? AND fid = ? AND origin != ? LIMIT 1'),
    kmlLastOfName: db.prepare(`SELECT * FROM kml WHERE tid > ? AND tid < ? AND (fid = ? OR links LIKE ?) ORDER BY tid DESC LIMIT 1`),
    kmlNamingChange: db.prepare(`SELECT 1 FROM kml WHERE tid > ? AND tid <= ? AND (fid = ? OR links LIKE ?) AND kind NOT IN ('write', 'truncate', 'setattr') LIMIT 1`),
    kmlForeignContent: db.prepare(`SELECT * FROM kml WHERE tid > ? AND fid = ? AND origin != ? AND kind IN ('write', 'truncate', 'setattr') ORDER BY tid LIMIT 1`),
    kmlLaterRmdir: db.prepare("SELECT * FROM kml WHERE tid > ? AND fid = ? AND kind = 'rmdir' AND origin = ? ORDER BY tid LIMIT 1"),
    kmlLaterRenames: db.prepare("SELECT * FROM kml WHERE tid > ? AND kind = 'rename' ORDER BY tid"),
    kmlHas: db.prepare('SELECT 1 FROM kml WHERE tid = ?'),
    kmlAt: db.prepare('SELECT * FROM kml WHERE tid = ?'),
    lmlInsert: db.prepare(`INSERT INTO lml (seq, kind, fid, path, new_path, target, pre_version, mode, uid, gid, mtime_ms, size, hash, origin, time, parent, target_fid)
                           VALUES (@seq, @kind, @fid, @path, @newPath, @target, @preVersion, @mode, @uid, @gid, @mtimeMs, @size, @hash, @origin, @time, @parent, @targetFid)`),
    lmlAll: db.prepare('SELECT * FROM lml WHERE seq > ? ORDER BY seq LIMIT ?'),
    lmlRemovals: db.prepare('SELECT * FROM lml WHERE kind = @kind AND (path = @path OR fid = @fid) ORDER BY seq'),
    lmlGet: db.prepare('SELECT * FROM lml WHERE seq = ?'),
    lmlDelete: db.prepare('DELETE FROM lml WHERE seq = ?'),
    lmlCount: db.prepare('SELECT count(*) AS n FROM lml'),
    lmlForFid: db.prepare('SELECT count(*) AS n FROM lml WHERE fid = ?'),
    lmlRebase: db.prepare('UPDATE lml SET pre_version = ? WHERE fid = ? AND pre_version = ? AND seq > ?'),
    // Only what was made against a version of the server's: a name made here keeps its records made against none.
    // Nor a removal: it keeps the version it was made against, which the server's check needs (ApplyPath#baseOf).
    lmlRebaseFid: db.prepare("UPDATE lml SET pre_version = ? WHERE fid = ? AND pre_version != 0 AND kind NOT IN ('create', 'mkdir', 'symlink', 'link', 'unlink')"),
    // A name's own pending move: a change of content or attributes through another name does not meet it (see
    // ObjectTable#applyToObjects).
    lmlRebaseNaming: db.prepare("UPDATE lml SET pre_version = ? WHERE fid = ? AND pre_version = ? AND kind = 'rename'"),
    setVersion: db.prepare('UPDATE objects SET version = ? WHERE fid = ?'),
    lmlPaths: db.prepare('UPDATE lml SET path = ?, new_path = ? WHERE seq = ?'),
    lmlTarget: db.prepare('UPDATE lml SET target = ? WHERE seq = ?'),
    lmlRenames: db.prepare("SELECT * FROM lml WHERE kind = 'rename' ORDER BY seq"),
    lmlNaming: db.prepare(`SELECT * FROM lml WHERE path = @p OR (path > @p || '/' AND path < @p || '0')
                           OR new_path = @p OR (new_path > @p || '/' AND new_path < @p || '0')
                           OR target = @p OR (target > @p || '/' AND target < @p || '0') ORDER BY seq`),
    lmlOfFid: db.prepare('SELECT * FROM lml WHERE fid = ? ORDER BY seq'),
    lmlOnto: db.prepare(`SELECT * FROM lml WHERE (path = ? AND kind IN ('create', 'mkdir', 'symlink', 'link'))
                         OR (kind = 'rename' AND new_path = ?) ORDER BY seq`),
    inflightAdd: db.prepare('INSERT INTO inflight (intent) VALUES (?)'),
    inflightDel: db.prepare('DELETE FROM inflight WHERE id = ?'),
    inflightAll: db.prepare('SELECT * FROM inflight ORDER BY id'),
    conflictAdd: db.prepare(`INSERT INTO conflicts (time, path, kind, policy, decision, remote_tid, remote_node, kept, status, resolution)
                             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    conflictList: db.prepare("SELECT * FROM conflicts WHERE ? = 1 OR status = 'open' ORDER BY id"),
    conflictResolve: db.prepare("UPDATE conflicts SET status = 'resolved', resolution = ?, resolved_at = ? WHERE id = ?"),
    lmlRewrite: db.prepare(`UPDATE lml SET kind = @kind, path = @path, new_path = @newPath, target = @target, mode = @mode, uid = @uid,
                            gid = @gid, mtime_ms = @mtimeMs, size = @size, hash = @hash, parent = @parent, target_fid = @targetFid WHERE seq = @seq`),
    lmlPreVersion: db.prepare('UPDATE lml SET pre_version = ? WHERE seq = ?'),
    lmlDropFid: db.prepare('DELETE FROM lml WHERE fid = ?'),
    lmlDropKind: db.prepare('DELETE FROM lml WHERE fid = ? AND kind = ?'),
    lmlFid: db.prepare('UPDATE lml SET fid = ? WHERE fid = ?'),
    lmlParent: db.prepare('UPDATE lml SET parent = ? WHERE parent = ?'),
    lmlPreVersionOf: db.prepare('UPDATE lml SET pre_version = ? WHERE seq = ?'),
    lmlParentOf: db.prepare('UPDATE lml SET parent = ? WHERE seq = ?'),
    lmlInto: db.prepare('SELECT * FROM lml WHERE parent = ? ORDER BY seq'),
    lmlLinksTo: db.prepare('SELECT 1 FROM lml WHERE target_fid = ? LIMIT 1'),
    lmlToHeir: db.prepare(`UPDATE lml SET fid = @heir, path = @path, pre_version = @version
                           WHERE fid = @fid AND kind IN ('write', 'truncate', 'setattr')`),
    lmlToHeirAt: db.prepare(`UPDATE lml SET fid = @heir, path = @path, pre_version = @version
                             WHERE seq = @seq AND fid = @fid AND kind IN ('write', 'truncate', 'setattr')`),
    objectFid: db.prepare('UPDATE objects SET fid = ?, version = ? WHERE fid = ?'),
    lastRcvdSet: db.prepare(`INSERT INTO last_rcvd (peer, tid, updated) VALUES (?, ?, ?)
                             ON CONFLICT (peer) DO UPDATE SET tid = max(tid, excluded.tid), updated = excluded.updated`),
    lastRcvdGet: db.prepare('SELECT tid FROM last_rcvd WHERE peer = ?'),
    peerUpsert: db.prepare(`INSERT INTO peers (node, replicate, first_seen, last_seen, address) VALUES (?, ?, ?, ?, ?)
                            ON CONFLICT (node) DO UPDATE SET replicate = excluded.replicate, last_seen = excluded.last_seen,
                            address = excluded.address`),
    peersAll: db.prepare('SELECT * FROM peers ORDER BY node'),
    metaGet: db.prepare('SELECT value FROM meta WHERE key = ?'),
    kmlSince: db.prepare('SELECT * FROM kml WHERE tid > ? ORDER BY tid LIMIT ?'),
    kmlCount: db.prepare('SELECT count(*) AS n FROM kml'),
    kmlPrune: db.prepare('DELETE FROM kml WHERE tid < ?'),
    lastRcvdAll: db.prepare('SELECT peer, tid, updated FROM last_rcvd ORDER BY peer'),
  };
}

export type Statements = ReturnType<typeof prepareStatements>;

/** Journal a record in the KML (its `links` as JSON, absent fids as NULL). */
export function insertKml(st: Statements, r: KmlRecord): void {
  st.kmlInsert.run({ ...r, links: r.links === undefined || r.links === null ? null : JSON.stringify(r.links), parent: r.parent ?? null, targetFid: r.targetFid ?? null });
}
