/**
 * The one error class of intersync. Every failure a user or a peer can see has
 * a stable `code` (tests and scripts match on it), a `retriable` flag and a
 * `hint` that says what to do. Wrap with a short verb phrase and keep `cause`.
 */
export type ErrorCode =
  | 'BAD_ARGUMENT'
  | 'NOT_A_DIRECTORY'
  | 'NO_SUCH_DIRECTORY'
  | 'PERMISSION_DENIED'
  | 'FILESET_EXISTS'
  | 'NO_FILESET'
  | 'FILESET_AMBIGUOUS'
  | 'DB_CORRUPT'
  | 'DB_FORMAT'
  | 'DAEMON_RUNNING'
  | 'BAD_PATH'
  | 'UNSAFE_LINK'
  | 'WATCH_LIMIT'
  | 'IO'
  | 'DISK_FULL'
  | 'UNAUTHORIZED'
  | 'NO_CREDENTIAL'
  | 'BAD_REQUEST'
  | 'TOO_LARGE'
  | 'PROTOCOL'
  | 'CONFLICT'
  | 'TOKEN_BUSY'
  | 'CONTENT_GONE'
  | 'NEED_CONTENT'
  | 'PEER_UNREACHABLE'
  | 'NOT_EMPTY'
  | 'WRONG_FILESET'
  | 'RESYNC_NEEDED'
  | 'QUOTA'
  | 'NAME_REFUSED'
  | 'FORBIDDEN'
  | 'REVOKED'
  | 'NODE_TAKEN'
  | 'TLS_PIN_MISMATCH'
  | 'INSECURE_HTTP'
  | 'BAD_TOKEN'
  | 'BAD_CONFIG'
  | 'NO_SUCH_VERSION'
  | 'VERSION_AMBIGUOUS'
  | 'MOUNT_BUSY'
  | 'NOT_MOUNTED'
  | 'MOUNT_FAILED'
  | 'NOT_A_SLAVE'
  | 'IS_A_SLAVE'
  | 'WRONG_MASTER'
  | 'MIRROR_DIVERGED';

/**
 * Why a change was refused as a conflict, for a program to act on (the message says it for a person); `path` is
 * the name the refusal is about. Sent with the error (net/protocol/wire-errors.ts) so a client need not read the
 * message.
 */
export type ConflictReason =
  | { readonly kind: 'outdated'; readonly path: string; readonly made: string; readonly current: string }
  | { readonly kind: 'name-taken'; readonly path: string; readonly by: string }
  | { readonly kind: 'new-name-taken'; readonly path: string }
  | { readonly kind: 'link-target'; readonly path: string }
  | { readonly kind: 'elsewhere'; readonly path: string; readonly here: string }
  | { readonly kind: 'missing-parent'; readonly path: string; readonly parent: string }
  /** An rmdir of a directory that holds entries there: `holds`, their fids (comma-separated, at most NOT_EMPTY_HOLDS). */
  | { readonly kind: 'not-empty'; readonly path: string; readonly holds: string };

/** How many of a directory's entries a `not-empty` refusal names at most. */
export const NOT_EMPTY_HOLDS = 64;

export class IntersyncError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;
  readonly hint: string | undefined;
  /** A peer's answer rebuilt here (net/protocol/wire-errors.ts): the peer's state, not this node's (its DISK_FULL is its disk). */
  readonly fromPeer: boolean;
  /** A CONFLICT's reason, when the refusal has one a program acts on. */
  readonly reason: ConflictReason | undefined;

  constructor(code: ErrorCode, message: string, opts: { hint?: string; retriable?: boolean; cause?: unknown; fromPeer?: boolean; reason?: ConflictReason } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'IntersyncError';
    this.code = code;
    this.retriable = opts.retriable ?? false;
    this.hint = opts.hint;
    this.fromPeer = opts.fromPeer ?? false;
    this.reason = opts.reason;
  }

  /** Prefix the message with a verb phrase naming the step that failed, keeping code and hint. */
  wrap(verbPhrase: string): IntersyncError {
    return new IntersyncError(this.code, `${verbPhrase}: ${this.message}`, {
      ...(this.hint === undefined ? {} : { hint: this.hint }),
      retriable: this.retriable,
      cause: this,
      fromPeer: this.fromPeer,
      ...(this.reason === undefined ? {} : { reason: this.reason }),
    });
  }

  static BAD_ARGUMENT(message: string, hint?: string): IntersyncError {
    return new IntersyncError('BAD_ARGUMENT', message, hint === undefined ? {} : { hint });
  }

  static NOT_A_DIRECTORY(path: string): IntersyncError {
    return new IntersyncError('NOT_A_DIRECTORY', `${path} is not a directory`, {
      hint: 'give the path of a directory to hold the fileset',
    });
  }

  static NO_SUCH_DIRECTORY(path: string): IntersyncError {
    return new IntersyncError('NO_SUCH_DIRECTORY', `${path} does not exist`, {
      hint: 'create the directory first (mkdir -p), or check the path',
    });
  }

  static PERMISSION_DENIED(path: string, cause?: unknown): IntersyncError {
    return new IntersyncError('PERMISSION_DENIED', `permission denied on ${path}`, {
      hint: 'run as a user that can read and write the directory, or fix its mode',
      cause,
    });
  }

  static FILESET_EXISTS(dir: string, name: string): IntersyncError {
    return new IntersyncError('FILESET_EXISTS', `fileset '${name}' already exists in ${dir}`, {
      hint: 'use it as it is, or pass --force to replace its journal (the files stay)',
    });
  }

  static NO_FILESET(dir: string, name?: string): IntersyncError {
    const what = name === undefined ? 'no fileset' : `no fileset '${name}'`;
    return new IntersyncError('NO_FILESET', `${what} in ${dir}`, {
      hint: `create one with: intersync mkfs ${dir}`,
    });
  }

  static FILESET_AMBIGUOUS(dir: string, names: string[]): IntersyncError {
    return new IntersyncError('FILESET_AMBIGUOUS', `${dir} holds several filesets (${names.join(', ')})`, {
      hint: 'name one with --fileset NAME',
    });
  }

  static DB_CORRUPT(file: string, cause?: unknown): IntersyncError {
    const detail = cause instanceof Error ? `: ${cause.message}` : '';
    return new IntersyncError('DB_CORRUPT', `fileset database ${file} is corrupt or truncated${detail}`, {
      // Never a step that throws the journal away first: SQLite may well read the store (issue 19).
      hint: `check it first, with no daemon running and its -wal and -shm files left beside it: sqlite3 ${file} 'PRAGMA integrity_check' ` +
        '(ok means the data is fine: keep the files and report this refusal); if it is damaged, restore it from a copy made by ' +
        'intersync backup or from a replica; intersync mkfs --force throws the journal away (the files stay) and is the last resort',
      cause,
    });
  }

  static DB_FORMAT(file: string, found: number, supported: number): IntersyncError {
    const newer = found > supported;
    return new IntersyncError(
      'DB_FORMAT',
      `fileset database ${file} has format ${found}; this intersync reads format ${supported}`,
      {
        // An older format is migrated by this release's first open for writing: read-only commands (status, kml, backup) do not.
        hint: newer ? 'upgrade intersync to a release that knows this format'
          : 'start the daemon on it once (intersync DIR, or systemctl start intersync@…): it migrates the store at its first open',
      },
    );
  }

  static DAEMON_RUNNING(dir: string, pid: number): IntersyncError {
    return new IntersyncError('DAEMON_RUNNING', `an intersync daemon (pid ${pid}) already serves ${dir}`, {
      hint: `stop it first (kill ${pid}), or use intersync status ${dir}`,
    });
  }

  /** The mount point is taken: by a running `intersync mount` (pid), or by another file system. */
  static MOUNT_BUSY(mountpoint: string, by: string): IntersyncError {
    return new IntersyncError('MOUNT_BUSY', `${mountpoint} is already a mount point (${by})`, {
      hint: `unmount it first (intersync umount ${mountpoint}), or choose an empty directory`,
    });
  }

  static NOT_MOUNTED(mountpoint: string): IntersyncError {
    return new IntersyncError('NOT_MOUNTED', `${mountpoint} is not an intersync mount`, {
      hint: 'intersync mount DIR MOUNTPOINT makes one; findmnt -t fuse.intersync lists those there are',
    });
  }

  static MOUNT_FAILED(mountpoint: string, why: string, cause?: unknown): IntersyncError {
    return new IntersyncError('MOUNT_FAILED', `cannot mount on ${mountpoint}: ${why}`, {
      hint: 'the mount needs /dev/fuse and libfuse2 (Debian: apt-get install fuse3 libfuse2), and an existing directory outside DIR',
      ...(cause === undefined ? {} : { cause }),
    });
  }

  static NOT_A_SLAVE(dir: string, role: string): IntersyncError {
    return new IntersyncError('NOT_A_SLAVE', `${dir} is a ${role}, not a mirror slave: a mirror writes only into a slave`, {
      hint: 'make an empty slave bound to the master\'s shared-uuid first: intersync pfs-slave DIR shared-uuid=UUID (the uuid is in intersync pfs-status MASTER)',
    });
  }

  static IS_A_SLAVE(dir: string, why: string): IntersyncError {
    return new IntersyncError('IS_A_SLAVE', `${dir} is a mirror slave: ${why}`, {
      hint: 'a slave is written only by intersync mirror-stream; to make it a master (fail-over), stop the mirror and run intersync pfs-upgrade DIR',
    });
  }

  static WRONG_MASTER(dir: string, slaveUuid: string, masterUuid: string): IntersyncError {
    return new IntersyncError('WRONG_MASTER', `the slave ${dir} is bound to shared-uuid ${slaveUuid}, the master's is ${masterUuid}: mirror refused`, {
      hint: 'mirror this master into a slave made for it (intersync pfs-slave NEWDIR shared-uuid=MASTER_UUID), or give the master this slave was made for',
    });
  }

  /** A slave whose state after a TID is not the master's there: it stops applying (nothing more is built on a wrong state). */
  static MIRROR_DIVERGED(tid: string, path: string | null, want: string, got: string): IntersyncError {
    return new IntersyncError('MIRROR_DIVERGED',
      `the slave's state digest after ${tid} is ${got.slice(0, 16)}…, the master's is ${want.slice(0, 16)}…; first differing path: ${path ?? 'none found (objects changed on the master since)'}`, {
        hint: 'the slave stopped applying at that TID; look at the path named (a change behind the slave\'s back, a damaged disk), then make a new slave and mirror again (verify --repair is not built yet)',
      });
  }

  static BAD_PATH(path: string, why: string): IntersyncError {
    return new IntersyncError('BAD_PATH', `refused path ${JSON.stringify(path)}: ${why}`, {
      hint: 'paths must be relative, normalised, and stay inside the backing directory',
    });
  }

  static UNSAFE_LINK(path: string, target: string, why: string): IntersyncError {
    return new IntersyncError('UNSAFE_LINK', `refused symlink ${JSON.stringify(path)} -> ${JSON.stringify(target)}: ${why}`, {
      hint: 'the fileset says safe-links=true: a symlink must point inside the tree with a relative target',
    });
  }

  static WATCH_LIMIT(dir: string, limit: number | undefined): IntersyncError {
    const at = limit === undefined ? '' : ` (fs.inotify.max_user_watches = ${limit})`;
    return new IntersyncError('WATCH_LIMIT', `inotify watch limit reached${at}: ${dir} is not watched`, {
      hint: 'raise it: sysctl -w fs.inotify.max_user_watches=1048576 (and add it to /etc/sysctl.conf); until then the unwatched directories are rescanned periodically',
      retriable: true,
    });
  }

  static UNAUTHORIZED(): IntersyncError {
    return new IntersyncError('UNAUTHORIZED', 'missing or wrong fileset secret', {
      hint: 'pass the server\'s secret with --secret-file (the server prints its path at mkfs)',
    });
  }

  /**
   * This node's own credential or secret file is missing, unreadable or empty: the node cannot prove who
   * it is (or, a server, check who its peers are). Not retriable: it does not come back by itself.
   */
  static NO_CREDENTIAL(what: string, file: string, why: string, hint: string, cause?: unknown): IntersyncError {
    return new IntersyncError('NO_CREDENTIAL', `${what} ${file} ${why}`, { hint, cause });
  }

  static FORBIDDEN(node: string | null, claimed: string): IntersyncError {
    const who = node === null ? 'the fileset secret names no node' : `this credential belongs to node ${node}`;
    return new IntersyncError('FORBIDDEN', `${who}; it cannot act for node ${claimed}`, {
      hint: 'each node acts only for itself, with the credential it received when it enrolled',
    });
  }

  static REVOKED(node: string): IntersyncError {
    return new IntersyncError('REVOKED', `node ${node} was revoked on this server`, {
      hint: 'ask the server\'s administrator for a new invitation (intersync invite DIR) and join again from an empty directory',
    });
  }

  static NODE_TAKEN(node: string): IntersyncError {
    return new IntersyncError('NODE_TAKEN', `node id ${node} is enrolled already (or was revoked)`, {
      hint: 'a node id belongs to the node that enrolled it first; join from a new, empty directory',
    });
  }

  static TLS_PIN_MISMATCH(url: string, want: string, got: string): IntersyncError {
    return new IntersyncError('TLS_PIN_MISMATCH', `the certificate of ${url} is ${got}, not the pinned ${want}: refusing to connect`, {
      hint: 'someone may be in the middle, or the server made a new certificate: get a new join token with intersync invite on the server',
    });
  }

  static INSECURE_HTTP(what: string): IntersyncError {
    return new IntersyncError('INSECURE_HTTP', `${what}: plain HTTP outside the loopback address would send the credentials in clear text`, {
      hint: 'use https (the default: intersync makes a self-signed certificate), a loopback address, or --insecure-http if the network is trusted',
    });
  }

  static BAD_TOKEN(why: string): IntersyncError {
    return new IntersyncError('BAD_TOKEN', `not a usable join token: ${why}`, {
      hint: 'copy the whole token printed by intersync invite on the server (it starts with isync1-)',
    });
  }

  static BAD_REQUEST(message: string): IntersyncError {
    return new IntersyncError('BAD_REQUEST', message, { hint: 'the peer sent something this node does not accept; check both run the same release' });
  }

  static TOO_LARGE(what: string, limit: number): IntersyncError {
    return new IntersyncError('TOO_LARGE', `${what} is larger than ${limit} bytes`, { hint: 'send it in smaller batches' });
  }

  static QUOTA(what: string, limit: number): IntersyncError {
    return new IntersyncError('QUOTA', `${what} would exceed the server's quota of ${limit} bytes`, {
      hint: 'staged uploads are removed once unused for a while; this node retries by itself', retriable: true,
    });
  }

  static NAME_REFUSED(path: string, why: string): IntersyncError {
    return new IntersyncError('NAME_REFUSED', `the file system refuses the name ${JSON.stringify(path.length > 300 ? `${path.slice(0, 300)}…` : path)}: ${why}`, {
      hint: 'rename the object to a name the server\'s file system accepts (at most 255 bytes per name, 4096 per path)',
    });
  }

  static PROTOCOL(message: string): IntersyncError {
    return new IntersyncError('PROTOCOL', `protocol: ${message}`, {
      hint: 'the two nodes may run releases that do not speak the same protocol version',
    });
  }

  static CONFLICT(path: string, why: string, reason?: ConflictReason): IntersyncError {
    return new IntersyncError('CONFLICT', `conflict on ${path}: ${why}`, {
      hint: 'the object changed on the server since this change was made; the conflict policy decides',
      ...(reason === undefined ? {} : { reason }),
    });
  }

  static TOKEN_BUSY(scope: string, holder: string): IntersyncError {
    return new IntersyncError('TOKEN_BUSY', `write token for ${scope} is held by ${holder}`, {
      hint: 'it has been recalled; the request is retried', retriable: true,
    });
  }

  static CONTENT_GONE(what: string): IntersyncError {
    return new IntersyncError('CONTENT_GONE', `content ${what} is no longer on the server`, {
      hint: 'a later record brings the newer content', retriable: true,
    });
  }

  static NO_SUCH_VERSION(path: string, why: string): IntersyncError {
    return new IntersyncError('NO_SUCH_VERSION', `no version of ${path} ${why}`, {
      hint: `intersync versions DIR ${path} lists the versions kept (only with --versioning trash or simple, of what peers replaced or removed)`,
    });
  }

  static VERSION_AMBIGUOUS(path: string, at: string, times: readonly string[]): IntersyncError {
    return new IntersyncError('VERSION_AMBIGUOUS', `${at} matches ${times.length} versions of ${path}: ${times.join(', ')}`, {
      hint: 'give the time to the millisecond as intersync versions lists it, or the TID',
    });
  }

  static NEED_CONTENT(hash: string): IntersyncError {
    return new IntersyncError('NEED_CONTENT', `the server does not have content ${hash.slice(0, 16)}`, {
      hint: 'upload the content first; the client does this by itself', retriable: true,
    });
  }

  static PEER_UNREACHABLE(url: string, cause: unknown): IntersyncError {
    const detail = cause instanceof Error ? `: ${cause.message}` : '';
    return new IntersyncError('PEER_UNREACHABLE', `cannot reach ${url}${detail}`, {
      hint: 'check the server address and that it runs; this node retries by itself', retriable: true, cause,
    });
  }

  /** A first start that gave up waiting for its server (--connect-timeout). */
  static NO_ANSWER(url: string, seconds: number, cause: unknown): IntersyncError {
    const detail = cause instanceof Error ? ` (last: ${cause.message})` : '';
    return new IntersyncError('PEER_UNREACHABLE', `${url} did not answer within --connect-timeout ${seconds}s${detail}`, {
      hint: 'check the server address and that it runs, then start again; without --connect-timeout a first start waits as long as it takes',
      cause,
    });
  }

  static NOT_EMPTY(dir: string): IntersyncError {
    return new IntersyncError('NOT_EMPTY', `${dir} is not empty and holds no fileset`, {
      hint: 'a first copy from the server goes into an empty directory; move the files away, or start from an empty one',
    });
  }

  static WRONG_FILESET(dir: string, have: string, server: string): IntersyncError {
    return new IntersyncError('WRONG_FILESET', `${dir} holds fileset ${have}, the server serves ${server}`, {
      hint: 'point the client at the server of this fileset, or use another directory',
    });
  }

  static RESYNC_NEEDED(since: string, first: string): IntersyncError {
    return new IntersyncError('RESYNC_NEEDED', `the server no longer holds the records after ${since} (its journal starts at ${first})`, {
      hint: 'this node was away longer than the server\'s retention (--retain-records): it resyncs the whole fileset by itself, keeping its own changes',
    });
  }

  /**
   * A write refused for want of space (ENOSPC, EDQUOT, SQLITE_FULL): a state of the node, not a fault of
   * the data or a conflict. Retriable: the node tries again by itself and goes on once space returns.
   */
  static DISK_FULL(what: string, cause?: unknown): IntersyncError {
    const detail = cause instanceof Error ? ` (${cause.message})` : '';
    return new IntersyncError('DISK_FULL', `${what}: no space left on the disk${detail}`, {
      hint: 'free space on that disk (or raise the quota); this node retries by itself and goes on once there is room, nothing acknowledged is lost',
      retriable: true,
      cause,
    });
  }

  static IO(verbPhrase: string, path: string, cause: unknown): IntersyncError {
    const errno = (cause as NodeJS.ErrnoException | undefined)?.code;
    if (isDiskFull(cause)) return IntersyncError.DISK_FULL(`${verbPhrase} ${path}`, cause);
    if (errno === 'EACCES' || errno === 'EPERM') return IntersyncError.PERMISSION_DENIED(path, cause);
    if (errno === 'ENOENT') return IntersyncError.NO_SUCH_DIRECTORY(path);
    if (errno === 'ENOTDIR') return IntersyncError.NOT_A_DIRECTORY(path);
    const detail = cause instanceof Error ? cause.message : String(cause);
    return new IntersyncError('IO', `${verbPhrase} ${path}: ${detail}`, {
      hint: 'check the disk and permissions',
      retriable: errno === 'EAGAIN' || errno === 'EBUSY',
      cause,
    });
  }
}

/**
 * Whether `e` (an errno error, an SQLite error, or one wrapping either) says the disk or the quota is full.
 * With `local`, only this node's own disk counts: a peer's DISK_FULL answer does not.
 */
export function isDiskFull(e: unknown, o: { local?: boolean } = {}): boolean {
  for (let c = e, depth = 0; c !== null && c !== undefined && depth < 8; c = (c as { cause?: unknown }).cause, depth++) {
    if (o.local === true && c instanceof IntersyncError && c.fromPeer) return false;
    const code = (c as { code?: unknown }).code;
    if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'SQLITE_FULL' || code === 'DISK_FULL') return true;
  }
  return false;
}
