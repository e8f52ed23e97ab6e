/**
 * `versions DIR [PATH]` lists what peers replaced or removed on this node (kept with --versioning trash or
 * simple, apply/versions.ts); `restore DIR PATH --at TIME|TID [--to OTHER]` writes one back into the tree,
 * where capture journals it as an ordinary local change and it replicates like any other.
 */
import { copyFileSync, lstatSync, mkdirSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import type { Command } from 'commander';
import { IntersyncError } from '#core/errors.js';
import { META_DIR } from '#core/format.js';
import { parseTid } from '#core/ids.js';
import { checkRelPath } from '#core/paths.js';
import { findFileset } from '#journal/layout.js';
import { readPidFile } from '#journal/pid-file.js';
import { hashFileSync, lstatOrNull } from '#fsio/disk.js';
import { allVersions, listVersions, type Version } from '#apply/versions.js';
import { fmtBytes } from './output.js';

type Print = (line: string) => void;

const FILESET_HELP = 'fileset (default: the only one in DIR)';

/** A path as the user gave it (relative to DIR, `./x`, or absolute inside DIR) as the fileset names it. */
export function relPathOf(dir: string, p: string): string {
  let rel = isAbsolute(p) ? relative(dir, p) : p;
  rel = rel.replace(/^(\.\/)+/, '').replace(/\/+$/, '');
  if (rel.startsWith('../') || rel === '..') throw IntersyncError.BAD_PATH(p, `outside ${dir}`);
  checkRelPath(rel);
  if (rel.split('/')[0] === META_DIR) throw IntersyncError.BAD_PATH(p, `${META_DIR} holds intersync's own files`);
  return rel;
}

function versionJson(v: Version): Record<string, unknown> {
  return { path: v.path, time: new Date(v.time).toISOString(), tid: v.tid, how: v.how, size: v.size, hash: v.hash ?? shortHash(v.file), file: v.file };
}

function shortHash(file: string): string | null {
  return hashFileSync(file)?.slice(0, 12) ?? null;
}

function versionLine(v: Version): string {
  return `${new Date(v.time).toISOString()}  ${v.tid ?? '-'.padEnd(18)}  ${v.how.padEnd(8)}  ${fmtBytes(v.size).padStart(10)}  ${v.hash ?? shortHash(v.file) ?? '-'}  ${v.path}`;
}

export function cmdVersions(dir: string, path: string | undefined, o: { fileset?: string; json: boolean }, print: Print): void {
  const paths = findFileset(dir, o.fileset);
  const list = path === undefined ? [...allVersions(paths.meta).values()].flat() : listVersions(paths.meta, relPathOf(paths.dir, path));
  if (o.json) {
    for (const v of list) print(JSON.stringify(versionJson(v)));
    return;
  }
  if (list.length === 0) {
    print(path === undefined ? 'no versions kept' : `no versions of ${path} (only what peers replaced or removed is kept, with --versioning trash or simple)`);
    return;
  }
  print(`${'time (replaced)'.padEnd(24)}  ${'by TID'.padEnd(18)}  ${'how'.padEnd(8)}  ${'size'.padStart(10)}  ${'sha256'.padEnd(12)}  path`);
  for (const v of list) print(versionLine(v));
  print(`bring one back: intersync restore ${dir} PATH --at TIME|TID [--to OTHERPATH]`);
}

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/**
 * `--at`: the span of time it names. `10m` (ago) and a time to the second name that second; a date, or a time
 * to the minute, name that day or minute; a time to the millisecond (as `versions` prints it), that ms.
 */
export function parseAt(at: string, now: number): { start: number; end: number } | null {
  const rel = /^([0-9]{1,9})([smhdw])(?: ?ago)?$/.exec(at.trim());
  if (rel !== null) {
    const t = now - Number(rel[1]) * UNIT_MS[rel[2]!]!;
    return { start: t - (t % 1000), end: t - (t % 1000) + 1000 };
  }
  const iso = /^([0-9]{4}-[0-9]{2}-[0-9]{2})(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,3}))?)?)?(Z|[+-][0-9]{2}:?[0-9]{2})?$/.exec(at.trim());
  if (iso === null) return null;
  const start = Date.parse(at.trim().replace(' ', 'T'));
  if (Number.isNaN(start)) return null;
  const span = iso[2] === undefined ? 86_400_000 : iso[4] === undefined ? 60_000 : iso[5] === undefined ? 1000 : 10 ** (3 - iso[5].length);
  return { start, end: start + span };
}

/**
 * The version `--at` names among `list` (newest first). A TID: the version its record replaced. A time: the
 * content the file held then, i.e. the first version replaced at or after it; more than one replaced within
 * the span the time names (a day, a minute, a second) is ambiguous.
 */
export function pickVersion(list: readonly Version[], path: string, at: string, now: number): Version {
  const tid = /^(0x[0-9a-fA-F]{1,16}|[0-9]{1,19})$/.test(at.trim()) ? parseTid(at) : undefined;
  if (tid !== undefined) {
    const v = list.find((x) => x.tid !== null && parseTid(x.tid) === tid);
    if (v === undefined) throw IntersyncError.NO_SUCH_VERSION(path, `replaced by TID ${at}`);
    return v;
  }
  const span = parseAt(at, now);
  if (span === null) {
    throw IntersyncError.BAD_ARGUMENT(`--at ${at} is neither a time nor a TID`,
      'a time as intersync versions prints it (2026-12-06T02:30:12.123Z), a date or minute (2026-12-06, 2026-12-06T02:30), a time ago (10m, 2h, 3d), or a TID (0x…)');
  }
  const after = list.filter((v) => v.time >= span.start).sort((a, b) => a.time - b.time);
  if (after.length === 0) {
    throw IntersyncError.NO_SUCH_VERSION(path, `replaced or removed at or after ${new Date(span.start).toISOString()}: what is there now is what it held then`);
  }
  const within = after.filter((v) => v.time < span.end);
  if (within.length > 1) throw IntersyncError.VERSION_AMBIGUOUS(path, at, within.map((v) => `${new Date(v.time).toISOString()} (${v.tid ?? 'no TID'})`));
  return after[0]!;
}

/** Make the directories of `rel` that are missing, refusing a symlink or a file on the way (as the apply path's confine). */
function parentsOf(root: string, rel: string): void {
  const parts = rel.split('/').slice(0, -1);
  let cur = root;
  for (const [i, name] of parts.entries()) {
    cur = join(cur, name);
    const st = lstatOrNull(cur);
    if (st === null) mkdirSync(cur);
    else if (st.type === 'symlink') throw IntersyncError.BAD_PATH(rel, `${parts.slice(0, i + 1).join('/')} is a symlink; refusing to write through it`);
    else if (st.type !== 'dir') throw IntersyncError.BAD_PATH(rel, `${parts.slice(0, i + 1).join('/')} is not a directory`);
  }
}

export function cmdRestore(dir: string, path: string, o: { fileset?: string; at: string; to?: string; json: boolean }, print: Print): void {
  const paths = findFileset(dir, o.fileset);
  const rel = relPathOf(paths.dir, path);
  const list = listVersions(paths.meta, rel).filter((v) => v.path === rel);
  if (list.length === 0) throw IntersyncError.NO_SUCH_VERSION(rel, 'is kept');
  const v = pickVersion(list, rel, o.at, Date.now());
  const to = o.to === undefined ? rel : relPathOf(paths.dir, o.to);
  parentsOf(paths.dir, to);
  const abs = join(paths.dir, to);
  const there = lstatOrNull(abs);
  if (there !== null && there.type !== 'file') throw IntersyncError.BAD_PATH(to, `a ${there.type} is there; restore --to another name`);
  // Written into the file (not renamed over it): capture journals a write, or a create, as for any local change.
  try {
    copyFileSync(v.file, abs);
  } catch (e) {
    throw IntersyncError.IO('restore', abs, e);
  }
  const size = lstatSync(abs).size;
  const running = readPidFile(paths.pidFile) !== undefined;
  if (o.json) {
    print(JSON.stringify({ path: to, from: versionJson(v), size, daemonRunning: running }));
    return;
  }
  print(`restored ${to} (${fmtBytes(size)}) from the version of ${v.path} ${v.how} at ${new Date(v.time).toISOString()}${v.tid === null ? '' : ` by ${v.tid}`}`);
  print(running ? '  the daemon journals it as a local change and it replicates' : '  the daemon is not running: it journals the change at its next start');
}

export function addVersionCommands(program: Command, print: Print): void {
  program
    .command('versions')
    .description('list the versions kept of what peers replaced or removed on this node (with --versioning trash or simple): time, TID of the peer\'s record, how, size, hash')
    .argument('<DIR>', 'the backing directory')
    .argument('[PATH]', 'a file, relative to DIR (default: every file with versions)')
    .option('--fileset <NAME>', FILESET_HELP)
    .option('--json', 'one JSON object per line', false)
    .addHelpText('after', '\nExamples:\n  intersync versions /imports/site index.html          versions of one file, newest first\n  intersync versions --json /imports/site | jq .path   every version kept, as JSON lines')
    .action((dir: string, path: string | undefined, o: { fileset?: string; json: boolean }) => cmdVersions(dir, path, o, print));

  program
    .command('restore')
    .description('write a kept version back into the tree as a local change (it replicates): the one a TID replaced, or the content the file held at a time')
    .argument('<DIR>', 'the backing directory')
    .argument('<PATH>', 'the file, relative to DIR')
    .requiredOption('--at <TIME|TID>', 'a time as versions prints it, a date or minute (ambiguous if several versions fall in it), a time ago (10m, 2h, 3d), or the TID that replaced it')
    .option('--to <OTHERPATH>', 'write it to this name instead (relative to DIR)')
    .option('--fileset <NAME>', FILESET_HELP)
    .option('--json', 'print as JSON', false)
    .addHelpText('after', [
      '', 'Examples:',
      '  intersync restore /imports/site index.html --at 10m                 as it was 10 minutes ago',
      '  intersync restore /imports/site index.html --at 0x000000000000002a  what the record 0x2a replaced',
      '  intersync restore /imports/site index.html --at 2026-12-06T02:30:12.123Z --to index.old.html',
    ].join('\n'))
    .action((dir: string, path: string, o: { fileset?: string; at: string; to?: string; json: boolean }) => cmdRestore(dir, path, o, print));
}
