import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { IntersyncError } from '#core/errors.js';

/** An enrolled node as `intersync nodes` shows it. */
export interface EnrolledNode {
  readonly node: string;
  readonly replicate: boolean;
  readonly enrolled: number;
  /** How it enrolled: 'secret' (the fileset secret) or 'invite'. */
  readonly via: string;
  readonly lastSeen: number | null;
  readonly address: string | null;
  readonly revoked: number | null;
}

/** What a bearer token is, as the identity store knows it. */
export type BearerKind =
  | { readonly kind: 'node'; readonly node: string; readonly revoked: boolean }
  | { readonly kind: 'invite'; readonly hash: string; readonly usable: boolean; readonly replicate: boolean; readonly why: string | null }
  | { readonly kind: 'unknown' };

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS nodes (
    node TEXT PRIMARY KEY, cred_hash TEXT NOT NULL UNIQUE, replicate INTEGER NOT NULL, enrolled INTEGER NOT NULL,
    via TEXT NOT NULL, last_seen INTEGER, address TEXT, revoked INTEGER
  ) STRICT;
  CREATE TABLE IF NOT EXISTS invites (
    hash TEXT PRIMARY KEY, created INTEGER NOT NULL, expires INTEGER NOT NULL, replicate INTEGER NOT NULL,
    used_by TEXT, used_at INTEGER
  ) STRICT;
`;

/** SHA-256 hex of a credential or invitation secret: only that is stored. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** A new random bearer token: 32 bytes, base64url. */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * The enrolled nodes of a served fileset and its open invitations, in a SQLite file in the state
 * directory (outside the served tree). Only hashes of credentials and invitation secrets are stored.
 * The daemon and the CLI (`nodes`, `revoke`, `invite`) share it: WAL mode, each lookup reads the
 * committed state, so a revocation made by the CLI holds at the daemon's next request.
 */
export class IdentityDb {
  readonly #db: Database.Database;
  readonly file: string;

  private constructor(file: string, db: Database.Database) {
    this.file = file;
    this.#db = db;
  }

  static open(file: string, opts: { create: boolean }): IdentityDb {
    if (!opts.create && !existsSync(file)) {
      throw new IntersyncError('NO_FILESET', `no enrolled nodes are kept at ${file}`, {
        hint: 'run it on the server, with the --state-dir the server uses (its start-up lines name it)',
      });
    }
    let db: Database.Database;
    try {
      db = new Database(file);
      chmodSync(file, 0o600);
      db.pragma('journal_mode = WAL');
      db.pragma('busy_timeout = 5000');
      db.exec(SCHEMA);
    } catch (e) {
      throw IntersyncError.IO('open identity store', file, e);
    }
    return new IdentityDb(file, db);
  }

  close(): void {
    this.#db.close();
  }

  classify(token: string, now: number): BearerKind {
    const hash = hashToken(token);
    const n = this.#db.prepare('SELECT node, revoked FROM nodes WHERE cred_hash = ?').get(hash) as { node: string; revoked: number | null } | undefined;
    if (n !== undefined) return { kind: 'node', node: n.node, revoked: n.revoked !== null };
    const i = this.#db.prepare('SELECT expires, replicate, used_by FROM invites WHERE hash = ?').get(hash) as
      | { expires: number; replicate: number; used_by: string | null } | undefined;
    if (i === undefined) return { kind: 'unknown' };
    const why = i.used_by !== null ? `this invitation was used already (by node ${i.used_by})` : i.expires <= now ? 'this invitation expired' : null;
    return { kind: 'invite', hash, usable: why === null, replicate: i.replicate === 1, why };
  }

  /** Is this node enrolled and not revoked? */
  allowed(node: string): boolean {
    const r = this.#db.prepare('SELECT revoked FROM nodes WHERE node = ?').get(node) as { revoked: number | null } | undefined;
    return r !== undefined && r.revoked === null;
  }

  /**
   * Enrol `node`, returning its new credential; with an invitation, use it up in the same transaction.
   * A node id enrolled before (or revoked) is refused: nobody else can claim it.
   */
  enrol(node: string, o: { replicate: boolean; via: 'secret' | 'invite'; inviteHash?: string; now: number; address: string | null }): string {
    const credential = newToken();
    this.#db.transaction(() => {
      if (this.#db.prepare('SELECT 1 FROM nodes WHERE node = ?').get(node) !== undefined) throw IntersyncError.NODE_TAKEN(node);
      if (o.inviteHash !== undefined) {
        const r = this.#db.prepare('UPDATE invites SET used_by = ?, used_at = ? WHERE hash = ? AND used_by IS NULL AND expires > ?').run(node, o.now, o.inviteHash, o.now);
        if (r.changes !== 1) throw new IntersyncError('UNAUTHORIZED', 'this invitation was used already or expired', { hint: 'get a new one: intersync invite DIR on the server' });
      }
      this.#db.prepare('INSERT INTO nodes (node, cred_hash, replicate, enrolled, via, last_seen, address, revoked) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)')
        .run(node, hashToken(credential), o.replicate ? 1 : 0, o.now, o.via, o.now, o.address);
    })();
    return credential;
  }

  seen(node: string, now: number, address: string | null): void {
    this.#db.prepare('UPDATE nodes SET last_seen = ?, address = coalesce(?, address) WHERE node = ?').run(now, address, node);
  }

  /** Revoke a node; false when it is not enrolled. */
  revoke(node: string, now: number): boolean {
    return this.#db.prepare('UPDATE nodes SET revoked = coalesce(revoked, ?) WHERE node = ?').run(now, node).changes === 1;
  }

  nodes(): EnrolledNode[] {
    const rows = this.#db.prepare('SELECT node, replicate, enrolled, via, last_seen, address, revoked FROM nodes ORDER BY enrolled, node').all() as Array<{
      node: string; replicate: number; enrolled: number; via: string; last_seen: number | null; address: string | null; revoked: number | null;
    }>;
    return rows.map((r) => ({ node: r.node, replicate: r.replicate === 1, enrolled: r.enrolled, via: r.via, lastSeen: r.last_seen, address: r.address, revoked: r.revoked }));
  }

  /** A new one-time invitation; returns its secret (only its hash is kept). */
  invite(o: { now: number; expiresMs: number; replicate: boolean }): { secret: string; expires: number } {
    const secret = newToken();
    const expires = o.now + o.expiresMs;
    this.#db.prepare('INSERT INTO invites (hash, created, expires, replicate) VALUES (?, ?, ?, ?)').run(hashToken(secret), o.now, expires, o.replicate ? 1 : 0);
    return { secret, expires };
  }
}
