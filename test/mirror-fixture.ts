// What the mirror tests share: a master (an in-process server node on a temp directory), an empty slave made
// with the CLI's pfs-slave, and readers of both journals.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { formatDigest } from '#core/digest.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { findFileset } from '#journal/layout.js';
import type { FilesetNode } from '#daemon/fileset-node.js';
import { cli, startNode, tmpDir } from './helpers.js';

export interface MirrorBox {
  readonly node: FilesetNode;
  readonly master: string;
  readonly slave: string;
  readonly root: string;
}

/** A master node and an empty directory for a slave (not made yet), stopped and removed after the test. */
export async function masterBox(t: TestContext, prefix: string): Promise<MirrorBox> {
  const box = tmpDir(prefix);
  const logs = tmpDir(`${prefix}logs-`);
  const master = join(box.path, 'master');
  const slave = join(box.path, 'slave');
  mkdirSync(master);
  mkdirSync(slave);
  const node = await startNode(master, logs.path);
  t.after(async () => {
    await node.stop();
    box.cleanup();
    logs.cleanup();
  });
  return { node, master, slave, root: box.path };
}

/** pfs-slave DIR shared-uuid=UUID with the master's uuid; returns that uuid. */
export function makeSlave(dir: string, uuid: string): void {
  const r = cli(['pfs-slave', dir, `shared-uuid=${uuid}`, '--json']);
  if (r.code !== 0) throw new Error(`pfs-slave: ${r.stderr}`);
}

/** A journal's last TID, digest and object count, read while another process may write it. */
export function journalOf(dir: string): { tid: bigint; digest: string; objects: number; fileBytes: number } {
  const db = FilesetDb.open(findFileset(dir).db, { readonly: true, check: false });
  try {
    const snap = db.snapshotReader();
    snap.close();
    return { tid: db.lastTid, digest: formatDigest(db.digest), objects: db.objectCount(), fileBytes: snap.bytes };
  } finally {
    db.close();
  }
}

/** The TID the slave's `synced` file names, or null. */
export function syncedOf(slave: string): string | null {
  try {
    return readFileSync(join(findFileset(slave).meta, 'synced'), 'utf8').trim();
  } catch {
    return null;
  }
}

/** The last JSON line of a command's stdout. */
export function lastJson(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
}
