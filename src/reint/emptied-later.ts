import { NOT_EMPTY_HOLDS } from '#core/errors.js';
import { isUnder } from '#core/paths.js';
import type { LmlRecord } from '#core/record.js';
import type { FilesetDb } from '#journal/fileset-db.js';

/**
 * The server refused the pending rmdir `seq` because the directory holds entries there (`holds`: their fids, as
 * its `not-empty` reason names them), and each of those has a later pending record here that moves it or
 * removes it: this node holds them elsewhere, and their moves simply come after the removal in its LML (records
 * name objects by the path of their era; a move journaled late, or a conflict step's, put it there). Sent after
 * them, the removal applies. True when it may go last: every entry has such a record, the list is whole, and no
 * other later record names the directory or a name below it (those need it where it is).
 *
 * Before, the removal was refused three times and the client resynced (chaos s63 seed 9221, c2; the same
 * refusal in s58 seed 9267, s59 9277, s62 9267 and 9277; test/reintegrator.test.ts).
 */
export function emptiedLater(db: Pick<FilesetDb, 'lmlRecord' | 'readLml'>, seq: bigint, holds: string): boolean {
  const r = db.lmlRecord(seq);
  const fids = holds.split(',').filter((x) => x !== '');
  if (r?.kind !== 'rmdir' || fids.length === 0 || fids.length >= NOT_EMPTY_HOLDS) return false;
  const later = db.readLml(r.seq, 10_000_000);
  const held = new Set(fids);
  const takesOut = (fid: string): boolean => later.some((x) => x.fid === fid && (x.kind === 'rename' || x.kind === 'unlink' || x.kind === 'rmdir'));
  if (!fids.every(takesOut)) return false;
  const names = (x: LmlRecord): string[] => [x.path, ...(x.newPath === null ? [] : [x.newPath]), ...(x.kind === 'link' && x.target !== null ? [x.target] : [])];
  return later.every((x) => held.has(x.fid) || (x.fid !== r.fid && !names(x).some((p) => isUnder(p, r.path))));
}
