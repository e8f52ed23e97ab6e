import type { Logger } from 'pino';
import type { KmlRecord } from '#core/record.js';
import type { FilesetDb } from '#journal/fileset-db.js';
import { ATTR_SETTINGS, SAFE_ATTRS, attrPolicyOf, stricter, type AttrPolicy } from '#policy/attr-policy.js';

/** Meta key: the attribute policy the server announced at its last hello (for a start while it is away). */
const SERVER_ATTRS = 'server_attrs';
/** Meta key: fids of server objects this client refused (escaping symlinks): their later records are skipped too. */
const REFUSED = 'refused_fids';

/** The server's announced policy as it came over the wire: a field that is not a boolean is the safe default. */
export function parseServerAttrs(v: unknown): AttrPolicy {
  const o = typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {};
  const out: Record<string, boolean> = { ...SAFE_ATTRS };
  for (const [, field] of ATTR_SETTINGS) if (typeof o[field] === 'boolean') out[field] = o[field];
  return out as unknown as AttrPolicy;
}

/**
 * What a client applies the server's modes, owners and symlinks under: the stricter of the server's
 * fileset policy (announced at hello, remembered in meta) and this client's own settings, so that
 * a server cannot hand a client set-id files or other owners the client did not agree to take.
 */
export function clientAttrs(db: FilesetDb): AttrPolicy {
  const raw = db.getMeta(SERVER_ATTRS);
  const server = raw === undefined ? SAFE_ATTRS : parseServerAttrs(JSON.parse(raw));
  return stricter(server, attrPolicyOf((k) => db.getMeta(k)));
}

/**
 * This client takes set-id bits or owners more strictly than the server does: its state then differs from
 * the server's by design (stripped modes), and no resync can change that.
 */
export function stricterThanServer(db: FilesetDb): boolean {
  const raw = db.getMeta(SERVER_ATTRS);
  const server = raw === undefined ? SAFE_ATTRS : parseServerAttrs(JSON.parse(raw));
  const mine = clientAttrs(db);
  return ATTR_SETTINGS.some(([, field]) => mine[field] !== server[field]);
}

/** At hello: remember what the server announced and log what this client applies. */
export function learnServerAttrs(db: FilesetDb, announced: unknown, log: Logger): void {
  const server = parseServerAttrs(announced);
  db.setMeta(SERVER_ATTRS, JSON.stringify(server));
  log.info({ ...clientAttrs(db), server, local: attrPolicyOf((k) => db.getMeta(k)) }, 'fileset attribute policy');
}

/** Objects of the server this client refused; records naming one of them are skipped. */
export function refusedFids(db: FilesetDb): Set<string> {
  return new Set(JSON.parse(db.getMeta(REFUSED) ?? '[]') as string[]);
}

/** Skip a server record this client refuses to apply, and every later record of its object. */
export function skipRefused(db: FilesetDb, r: KmlRecord, peer: string, now: number): void {
  db.batch(() => {
    const fids = refusedFids(db);
    if (!fids.has(r.fid)) db.setMeta(REFUSED, JSON.stringify([...fids, r.fid]));
    db.skipRemote(r, peer, now);
  });
}

/** Note an object of a first copy this client did not place (so that its later records are skipped). */
export function noteRefused(db: FilesetDb, fid: string): void {
  const fids = refusedFids(db);
  if (!fids.has(fid)) db.setMeta(REFUSED, JSON.stringify([...fids, fid]));
}
