import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { joinRel } from '#core/paths.js';
import type { Change } from '#journal/fileset-db.js';
import { lstatOrNull } from '#fsio/disk.js';
import type { ReconcilerDeps } from './reconcile-types.js';

/**
 * The state of one batch (one Reconciler#run) that its parts share: the run loop (reconciler.ts), the working
 * out of names, parents and moves by inode (reconcile-names.ts) and the records of what a name holds
 * (reconcile-changes.ts). Made per batch, passed to each part, never copied; nothing outside src/presto/ sees it.
 */
export class BatchState {
  readonly d: ReconcilerDeps;
  readonly queue: string[] = [];
  readonly queued = new Set<string>();
  readonly done = new Set<string>();
  readonly visiting = new Set<string>();
  readonly deletes: string[] = [];
  readonly retry: string[] = [];
  readonly inoAt = new Map<string, string>(); // inode -> a dirty path holding it (from the first stat)
  readonly newDirs: string[] = []; // dirty directories the journal does not have at their name (made or moved a moment ago)
  newDirsListed = false;
  readonly parentsOk = new Set<string>(); // directories journaled as on disk, until the next move or removal
  readonly later = new Map<string, number>(); // names put back in the queue to wait for a parent, and how often
  records = 0;

  readonly settle: boolean;

  constructor(d: ReconcilerDeps, settle: boolean) {
    this.d = d;
    this.settle = settle;
  }

  add(p: string): void {
    if (this.queued.has(p)) return;
    this.queued.add(p);
    this.queue.push(p);
  }

  abs(p: string): string {
    return join(this.d.root, p);
  }

  addEntriesOf(dir: string, all = false): void {
    let names: string[];
    try {
      names = readdirSync(this.abs(dir));
    } catch {
      return; // gone again: its own event follows
    }
    for (const name of names) {
      const q = joinRel(dir, name);
      const row = this.d.db.objectByPath(q);
      if (all || row === undefined || row.ino !== lstatOrNull(this.abs(q))?.ino) this.add(q);
    }
    // And what the move brought along in the journal but is no longer there (removed after the move, while
    // the daemon was stopped or in the same batch): its removal was looked for at its old name, and missed.
    const present = new Set(names.map((n) => joinRel(dir, n)));
    for (const row of this.d.db.objectsBelow(dir)) {
      if (present.has(row.path)) continue;
      if (lstatOrNull(this.abs(row.path)) === null) this.add(row.path);
    }
  }

  commit(changes: Change[]): void {
    if (changes.length === 0) return;
    if (changes.some((c) => c.draft.kind === 'rename' || c.draft.kind === 'rmdir')) this.parentsOk.clear();
    // One WAL write for the names of a slice, not one per name: closed before anything else may run
    // (reconciler.ts: before each yield and at the batch's end; readStable: before it waits on I/O).
    this.d.db.openGroup();
    this.records += this.d.journal(changes);
  }
}
