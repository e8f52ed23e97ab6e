#!/usr/bin/env node
// The capture-overhead workload, run as its own plain-node process so the
// timing has no tsx or bench overhead in it:
//
//   node bench/workload.mjs DIR [--files N] [--dirs D] [--seed S]
//
// Creates N small files (100-2000 bytes) spread over D subdirectories of DIR,
// then modifies N/4 of them, renames N/10 (half within their directory, half
// into another one) and deletes N/10. Everything is deterministic for a seed.
// Prints one JSON line: phase times (ms) and the wall-clock start and end
// (performance.timeOrigin + performance.now(), comparable across processes).
import { mkdirSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import process from 'node:process';

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  if (i < 0) return dflt;
  const v = Number(process.argv[i + 1]);
  if (!Number.isSafeInteger(v) || v < 0) throw new Error(`${name} takes a whole number`);
  return v;
}

const dir = process.argv[2];
if (dir === undefined || dir.startsWith('--')) {
  process.stderr.write('usage: node bench/workload.mjs DIR [--files N] [--dirs D] [--seed S]\n');
  process.exit(2);
}
const nFiles = arg('--files', 20_000);
const nDirs = Math.max(1, arg('--dirs', 100));
const seed = arg('--seed', 1);

// mulberry32: small, fast, deterministic.
let s = seed >>> 0;
function rand() {
  s = (s + 0x6d2b79f5) >>> 0;
  let t = s;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const randInt = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1)); // inclusive

// Content: a slice of a random pool, with the op and file number in front so every write differs.
const pool = Buffer.alloc(1 << 16);
for (let i = 0; i < pool.length; i++) pool[i] = 32 + Math.floor(rand() * 95);
function content(tag, i) {
  const size = randInt(100, 2000);
  const head = Buffer.from(`${tag} ${i} ${seed}\n`);
  const off = randInt(0, pool.length - size);
  return Buffer.concat([head, pool.subarray(off, off + size - head.length)]);
}

const now = () => performance.timeOrigin + performance.now();
const dirName = (d) => `d${String(d).padStart(3, '0')}`;
const paths = new Array(nFiles);
const t = { start: now() };

// 1. create
for (let d = 0; d < nDirs; d++) mkdirSync(join(dir, dirName(d)));
for (let i = 0; i < nFiles; i++) {
  const p = join(dir, dirName(i % nDirs), `f${String(i).padStart(6, '0')}.dat`);
  writeFileSync(p, content('create', i));
  paths[i] = p;
}
t.created = now();

// Random permutation of file numbers; the op sets overlap a little on purpose
// (some modified files are renamed afterwards, some renamed ones deleted).
const order = Array.from({ length: nFiles }, (_, i) => i);
for (let i = nFiles - 1; i > 0; i--) {
  const j = Math.floor(rand() * (i + 1));
  [order[i], order[j]] = [order[j], order[i]];
}
const nModify = Math.floor(nFiles / 4);
const nRename = Math.floor(nFiles / 10);
const nDelete = Math.floor(nFiles / 10);
const renameFrom = Math.floor(nModify * 0.8); // the last 20% of modified files are renamed too
const deleteFrom = renameFrom + nRename - Math.floor(nRename * 0.1); // and 10% of renamed ones deleted

// 2. modify (rewrite in place, new size and content)
for (let k = 0; k < nModify; k++) {
  const i = order[k];
  writeFileSync(paths[i], content('modify', i));
}
t.modified = now();

// 3. rename: even ones within their directory, odd ones into another directory
for (let k = 0; k < nRename; k++) {
  const i = order[renameFrom + k];
  const to = k % 2 === 0
    ? join(dir, dirName(i % nDirs), `r${String(i).padStart(6, '0')}.dat`)
    : join(dir, dirName((i + 1 + (k % (nDirs - 1 || 1))) % nDirs), `m${String(i).padStart(6, '0')}.dat`);
  renameSync(paths[i], to);
  paths[i] = to;
}
t.renamed = now();

// 4. delete
for (let k = 0; k < nDelete; k++) unlinkSync(paths[order[deleteFrom + k]]);
t.end = now();

process.stdout.write(`${JSON.stringify({
  files: nFiles, dirs: nDirs, modified: nModify, renamed: nRename, deleted: nDelete,
  startEpochMs: t.start, endEpochMs: t.end,
  createMs: t.created - t.start, modifyMs: t.modified - t.created, renameMs: t.renamed - t.modified,
  deleteMs: t.end - t.renamed, totalMs: t.end - t.start,
})}\n`);
