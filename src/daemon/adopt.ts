/**
 * Adoption, carried out: a client's first start in a populated directory. Before the first copy, the plan
 * (adopt-plan.ts) is applied: what is the server's already joins the object table with the server's version
 * (no transfer), what differs goes where the fileset's conflict policy says (beside the name, to the
 * conflicts folder, or held to be put back over the server's version), what is only here stays for the
 * start-up scan to journal as local creates. The first copy then fetches the rest and skips what is
 * journaled. Resumable: the meta key `adopt` stays `pending` until the copy is in and the held local
 * versions are back, and each step can be run again.
 */
import { chmodSync, copyFileSync, mkdirSync, readdirSync, renameSync, rmSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Clock } from '#core/clock.js';
import { IntersyncError } from '#core/errors.js';
import { META_DIR } from '#core/format.js';
import { asTid, formatTid, parseTid, type NodeId, type Tid } from '#core/ids.js';
import { baseName } from '#core/paths.js';
import type { ApplyPath } from '#apply/apply-path.js';
import type { FilesetDb } from '#journal/fileset-db.js';
import type { PeerClient, SnapshotEntry } from '#net/peer-client.js';
import { parseWireEntry } from '#net/protocol/wire-record.js';
import { formatPolicy, type PolicyConfig } from '#policy/conflict-policy.js';
import { identityOf, lstatOrNull, nowNs } from '#fsio/disk.js';
import { planAdoption, summarize, type AdoptItem, type AdoptPlan, type AdoptSummary } from './adopt-plan.js';
import { draftOf, dropUnjournaled } from '#copy/copy.js';

/** Meta key: `pending` from the first start in a populated directory until the adoption is done, then its summary. */
const ADOPT = 'adopt';
/** Meta key: local versions held beside their name to go back over the server's once the copy is in: [held, name]. */
const PUT_BACK = 'adopt_put_back';

/** Objects journaled per transaction. */
const KEEP_BATCH = 1_000;

export interface AdoptDeps {
  readonly db: FilesetDb;
  readonly apply: ApplyPath;
  readonly client: PeerClient;
  readonly root: string;
  readonly tmpDir: string;
  readonly conflictsDir: string;
  readonly serverNode: string;
  readonly policy: PolicyConfig;
  readonly log: Logger;
  readonly clock: Clock;
}

/**
 * At a client's start: note an adoption when this first start found the directory populated (`populated`,
 * the fileset made just now), or, at a later start, when an earlier first start was killed between making
 * the fileset and noting it (no copy done, nothing journaled, names in the tree). A file made in the tree
 * during this start's own first copy is not a reason: the copy meets it (kept beside). Noted, it runs
 * until done, at each start.
 */
export function noteAdoption(db: FilesetDb, dir: string, o: { populated: boolean; madeNow: boolean }): void {
  if (db.getMeta(ADOPT) !== undefined || db.getMeta('copy_done') !== undefined) return;
  const killedEarly = !o.madeNow && db.objectCount() === 0 && db.lmlCount() === 0 && readdirSync(dir).some((n) => n !== META_DIR);
  if (o.populated || killedEarly) db.setMeta(ADOPT, 'pending');
}

export function adoptionPending(db: FilesetDb): boolean {
  return db.getMeta(ADOPT) === 'pending';
}

/** The server's snapshot entries as checked at the edge (a malformed one is left out: the copy logs it). */
export function checkedEntries(raw: unknown): SnapshotEntry[] {
  const out: SnapshotEntry[] = [];
  for (const v of Array.isArray(raw) ? raw : []) {
    try {
      out.push(parseWireEntry(v));
    } catch (e) {
      if (!(e instanceof IntersyncError)) throw e;
    }
  }
  return out;
}

/** Compare, decide and prepare (before the first copy). Returns the plan's summary, logged. */
export async function adopt(d: AdoptDeps): Promise<AdoptSummary> {
  dropUnjournaled(d); // a fresh copy killed half-way left files that are not local versions
  const raw = await d.client.snapshot(d.db.lastRcvdOf(d.serverNode));
  const tid = parseTid(raw.tid);
  if (tid === undefined || !Array.isArray(raw.entries)) throw IntersyncError.PROTOCOL('the snapshot must name its TID and list its entries');
  const attrs = d.apply.attrs;
  const modeOf = (e: SnapshotEntry): number | null => {
    try {
      return d.apply.localize(draftOf(e, d.serverNode as NodeId, 0), attrs).mode;
    } catch (err) {
      if (err instanceof IntersyncError && err.code === 'UNSAFE_LINK') return null; // refused: the copy says so
      throw err;
    }
  };
  const t0 = d.clock.monotonic();
  const plan = planAdoption({ root: d.root, entries: checkedEntries(raw.entries), tid, node: d.db.meta.nodeId, serverNode: d.serverNode, policy: d.policy, modeOf });
  const t1 = d.clock.monotonic();
  carryOut(d, plan);
  const s = summarize(plan);
  d.log.info({ ...s, ms: { compare: Math.round(t1 - t0), prepare: Math.round(d.clock.monotonic() - t1) }, beside: plan.items.filter((x) => x.action !== 'keep' && x.action !== 'fetch').slice(0, 20).map((x) => `${x.path}: ${x.action} (${x.why})`) }, 'adoption: local tree compared with the server\'s');
  return s;
}

function carryOut(d: AdoptDeps, plan: AdoptPlan): void {
  const tid = plan.tid;
  const held = heldOf(d.db);
  // What is the server's already joins the table first, many per transaction (a kill keeps whole batches).
  const keeps = plan.items.filter((x) => x.action === 'keep');
  for (let n = 0; n < keeps.length; n += KEEP_BATCH) d.db.batch(() => keeps.slice(n, n + KEEP_BATCH).forEach((x) => keep(d, x)));
  for (const x of plan.items) {
    const abs = join(d.root, x.path);
    if (x.action === 'keep') continue;
    else if (x.action === 'fetch' && x.relink) rmSync(abs, { force: true }); // the server's content: linked again by the copy
    else if (x.action === 'beside') {
      renameSync(abs, join(d.root, x.to!));
      conflict(d, tid, x.path, 'keep-both', x.to, 'open', null);
      d.log.debug({ path: x.path, keptAs: x.to, why: x.why }, 'adoption: the local version differs; kept beside');
    } else if (x.action === 'save') {
      let kept: string | null = null;
      if (d.policy.discard) rmSync(abs, { recursive: true, force: true });
      else {
        mkdirSync(d.conflictsDir, { recursive: true, mode: 0o700 });
        kept = join(d.conflictsDir, `${formatTid(tid).slice(2)}-adopt-${d.clock.now().toString(36)}-${baseName(x.path)}`);
        renameSync(abs, kept);
      }
      conflict(d, tid, x.path, 'remote', kept, 'resolved', 'the server\'s version kept');
      d.log.debug({ path: x.path, kept, why: x.why }, 'adoption: the local version differs; the server\'s wins');
    } else if (x.action === 'send') {
      // Noted before the move: a kill in between finds the local version at either name.
      held.push([x.to!, x.path]);
      d.db.setMeta(PUT_BACK, JSON.stringify(held));
      renameSync(abs, join(d.root, x.to!));
    }
  }
}

/** The server's object, here already: journaled as the server's version, its mode and mtime made the server's. */
function keep(d: AdoptDeps, x: AdoptItem): void {
  const e = x.entry!;
  const abs = join(d.root, x.path);
  const before = lstatOrNull(abs);
  if (before === null) return; // gone meanwhile: the copy fetches it
  const draft = d.apply.localize(draftOf(e, d.serverNode as NodeId, d.clock.now()));
  if (e.type === 'file' && x.relink) {
    // Linked here to names the server holds apart: an inode of its own, the same bytes (no transfer).
    const tmp = join(d.tmpDir, `adopt-${process.pid}-${baseName(x.path)}`);
    mkdirSync(d.tmpDir, { recursive: true });
    copyFileSync(abs, tmp);
    renameSync(tmp, abs);
  }
  if (x.mode === 'set') chmodSync(abs, draft.mode & 0o7777);
  if (e.type === 'file' && Math.abs(before.mtimeMs - e.mtimeMs) >= 1) utimesSync(abs, new Date(), new Date(e.mtimeMs));
  const st = lstatOrNull(abs);
  // Racy as the stat before: a write landing now would not move size and times, and the scan reads it again.
  const racy = identityOf(before, nowNs()).racy;
  d.db.commitCopy(e.linkOf === null ? draft : { ...draft, kind: 'create', target: null }, asTid(BigInt(e.version)),
    st === null ? null : { ino: st.ino, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, racy });
}

function conflict(d: AdoptDeps, tid: Tid, path: string, decision: string, kept: string | null, status: 'open' | 'resolved', resolution: string | null): void {
  d.db.addConflict({
    time: d.clock.now(), path, kind: 'write/write', policy: formatPolicy(d.policy), decision, remoteTid: tid, remoteNode: d.serverNode,
    kept, status, resolution,
  });
}

function heldOf(db: FilesetDb): Array<[string, string]> {
  return JSON.parse(db.getMeta(PUT_BACK) ?? '[]') as Array<[string, string]>;
}

/**
 * Once the copy is in: the local versions held for client-wins go back over the server's (kept in the
 * conflicts folder unless :discard), as local writes the start-up scan journals; then the adoption is done.
 */
export function finishAdoption(d: AdoptDeps, summary: AdoptSummary | null): void {
  for (const [from, name] of heldOf(d.db)) {
    const src = join(d.root, from);
    const dst = join(d.root, name);
    if (lstatOrNull(src) === null) continue; // put back by an earlier try
    let kept: string | null = null;
    const server = lstatOrNull(dst);
    if (server !== null && !d.policy.discard) {
      mkdirSync(d.conflictsDir, { recursive: true, mode: 0o700 });
      kept = join(d.conflictsDir, `${formatTid(d.db.lastRcvdOf(d.serverNode)).slice(2)}-adopt-${d.clock.now().toString(36)}-${baseName(name)}`);
      if (server.type === 'file') copyFileSync(dst, kept);
      else kept = null;
    }
    if (server !== null) rmSync(dst, { recursive: true, force: true });
    renameSync(src, dst);
    conflict(d, d.db.lastRcvdOf(d.serverNode), name, 'local', kept, 'resolved', 'the local version replaced the server\'s');
    d.log.warn({ path: name, kept }, 'adoption: the local version differs; it replaces the server\'s');
  }
  d.db.setMeta(PUT_BACK, '[]');
  d.db.setMeta(ADOPT, JSON.stringify(summary ?? { done: true }));
}
