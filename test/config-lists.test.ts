// Invariant: the config keys that hold a list (`ignore`) or a table (`subtree-settle-ms`) are read from the
// file, validated (refused with key, value and reason), shown by `intersync config` with their source, set by
// `intersync config DIR KEY=VALUE`, and reach the daemon (`ignore` live, on SIGHUP); settle-ms shows its default
// in --help and config.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cli, journalState, spawnDaemon, stopChild, tmpDir } from './helpers.js';
import { eventually } from './farm.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { findFileset } from '#journal/layout.js';

interface Shown { key: string; value: unknown; source: string }

function shown(dir: string, extra: string[] = []): Map<string, Shown> {
  const r = cli(['config', dir, '--json', ...extra]);
  assert.equal(r.code, 0, r.stderr);
  return new Map((JSON.parse(r.stdout) as { keys: Shown[] }).keys.map((k) => [k.key, k]));
}

test('bad lists and tables are refused with key, value and reason', (t) => {
  const d = tmpDir();
  t.after(d.cleanup);
  const dir = join(d.path, 'tree');
  const cases: Array<[string, RegExp]> = [
    ['ignore = "*.tmp"', /ignore = "\*\.tmp": takes a list of strings/],
    ['ignore = [1, 2]', /ignore = \[1,2\]: takes a list of strings/],
    ['subtree-settle-ms = 500', /subtree-settle-ms = 500: takes a table of paths to whole numbers/],
    ['subtree-settle-ms = { "www" = -1 }', /takes a table of paths to whole numbers/],
    ['subtree-settle-ms = { "../up" = 5 }', /"\.\.\/up" is not a path inside the fileset/],
    ['subtree-settle-ms = { "/" = 5 }', /"\/" is not a path inside the fileset/],
  ];
  for (const [line, want] of cases) {
    const file = join(d.path, 'bad.toml');
    writeFileSync(file, `settle-ms = 20\n${line}\n`);
    const r = cli(['--config', file, '--log-dir', join(d.path, 'logs'), dir]);
    assert.equal(r.code, 1, `${line}: ${r.stderr}`);
    assert.match(r.stderr, /\[BAD_CONFIG\]/, line);
    assert.match(r.stderr, want, line);
  }
});

test('ignore and subtree-settle-ms from the file reach the daemon; config shows and sets them; settle-ms shows its default', { timeout: 120_000 }, async (t) => {
  const d = tmpDir();
  const logs = tmpDir('intersync-logs-');
  t.after(() => {
    d.cleanup();
    logs.cleanup();
  });
  const help = cli(['--help']);
  assert.match(help.stdout.replace(/\s+/g, ' '), /--settle-ms <N>.*\(default 20\); per subtree: subtree-settle-ms/, '--help shows the default of --settle-ms');

  const file = join(logs.path, 'site.toml');
  writeFileSync(file, 'ignore = ["*.swp", "*~"]\n# the web root waits for writers that write in pieces\nsubtree-settle-ms = { "www" = 500, "www/live" = 0 }\n');
  const child = await spawnDaemon(d.path, logs.path, ['--config', file, '--listen', 'none']);
  t.after(() => stopChild(child));
  const keys = shown(d.path);
  assert.deepEqual(keys.get('ignore'), { ...keys.get('ignore'), value: ['*.swp', '*~'], source: 'file' });
  assert.deepEqual(keys.get('subtree-settle-ms'), { ...keys.get('subtree-settle-ms'), value: { www: 500, 'www/live': 0 }, source: 'file' });
  assert.deepEqual(keys.get('settle-ms'), { ...keys.get('settle-ms'), value: 20, source: 'default' });
  const text = cli(['config', d.path]).stdout;
  assert.match(text, /^settle-ms\s+= 20\s+\[default\]$/m, 'the text output shows the default');

  // The daemon ignores what the file says.
  writeFileSync(join(d.path, 'page.html~'), 'backup');
  writeFileSync(join(d.path, 'page.html'), 'page');
  await eventually('page.html journaled', () => journalState(d.path).records, (n) => n >= 1, 20_000);
  assert.ok(journaledHere(d.path, 'page.html'));
  assert.equal(journaledHere(d.path, 'page.html~'), false, 'an ignored name is not journaled');

  // Set from the command line: comma-separated patterns, PATH=MS pairs; written to the file as TOML lists and tables.
  const set = cli(['config', d.path, '--config', file, 'ignore=*.tmp,*.swp', 'subtree-settle-ms=www=800,orders=0']);
  assert.equal(set.code, 0, set.stderr);
  const written = readFileSync(file, 'utf8');
  assert.match(written, /^ignore = \["\*\.tmp", "\*\.swp"\]$/m);
  assert.match(written, /^subtree-settle-ms = \{ "www" = 800, "orders" = 0 \}$/m);
  const again = shown(d.path, ['--config', file]);
  assert.deepEqual(again.get('ignore')?.value, ['*.tmp', '*.swp']);
  assert.deepEqual(again.get('subtree-settle-ms')?.value, { www: 800, orders: 0 });
  // ignore is live: the SIGHUP that `intersync config` sends makes the daemon rescan under the new patterns.
  await eventually('page.html~ journaled once the config no longer ignores *~', () => journaledHere(d.path, 'page.html~'), (v) => v, 20_000);
});

function journaledHere(dir: string, p: string): boolean {
  const db = FilesetDb.open(findFileset(dir).db, { readonly: true, check: false });
  try {
    return db.objectByPath(p) !== undefined;
  } finally {
    db.close();
  }
}
