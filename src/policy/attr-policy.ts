/**
 * What a node takes from a peer's record besides names and content: permission bits, set-id bits,
 * owners, symlink targets. Pure decisions, no I/O. Invariants: by default a peer can never make a
 * node create a set-uid or set-gid object nor give an object to another owner (the fileset must say
 * `preserve-setid=true` / `preserve-owner=true`); the permission bits (rwx, and the sticky bit,
 * which only restricts who may remove entries of a directory) are always kept; the attributes
 * returned are what the node applies, and so what it journals.
 */
import type { RecordDraft } from '#core/record.js';

export interface AttrPolicy {
  /** Keep set-uid and set-gid bits from peers. */
  readonly preserveSetid: boolean;
  /** Give objects the owner (uid, gid) a peer's record names (root only can). */
  readonly preserveOwner: boolean;
  /** Refuse symlinks whose target is absolute or leaves the tree (as rsync's --safe-links). */
  readonly safeLinks: boolean;
}

/** The fileset settings, as `intersync config` and `mkfs` name them (meta keys), with the field each sets. */
export const ATTR_SETTINGS = [
  ['preserve-setid', 'preserveSetid'],
  ['preserve-owner', 'preserveOwner'],
  ['safe-links', 'safeLinks'],
] as const;

export type AttrSetting = (typeof ATTR_SETTINGS)[number][0];

export const SAFE_ATTRS: AttrPolicy = { preserveSetid: false, preserveOwner: false, safeLinks: false };

/** 'true' or 'false'; undefined for anything else. */
export function parseBool(v: string | undefined): boolean | undefined {
  return v === 'true' ? true : v === 'false' ? false : undefined;
}

/** The policy stored in a fileset's settings (`get` reads a meta key); what is not set is the safe default. */
export function attrPolicyOf(get: (key: string) => string | undefined): AttrPolicy {
  const out: Record<string, boolean> = { ...SAFE_ATTRS };
  for (const [key, field] of ATTR_SETTINGS) out[field] = parseBool(get(key)) ?? SAFE_ATTRS[field];
  return out as unknown as AttrPolicy;
}

/**
 * A client's policy: the server's fileset says what it preserves, but a server is a peer too, so a
 * client preserves set-id bits and owners only when its own settings allow them as well, and
 * refuses escaping symlinks when either side asks for it. The stricter of the two, field by field.
 */
export function stricter(server: AttrPolicy, local: AttrPolicy): AttrPolicy {
  return {
    preserveSetid: server.preserveSetid && local.preserveSetid,
    preserveOwner: server.preserveOwner && local.preserveOwner,
    safeLinks: server.safeLinks || local.safeLinks,
  };
}

export interface Owner {
  readonly uid: number;
  readonly gid: number;
}

/** Set-uid and set-gid. */
export const SETID_BITS = 0o6000;

/**
 * The attributes this node gives the object `d` describes. `current` is the owner the object has
 * here (null for a new one), `self` this process's, `canChown` whether this process may give files
 * away (root). Without preserve-owner an object keeps its owner here, a new one gets this
 * process's; without preserve-setid the set-id bits are dropped.
 */
export function localAttrs<T extends RecordDraft>(d: T, p: AttrPolicy, o: { self: Owner; current: Owner | null; canChown: boolean }): T {
  const mode = p.preserveSetid ? d.mode : d.mode & ~SETID_BITS;
  const owner = p.preserveOwner && o.canChown ? { uid: d.uid, gid: d.gid } : (o.current ?? o.self);
  if (mode === d.mode && owner.uid === d.uid && owner.gid === d.gid) return d;
  return { ...d, mode, uid: owner.uid, gid: owner.gid };
}

/**
 * What the log says when a peer's mode `sent` is applied here as `applied` (null when equal): set-id bits the
 * policy drops (a warning: the peer asked for them), or, for a hard link, the mode of the inode it joins (a link
 * changes no attributes; the inode's mode here stands). Before, both were logged as set-id bits dropped, for
 * modes that had none (664 applied as 600).
 */
export function modeChange(kind: string, sent: number, applied: number): { readonly message: string; readonly warn: boolean } | null {
  if (sent === applied) return null;
  if ((sent & ~SETID_BITS) === applied) return { message: 'set-id bits from a peer dropped', warn: true };
  if (kind === 'link') return { message: 'a hard link from a peer takes the mode of the inode it joins here', warn: false };
  return { message: 'a peer\'s mode applied otherwise here', warn: true };
}

/**
 * Why the symlink at `path` (relative to the tree) pointing at `target` is not safe, or null when
 * it stays inside the tree: an absolute target, or one whose `..` climb above the tree's root
 * from the link's directory (rsync's --safe-links rule, computed on the text alone).
 */
export function unsafeLinkReason(path: string, target: string): string | null {
  if (target.startsWith('/')) return 'its target is absolute';
  let depth = path.split('/').length - 1; // the link's directory, below the root
  for (const part of target.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') depth--;
    else depth++;
    if (depth < 0) return 'its target leaves the tree';
  }
  return null;
}
