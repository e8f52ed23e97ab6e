/**
 * `intersync --server … DIR --dry-run`: what a client's first start would do in DIR (empty or already
 * holding the files), from the server's snapshot, without doing it. Nothing is written: no metadata
 * folder, no credential, no enrolment (the server registers no node); the fileset secret authenticates
 * the snapshot request, so an invitation alone cannot (it opens enrolment only).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { IntersyncError } from '#core/errors.js';
import { NO_VERSION, parseTid } from '#core/ids.js';
import { listFilesets } from '#journal/layout.js';
import { PeerClient, type SnapshotEntry } from '#net/peer-client.js';
import { ATTR_SETTINGS, SAFE_ATTRS, localAttrs, stricter, unsafeLinkReason, type AttrPolicy } from '#policy/attr-policy.js';
import { parsePolicy } from '#policy/conflict-policy.js';
import { planAdoption, summarize, type AdoptItem, type AdoptPlan, type AdoptSummary } from '#daemon/adopt-plan.js';
import { checkedEntries } from '#daemon/adopt.js';
import { parseServerAttrs } from '#copy/client-attrs.js';
import { draftOf } from '#copy/copy.js';
import { fmtBytes } from './output.js';
import { clientTarget, type RunOptions } from './run-daemon.js';

type Print = (line: string) => void;

/** Stands for this node's id in the conflict names shown: the real one is made at the real start. */
const NODE = 'NODE';

const VERB: Record<AdoptItem['action'], string> = {
  keep: 'keep', fetch: 'fetch', beside: 'keep beside', save: 'save aside', send: 'send', local: 'send',
};

export async function adoptDryRun(dir: string, o: RunOptions & { json?: boolean }, print: Print): Promise<void> {
  const abs = resolve(dir);
  if (existsSync(abs) && !statSync(abs).isDirectory()) throw IntersyncError.NOT_A_DIRECTORY(abs);
  if (existsSync(abs) && listFilesets(abs).length > 0) {
    throw IntersyncError.BAD_ARGUMENT(`${abs} holds a fileset already: --dry-run here shows a first start only`,
      `for a client that was disconnected: intersync reconnect ${dir} --dry-run`);
  }
  const target = clientTarget(o);
  if (target.trust.secret === undefined) {
    throw IntersyncError.BAD_ARGUMENT('a dry run asks the server for its snapshot with the fileset secret, and enrols nothing',
      'give --secret-file (the server\'s STATE/<node>/<fileset>/secret); a join token\'s invitation opens enrolment only');
  }
  const client = new PeerClient(target.url, target.trust.secret, {
    ...(o.tlsCa === undefined ? {} : { ca: o.tlsCa }), ...(target.trust.pin === undefined ? {} : { pin: target.trust.pin }),
  });
  let plan: AdoptPlan;
  try {
    // An id of no node: the fileset secret only asks, it registers nothing.
    const hello = await client.hello(randomBytes(8).toString('hex'), target.replicate);
    if (target.uuid !== undefined && hello.uuid !== target.uuid) throw IntersyncError.WRONG_FILESET(abs, target.uuid, hello.uuid);
    const raw = await client.snapshot(NO_VERSION);
    const tid = parseTid(raw.tid);
    if (tid === undefined) throw IntersyncError.PROTOCOL('the snapshot must name its TID');
    const asked = o.conflictPolicy ?? hello.conflictPolicy ?? 'keep-both';
    const policy = parsePolicy(asked);
    if (policy === undefined) throw IntersyncError.BAD_ARGUMENT(`--conflict-policy ${asked} is not a policy`, 'keep-both|server-wins|client-wins|newest-wins|hook[:discard]');
    const attrs = stricter(parseServerAttrs(hello.attrs), localSettings(o));
    const self = { uid: process.geteuid?.() ?? 0, gid: process.getegid?.() ?? 0 };
    const modeOf = (e: SnapshotEntry): number | null => {
      if (attrs.safeLinks && e.type === 'symlink' && e.target !== null && unsafeLinkReason(e.path, e.target) !== null) return null;
      return localAttrs(draftOf(e, hello.node as never, 0), attrs, { self, current: null, canChown: false }).mode;
    };
    plan = planAdoption({ root: abs, entries: checkedEntries(raw.entries), tid, node: NODE, serverNode: hello.node, policy, modeOf });
  } finally {
    await client.close();
  }
  show(abs, plan, summarize(plan), o.json === true, print);
}

function localSettings(o: RunOptions): AttrPolicy {
  const out: Record<string, boolean> = { ...SAFE_ATTRS };
  for (const [, field] of ATTR_SETTINGS) if (o[field] !== undefined) out[field] = o[field] === true;
  return out as unknown as AttrPolicy;
}

function show(dir: string, plan: AdoptPlan, s: AdoptSummary, json: boolean, print: Print): void {
  const listed = plan.items.filter((x) => x.action !== 'keep' || x.mode !== 'same' || x.relink);
  if (json) {
    print(JSON.stringify({
      dryRun: true, dir, ...s,
      items: listed.map((x) => ({ path: x.path, action: x.action, why: x.why, to: x.to, bytes: x.bytes, sendBytes: x.sendBytes, files: x.files })),
    }));
    return;
  }
  print(`dry run: the first start in ${dir} would, against the server's snapshot at ${s.tid} (conflict policy ${s.policy}):`);
  print(`  keep     ${s.kept.files} files (${fmtBytes(s.kept.bytes)}) that are the server's already, without a transfer${s.modesSet > 0 ? `; set the server's mode on ${s.modesSet}` : ''}`);
  print(`  fetch    ${s.fetched.files} files (${fmtBytes(s.fetched.bytes)}) missing here or different`);
  print(`  beside   ${s.keptBeside} local versions that differ, kept beside their name as conflict copies`);
  if (s.savedAside > 0) print(`  aside    ${s.savedAside} local versions that differ, kept in the fileset's conflicts folder (the server's wins)`);
  print(`  send     ${s.sent.files} files (${fmtBytes(s.sent.bytes)}) only here or kept beside, to the server`);
  print(`  (${s.hashed} files read to compare; size and mtime settled the others)`);
  for (const x of listed) print(`  ${VERB[x.action].padEnd(11)} ${x.path}${x.to === null ? '' : ` -> ${x.to}`}${x.why === '' ? '' : `  (${x.why})`}`);
  if (s.keptBeside > 0) print(`  ${NODE} stands for this node's id, made at the real start`);
  print('nothing was changed');
}
