import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Clock } from '#core/clock.js';
import type { DiskFullState } from '#core/disk-full.js';
import type { Metrics } from '#core/metrics.js';
import type { Signal } from '#core/mutex.js';
import type { Transfers } from '#core/transfers.js';
import type { ApplyPath } from '#apply/apply-path.js';
import type { FilesetDb } from '#journal/fileset-db.js';
import type { IdentityDb } from '#journal/identity-db.js';
import type { TokenScopeMode, TokenTable } from '#policy/token-table.js';
import type { ContentReader } from './content-cache.js';
import type { EdgeLimits } from './edge-guard.js';
import type { IdentityGate } from './identity-gate.js';
import type { RateLimit } from './rate-limit.js';
import type { UploadStaging } from './upload-staging.js';

/** What the server needs of the node it serves (implemented by the daemon). */
export interface ServedFileset {
  readonly db: FilesetDb;
  readonly root: string;
  readonly apply: ApplyPath;
  readonly secret: string;
  /** Enrolled nodes and invitations (see identity-gate.ts). */
  readonly identity: IdentityDb;
  readonly log: Logger;
  /** Where the server counts what it forwards, refuses and answers (core/metrics.ts); none counted when absent. */
  readonly metrics?: Metrics;
  readonly clock: Clock;
  readonly debug: number;
  readonly tokenScope: TokenScopeMode;
  readonly leaseMs: number;
  /** Journal any local change at these names not journaled yet, before a peer's record changes them. */
  readonly syncPaths?: (paths: readonly string[]) => Promise<void>;
  /** Wait (a bounded while) until capture has journaled what it has events for: a directory moved or removed here. */
  readonly settle?: () => Promise<void>;
  /** This node's disk-full state: a request that fails for want of space here notes it (and answers DISK_FULL, 507). */
  readonly disk?: DiskFullState;
  /** More routes on this port (metrics, the dashboard), added by the daemon. */
  readonly http?: HttpExtension;
  /** The node's bandwidth limit (net/rate-limit.ts), shared by every content transfer; none: unlimited. */
  readonly bwlimit?: RateLimit | null;
}

/**
 * Routes the daemon adds to the server's port. Requests under `openPrefix` skip the credential check
 * (the extension checks them itself: the dashboard's login); every other route needs the credential.
 */
export interface HttpExtension {
  readonly openPrefix?: string;
  extend(app: FastifyInstance, edge: { authenticate(req: FastifyRequest): unknown; trust(req: FastifyRequest): void }): void;
}

/** Limits at the edge. */
export const JSON_BODY_LIMIT = 1 << 20;
export const STREAM_BODY_LIMIT = 1 << 30;
const UUID_RE = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
export const TID_RE = '^(0x[0-9a-fA-F]{1,16}|[0-9]{1,19})$';

/** The schema of a route's `:uuid` parameter: a new object per server, which all of that server's routes share. */
export function uuidParams() {
  return { type: 'object', required: ['uuid'], properties: { uuid: { type: 'string', pattern: UUID_RE } } };
}

/** A node's open forwarded stream. */
export interface Follower {
  readonly node: string;
  readonly wake: Signal;
  readonly recalls: string[];
  /** End the stream now (its node was revoked). */
  readonly cut: () => void;
}

/**
 * What the route parts of one FilesetServer share (built by its constructor; the server owns it): the fileset it
 * serves, the identity gate at its edge, the content reader, staged uploads, transfers, write tokens and the
 * open forwarded streams. State that one part alone uses stays in that part.
 */
export interface ServerState {
  readonly f: ServedFileset;
  /** The fileset's metrics, NO_METRICS when it was given none. */
  readonly metrics: Metrics;
  readonly params: ReturnType<typeof uuidParams>;
  readonly gate: IdentityGate;
  readonly content: ContentReader;
  readonly staging: UploadStaging;
  readonly limits: EdgeLimits;
  readonly tokens: TokenTable;
  /** Large files moving now: blocks clients fetch (down), uploads they send (up). */
  readonly transfers: Transfers;
  readonly followers: Set<Follower>;
  /** The node's bandwidth limit, null when none. */
  readonly bw: RateLimit | null;
  /** The server is closing: forwarded streams end. */
  closing: boolean;
  /** Token recalls sent so far. */
  recalls: number;
}
