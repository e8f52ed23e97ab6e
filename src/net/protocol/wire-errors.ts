import { IntersyncError, type ConflictReason, type ErrorCode } from '#core/errors.js';

/** Error codes to HTTP status and back, in one place. */
const STATUS: Partial<Record<ErrorCode, number>> = {
  BAD_ARGUMENT: 400,
  BAD_REQUEST: 400,
  BAD_PATH: 400,
  UNSAFE_LINK: 400,
  PROTOCOL: 400,
  UNAUTHORIZED: 401,
  REVOKED: 401,
  FORBIDDEN: 403,
  NODE_TAKEN: 409,
  NO_FILESET: 404,
  WRONG_FILESET: 404,
  CONFLICT: 409,
  TOKEN_BUSY: 409,
  NOT_EMPTY: 409,
  CONTENT_GONE: 410,
  RESYNC_NEEDED: 410,
  TOO_LARGE: 413,
  NAME_REFUSED: 422,
  QUOTA: 429,
  NEED_CONTENT: 422,
  DB_CORRUPT: 500,
  IO: 500,
  DISK_FULL: 507,
};

export function statusOf(e: IntersyncError): number {
  return STATUS[e.code] ?? 500;
}

export interface WireError {
  readonly error: { readonly code: string; readonly message: string; readonly hint: string | null; readonly retriable: boolean; readonly reason?: ConflictReason };
}

export function toWire(e: IntersyncError): WireError {
  return { error: { code: e.code, message: e.message, hint: e.hint ?? null, retriable: e.retriable, ...(e.reason === undefined ? {} : { reason: e.reason }) } };
}

/** The fields each kind of conflict reason carries besides `kind` and `path`. */
const REASON_FIELDS: Record<ConflictReason['kind'], readonly string[]> = {
  'outdated': ['made', 'current'], 'name-taken': ['by'], 'new-name-taken': [], 'link-target': [], 'elsewhere': ['here'], 'missing-parent': ['parent'], 'not-empty': ['holds'],
};

/** A conflict reason a peer sent, checked field by field; null when it is not one (a peer's bad input changes nothing). */
export function parseConflictReason(v: unknown): ConflictReason | null {
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  const kind = o.kind;
  if (typeof kind !== 'string' || !Object.hasOwn(REASON_FIELDS, kind) || typeof o.path !== 'string') return null;
  const fields = REASON_FIELDS[kind as ConflictReason['kind']];
  if (!fields.every((f) => typeof o[f] === 'string')) return null;
  return Object.fromEntries([['kind', kind], ['path', o.path], ...fields.map((f) => [f, o[f]])]) as ConflictReason;
}

function reasonOf(v: unknown): { reason?: ConflictReason } {
  const reason = parseConflictReason(v);
  return reason === null ? {} : { reason };
}

/** Rebuild the error a peer sent; an unknown body becomes a PROTOCOL error naming the status. */
export function fromWire(status: number, body: unknown): IntersyncError {
  const err = (body as Partial<WireError> | null)?.error;
  if (err !== undefined && typeof err.code === 'string' && typeof err.message === 'string') {
    return new IntersyncError(err.code as ErrorCode, err.message, {
      ...(typeof err.hint === 'string' ? { hint: err.hint } : {}),
      retriable: err.retriable === true || status >= 500,
      fromPeer: true,
      ...reasonOf(err.reason),
    });
  }
  return new IntersyncError(status === 401 ? 'UNAUTHORIZED' : 'PROTOCOL', `peer answered HTTP ${status}`, { retriable: status >= 500, fromPeer: true });
}
