// Invariant: `intersync kml DIR --json` prints every record of the journal as one JSON object per line,
// on a client too, where the records came from the server: it never crashes on a field of a record
// received from another node. (Issue 11, fault 6.)
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cli, journalState } from './helpers.js';
import { Farm, assertSettled, journaled } from './farm.js';

test('kml --json prints the records a node received from another node as JSON lines, on a client and on the server', { timeout: 60_000 }, async (t) => {
  // Fails without the fix: the command exits 1 with {"error":{"code":"INTERNAL","message":"Do not know
  // how to serialize a BigInt"}} at the first record that came from another node (its originSeq is a
  // bigint when printed); on the server too, at the client's record.
  const farm = await Farm.start(t, { clients: 1 });
  const [c] = farm.clients as [string];
  writeFileSync(join(farm.server, 'from-server.txt'), 'made on the server\n');
  await journaled(farm.server, 0n);
  writeFileSync(join(c, 'from-client.txt'), 'made on the client\n');
  await assertSettled(farm.all);
  const want = Number(journalState(c).records);
  for (const d of [c, farm.server]) {
    const r = cli(['kml', d, '--json']);
    assert.equal(r.code, 0, `${d}: kml --json exits 0 (stderr: ${r.stderr.trim()})`);
    const lines = r.stdout.split('\n').filter((l) => l !== '');
    const recs = lines.map((l) => JSON.parse(l) as { tid: string; kind: string; path: string; origin: string });
    assert.equal(recs.length, want, `${d}: one line per record`);
    assert.deepEqual(recs.map((x) => `${x.kind} ${x.path}`).sort(), ['create from-client.txt', 'create from-server.txt'], `${d}: both records`);
    for (const x of recs) assert.match(x.tid, /^0x[0-9a-f]{16}$/, `${d}: TIDs printed as 0x%016x`);
    assert.equal(new Set(recs.map((x) => x.origin)).size, 2, `${d}: records of two origins`);
  }
});
