import { isInlineSize } from '#core/format.js';
import type { SnapshotEntry } from '#net/snapshot-source.js';
import type { CopyDeps } from './copy-deps.js';

// What a copy fetches and in what runs: the content of small files comes inline, many files to a request;
// a large file comes on its own, as a block transfer.

/** Batches grow from FIRST_BATCH_FILES (writing starts soon) to BATCH_FILES (few requests and transactions). */
const FIRST_BATCH_FILES = 250;
const BATCH_FILES = 2_000;
export const BATCH_BYTES = 8 << 20;

export type Inline = { hash: string | null; data: Buffer | null };

export type Content = Map<string, Inline>;

export const isLarge = (e: SnapshotEntry): boolean => e.type === 'file' && e.linkOf === null && !isInlineSize(e.size ?? 0);
export const isInline = (e: SnapshotEntry): boolean => e.type === 'file' && e.linkOf === null && (e.size ?? 0) > 0 && isInlineSize(e.size ?? 0);

/** Runs of entries, each at most twice as long as the one before up to BATCH_FILES, whose inline content stays near BATCH_BYTES. */
export function batchesOf(todo: readonly SnapshotEntry[]): SnapshotEntry[][] {
  const out: SnapshotEntry[][] = [];
  let batch: SnapshotEntry[] = [];
  let bytes = 0;
  let most = FIRST_BATCH_FILES;
  for (const e of todo) {
    if (batch.length >= most || (batch.length > 0 && bytes >= BATCH_BYTES)) {
      out.push(batch);
      batch = [];
      bytes = 0;
      most = Math.min(most * 2, BATCH_FILES);
    }
    batch.push(e);
    if (isInline(e)) bytes += e.size ?? 0;
  }
  if (batch.length > 0) out.push(batch);
  return out;
}

export function contentOf(d: CopyDeps, batch: readonly SnapshotEntry[]): Promise<Content> {
  const small = batch.filter(isInline);
  return small.length === 0 ? Promise.resolve(new Map()) : d.client.content(small.map((e) => e.fid));
}
