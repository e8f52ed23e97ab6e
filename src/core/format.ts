/**
 * On-disk and record format versions, in one place.
 *
 * Changelog:
 * - store 1 (intersync 0.1): fileset.db with meta, objects, kml, last_rcvd tables.
 * - store 2 (intersync 0.2): kml.origin_seq (the LML sequence number a record had at its origin, unique
 *   per origin, so a reintegration sent twice is accepted once), lml table (a client's local records the
 *   server has not accepted), peers table (registered clients and replicators).
 * - store 3 (intersync 0.3): conflicts table (each conflict met on reconnection, its decision and where
 *   the losing version is kept), inflight table (peer changes being written to disk, for crash recovery).
 * - store 4 (intersync 0.5): kml.links (the names of a hard-linked file's inode that a change of its
 *   content or attributes gave its version, as a JSON array of fids; see KmlRecord.links).
 * - store 5 (intersync 0.6): kml.parent and lml.parent (the fid of the directory a record's new name is in;
 *   see RecordDraft.parent), kml.target_fid and lml.target_fid (a link's existing name, by fid). The wire
 *   record carries them as the optional fields `parent` and `targetFid`.
 * - record 1 (intersync 0.1): flat KML record (see record.ts), TIDs as 64-bit integers,
 *   SHA-256 content hashes as lowercase hex, state digest after each record.
 * - wire protocol 1 (intersync 0.2): length-prefixed, CRC-32-checked frames (net/protocol/frames.ts),
 *   first frame `hello` naming the protocol version.
 * - wire protocol 3 (intersync 0.4): per-node credentials. `POST /v1/enrol` (with the fileset secret or a
 *   one-time invitation) gives a node its own bearer credential; reintegration, ack, token and the
 *   forwarded stream need the credential of the node they name (403 FORBIDDEN otherwise, 401 REVOKED
 *   once revoked); hello registers a peer only for its own credential.
 */
export const STORE_FORMAT = 5;
export const RECORD_FORMAT = 1;
export const PROTOCOL_VERSION = 3;

/** Files at least this large move as block deltas; smaller ones travel inline with their record. */
export const DELTA_THRESHOLD = 1 << 20;

/** True when content of `size` bytes travels inline with its record (below DELTA_THRESHOLD). */
export function isInlineSize(size: number): boolean {
  return size < DELTA_THRESHOLD;
}

/** Name of the metadata folder inside every backing directory; never journaled or replicated. */
export const META_DIR = '.intermezzo';
