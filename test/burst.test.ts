// Invariant: a burst of new files in new directories (a deploy) reaches the other nodes whole, whichever node it
// is written on, while a client also has its own changes going up (the one-record road and the runs of new names
// meet in one stream): every node's journal equals its disk and the others', nothing conflicts, nothing is
// journaled twice, and each file is journaled once, by its origin.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { NO_VERSION } from '#core/ids.js';
import { FilesetDb } from '#journal/fileset-db.js';
import { findFileset } from '#journal/layout.js';
import { Farm, assertSettled, conflictCopies, treeFiles } from './farm.js';

function burst(root: string, name: string, dirs: number, files: number): void {
  mkdirSync(join(root, name));
  for (let d = 0; d < dirs; d++) {
    mkdirSync(join(root, name, `d${d}`));
    for (let i = 0; i < files; i++) writeFileSync(join(root, name, `d${d}`, `f${i}.html`), `${name} ${d} ${i}\n${'x'.repeat(300)}\n`);
  }
}

test('bursts of new files both ways, with a client\'s own changes meanwhile: all nodes agree, nothing conflicts', { timeout: 180_000 }, async (t) => {
  const farm = await Farm.start(t, { clients: 2 });
  const [c1, c2] = farm.clients as [string, string];
  await assertSettled(farm.all);
  burst(farm.server, 'down', 4, 100);
  // c2 changes things of its own while the server's burst comes down: its records go up meanwhile.
  for (let i = 0; i < 20; i++) writeFileSync(join(c2, `own-${i}.txt`), `c2 ${i}\n`);
  burst(c1, 'up', 4, 300); // more than one batch (500 records): the client sends the next while the server applies the last
  await assertSettled(farm.all, 90_000);
  const want = treeFiles(farm.server);
  assert.equal([...want.keys()].filter((p) => p.startsWith('down/') || p.startsWith('up/')).length, 1600);
  for (const c of [c1, c2]) assert.deepEqual(treeFiles(c), want, `${c} holds what the server holds`);
  for (const n of farm.all) assert.deepEqual(conflictCopies(n), [], 'no conflict copy anywhere');
  const db = FilesetDb.open(findFileset(farm.server).db, { readonly: true, check: false });
  try {
    const server = db.meta.nodeId;
    const creates = db.readKml(NO_VERSION, 1_000_000).filter((r) => r.kind === 'create' && (r.path.startsWith('down/') || r.path.startsWith('up/')));
    assert.equal(new Set(creates.map((r) => r.path)).size, creates.length, 'each file journaled once');
    assert.equal(creates.length, 1600);
    assert.ok(creates.every((r) => (r.path.startsWith('down/') ? r.origin === server : r.origin !== server && r.originSeq !== null)), 'each by its origin');
  } finally {
    db.close();
  }
});
