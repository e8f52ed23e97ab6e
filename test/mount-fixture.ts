// The mount tests' fixture: a daemon of DIR with its filter mount in a separate process, the cleanup that
// unmounts whatever a test mounted even when it fails, programs run through the mount, and the check that
// the journal agrees with the disk and that every record's pre-version is the object's previous version.
// The tests need /dev/fuse, libfuse2 (Debian), and git, sqlite3, rsync, tar: they fail, not skip, without them.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NODE_ARGS, ROOT, STATE_DIR, cli, diskDigest, journalState, tmpDir } from './helpers.js';

/** Is `mnt` mounted now (from the kernel's table: a stat of a stale mount fails). */
export function isMounted(mnt: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === mnt);
}

/** Detach `mnt` if it is still mounted: fusermount -uz, else umount -l (for `after` hooks, never throws). */
export function forceUnmount(mnt: string): void {
  if (!isMounted(mnt)) return;
  if (spawnSync('fusermount', ['-uz', mnt]).status === 0) return;
  spawnSync('umount', ['-l', mnt]);
}

export interface Mounted {
  readonly dir: string;
  readonly mnt: string;
  readonly logs: string;
  readonly child: ChildProcess;
  /** What the daemon printed so far (stdout and stderr). */
  output(): string;
}

/** Start `intersync mount DIR MNT` in its own process; resolves once it says it is serving. */
export async function spawnMount(dir: string, mnt: string, logs: string, extra: string[] = []): Promise<Mounted> {
  const args = [...NODE_ARGS, 'mount', '--log-dir', logs, '--state-dir', STATE_DIR, ...(extra.includes('--server') || extra.includes('--listen') ? [] : ['--listen', 'none']), ...extra, dir, mnt];
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  await new Promise<void>((res, rej) => {
    const t = setTimeout(() => rej(new Error(`mount did not start: ${out}`)), 120_000);
    const look = (): void => {
      if (!out.includes('stop with Ctrl-C')) return;
      clearTimeout(t);
      res();
    };
    child.stdout!.on('data', look);
    child.on('exit', (code) => {
      clearTimeout(t);
      rej(new Error(`mount exited with ${code}: ${out}`));
    });
  });
  child.removeAllListeners('exit');
  return { dir, mnt, logs, child, output: () => out };
}

/** Stop a mount's daemon with `signal` and wait for its exit (a no-op when it already ended). */
export async function stopMount(m: Mounted, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (m.child.exitCode === null && m.child.signalCode === null) {
    const done = new Promise<void>((res) => m.child.once('exit', () => res()));
    m.child.kill(signal);
    await done;
  }
}

/**
 * A temp DIR, mount point and log folder; `cleanup` (for `after`, run even when a test fails) kills the daemons
 * `track`ed and unmounts before it removes the folders.
 */
export function mountDirs(): { dir: string; mnt: string; logs: string; track: (m: Mounted) => Mounted; cleanup: () => Promise<void> } {
  const base = tmpDir('intersync-mount-');
  const dir = join(base.path, 'dir');
  const mnt = join(base.path, 'mnt');
  const logs = join(base.path, 'logs');
  mkdirSync(dir);
  mkdirSync(mnt);
  const started: Mounted[] = [];
  const cleanup = async (): Promise<void> => {
    for (const m of started) await stopMount(m, 'SIGKILL');
    forceUnmount(mnt);
    base.cleanup();
  };
  return { dir, mnt, logs, track: (m) => (started.push(m), m), cleanup };
}

/** Run a program (through the mount): it must succeed. */
export function run(cmd: string, args: readonly string[], cwd: string, env: Record<string, string> = {}): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} failed: ${r.stderr}${r.error?.message ?? ''}`);
  return r.stdout;
}

/**
 * The journal says what the disk holds (digest equals digest --scan of DIR), and every record's pre-version
 * is the version its object had before it: the previous record of that fid (new objects: no version).
 */
export async function assertJournaled(dir: string, what: string): Promise<void> {
  assert.equal(journalState(dir).digest, await diskDigest(dir), `${what}: the journal's digest equals the digest of DIR`);
  const kml = cli(['kml', '--json', dir]);
  assert.equal(kml.code, 0, kml.stderr);
  const last = new Map<string, string>();
  for (const line of kml.stdout.trim().split('\n').filter((l) => l !== '')) {
    const r = JSON.parse(line) as { fid: string; postVersion: string; preVersion: string; kind: string; path: string; links: string[] | null };
    const before = last.get(r.fid);
    if (before !== undefined) assert.equal(r.preVersion, before, `${what}: ${r.kind} ${r.path} names the version its object had`);
    // A change of a hard-linked file's inode is one of all its names (`links`: their fids): each gets the version.
    for (const fid of [r.fid, ...(r.links ?? [])]) last.set(fid, r.postVersion);
  }
}

/** The records of the KML (kind and path), in order. */
export function kmlShapes(dir: string): string[] {
  const kml = cli(['kml', '--json', dir]);
  assert.equal(kml.code, 0, kml.stderr);
  return kml.stdout.trim().split('\n').filter((l) => l !== '').map((l) => {
    const r = JSON.parse(l) as { kind: string; path: string; newPath: string | null };
    return r.newPath === null ? `${r.kind} ${r.path}` : `${r.kind} ${r.path} -> ${r.newPath}`;
  });
}
