#!/usr/bin/env node
// Build a scan tree fast with sync fs calls:
//
//   node bench/mktree.mjs DIR [--dirs D] [--files F]
//
// D directories d0000.. each holding F small files (30-200 bytes).
// Prints one JSON line: {dirs, files, ms}.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import process from 'node:process';

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  if (i < 0) return dflt;
  const v = Number(process.argv[i + 1]);
  if (!Number.isSafeInteger(v) || v < 0) throw new Error(`${name} takes a whole number`);
  return v;
}

const root = process.argv[2];
if (root === undefined || root.startsWith('--')) {
  process.stderr.write('usage: node bench/mktree.mjs DIR [--dirs D] [--files F]\n');
  process.exit(2);
}
const nDirs = arg('--dirs', 1000);
const nFiles = arg('--files', 100);
mkdirSync(root, { recursive: true });
const filler = 'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(6);
const t0 = performance.now();
for (let d = 0; d < nDirs; d++) {
  const dir = join(root, `d${String(d).padStart(4, '0')}`);
  mkdirSync(dir);
  for (let f = 0; f < nFiles; f++) {
    const head = `file ${d}/${f}\n`;
    writeFileSync(join(dir, `f${String(f).padStart(3, '0')}.txt`), head + filler.slice(0, 30 + ((d * 131 + f * 17) % 170)));
  }
}
process.stdout.write(`${JSON.stringify({ dirs: nDirs, files: nDirs * nFiles, ms: performance.now() - t0 })}\n`);
