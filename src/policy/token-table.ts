/**
 * Write tokens: the permit to change a fileset (scope "/") or one top-level
 * subtree (scope "/name"). Pure state, time passed in. Invariants: a scope has
 * at most one holder; a lease not renewed for `leaseMs` lapses by itself, so a
 * holder that died never blocks the others for longer than that.
 */

/**
 * Which token a change needs: none (the default: the server's version check decides every change, so writers
 * never wait on each other; docs/architecture.md "Write tokens" says why), the fileset's, or its top-level
 * folder's (writers take turns, within the fileset or within a folder).
 */
export type TokenScopeMode = 'none' | 'fileset' | 'subtree';

/** Every mode, the default first (the CLI's and the config file's choices). */
export const TOKEN_SCOPE_MODES: readonly TokenScopeMode[] = ['none', 'fileset', 'subtree'];

export interface Grant {
  readonly scope: string;
  readonly holder: string;
  readonly expires: number;
}

export type AcquireResult = { readonly granted: true; readonly grant: Grant } | { readonly granted: false; readonly holder: string };

export const DEFAULT_LEASE_MS = 30_000;

export class TokenTable {
  readonly #leaseMs: number;
  readonly #grants = new Map<string, Grant>();

  constructor(leaseMs = DEFAULT_LEASE_MS) {
    this.#leaseMs = leaseMs;
  }

  /** Grant (or renew) `scope` to `node` unless another live holder has it. */
  acquire(scope: string, node: string, now: number): AcquireResult {
    const g = this.#grants.get(scope);
    if (g !== undefined && g.holder !== node && g.expires > now) return { granted: false, holder: g.holder };
    const grant = { scope, holder: node, expires: now + this.#leaseMs };
    this.#grants.set(scope, grant);
    return { granted: true, grant };
  }

  /** Give `scope` up; only its holder can. Returns whether it was held by `node`. */
  release(scope: string, node: string): boolean {
    const g = this.#grants.get(scope);
    if (g === undefined || g.holder !== node) return false;
    this.#grants.delete(scope);
    return true;
  }

  holderOf(scope: string, now: number): string | null {
    const g = this.#grants.get(scope);
    return g !== undefined && g.expires > now ? g.holder : null;
  }

  /** Live grants, for status. */
  grants(now: number): Grant[] {
    return [...this.#grants.values()].filter((g) => g.expires > now).sort((a, b) => a.scope.localeCompare(b.scope));
  }
}

/** The token scopes a change to these paths needs, sorted (always taken in this order: no deadlock); none in mode none. */
export function scopesFor(paths: Iterable<string>, mode: TokenScopeMode): string[] {
  if (mode === 'none') return [];
  if (mode === 'fileset') return ['/'];
  const out = new Set<string>();
  for (const p of paths) out.add(`/${p.split('/')[0]!}`);
  return [...out].sort();
}
