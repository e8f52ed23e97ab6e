/**
 * On-disk and record format versions, in one place.
 *
 * Changelog:
 * - store 1 (intersync 0.1): fileset.db with meta, objects, kml, last_rcvd, lml tables.
 * - record 1 (intersync 0.1): flat KML record (see record.ts), TIDs as 64-bit integers,
 *   SHA-256 content hashes as lowercase hex, state digest after each record.
 */
export const STORE_FORMAT = 1;
export const RECORD_FORMAT = 1;

/** Name of the metadata folder inside every backing directory; never journaled or replicated. */
export const META_DIR = '.intermezzo';
