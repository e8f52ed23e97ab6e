/**
 * Conflict resolution policy: pure decisions, no I/O. A conflict is an
 * incoming record from the server meeting local changes the server has not
 * accepted. Invariants: no policy loses data silently (the losing content is
 * kept: beside the name for keep-both, in the fileset's conflicts folder
 * otherwise, unless `discard` was set explicitly); the same facts always give
 * the same decision, whatever the order conflicts are met in.
 */
export type PolicyName = 'keep-both' | 'server-wins' | 'client-wins' | 'newest-wins' | 'hook';
export const POLICY_NAMES: readonly PolicyName[] = ['keep-both', 'server-wins', 'client-wins', 'newest-wins', 'hook'];

export type ConflictKind =
  | 'write/write'
  | 'write/unlink' // local wrote, server removed
  | 'unlink/write' // local removed, server changed
  | 'rename/rename'
  | 'name/name' // two objects created or renamed onto one name
  | 'rmdir/gained' // local removed a directory the server added entries to
  | 'gained/rmdir' // server removed a directory that gained local entries
  | 'setattr/write'
  | 'write/setattr'
  | 'write/rename' // local wrote, server moved: merged (the content at the new name)
  | 'link/unlink'
  | 'other';

/** What the local side did to an object (its pending records), as far as naming the conflict goes. */
export interface LocalSide {
  readonly removedHere: boolean;
  readonly contentHere: boolean;
  readonly renamedHere: boolean;
  readonly modeHere: boolean;
}

/** The conflict a server record of kind `remote` meets on an object changed here as `l` says. */
export function conflictKind(l: LocalSide, remote: string): ConflictKind {
  const remoteContent = remote === 'write' || remote === 'truncate';
  const remoteGone = remote === 'unlink' || remote === 'rmdir';
  if (l.removedHere) return remoteGone ? 'other' : 'unlink/write';
  if (l.contentHere && remoteContent) return 'write/write';
  if (l.contentHere && remoteGone) return 'write/unlink';
  if (l.renamedHere && remote === 'rename') return 'rename/rename';
  if (l.modeHere && remoteContent) return 'setattr/write';
  if (l.contentHere && remote === 'setattr') return 'write/setattr';
  if (l.contentHere && remote === 'rename') return 'write/rename';
  return 'other';
}

/** What the two sides did, as far as deciding goes. */
export interface ConflictFacts {
  readonly kind: ConflictKind;
  readonly path: string;
  readonly localNode: string;
  readonly remoteNode: string;
  readonly localMtimeMs: number;
  readonly remoteMtimeMs: number;
}

/** keep-both: both versions stay in the tree; remote: the server's version wins; local: the client's does. */
export type Decision = 'keep-both' | 'remote' | 'local';

export interface PolicyConfig {
  readonly name: PolicyName;
  /** Only with server-wins / client-wins / newest-wins: do not keep the losing content at all. */
  readonly discard: boolean;
}

export function parsePolicy(text: string): PolicyConfig | undefined {
  const [name, opt] = text.split(':');
  if (!POLICY_NAMES.includes(name as PolicyName)) return undefined;
  if (opt !== undefined && opt !== 'discard') return undefined;
  if (opt === 'discard' && (name === 'keep-both' || name === 'hook')) return undefined;
  return { name: name as PolicyName, discard: opt === 'discard' };
}

export function formatPolicy(p: PolicyConfig): string {
  return p.discard ? `${p.name}:discard` : p.name;
}

/**
 * The decision for one conflict. `hookAnswer` is the site script's answer
 * (policy hook); a missing or unusable answer keeps both, the choice that
 * loses nothing.
 */
export function decide(policy: PolicyConfig, f: ConflictFacts, hookAnswer?: string): Decision {
  switch (policy.name) {
    case 'keep-both':
      return 'keep-both';
    case 'server-wins':
      return 'remote';
    case 'client-wins':
      return 'local';
    case 'newest-wins':
      if (f.localMtimeMs !== f.remoteMtimeMs) return f.localMtimeMs > f.remoteMtimeMs ? 'local' : 'remote';
      return f.localNode > f.remoteNode ? 'local' : 'remote'; // a tie goes to the higher node id
    case 'hook':
      return hookAnswer === 'local' || hookAnswer === 'remote' ? hookAnswer : 'keep-both';
  }
}
