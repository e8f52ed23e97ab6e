// Invariant: a change of ours coming back on the server's stream never moves its object back to the name the
// record had, when a later change of ours the server has already accepted moved it (or a directory above it)
// on. Before, the write of epsilon/h came back after the server had accepted our rename of epsilon to
// delta/sub (its answer is in the journal before the stream brings it): the client moved h back into a new
// epsilon, the server's removal of that directory then kept it beside as h.conflict-*, and the client's state
// differed from the server's with nothing pending (a resync; chaos seed 9203).
//
// Fails without the fix (settleOwnName (daemon/client-own.ts) skips an object with a directory above it that a later
// record moved): "own change back from the server: moved back to its name", then "state differs" and a
// resync in the client's log.
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { journalState } from './helpers.js';
import { Farm, assertSettled, disconnect, eventually, readOrNull, reconnect } from './farm.js';

test('a write of ours coming back after our rename of its directory was accepted leaves the file in the renamed directory', { timeout: 120_000 }, async (t) => {
  const farm = await Farm.start(t, {
    clients: 1,
    prepare: (s) => {
      mkdirSync(join(s, 'epsilon'));
      writeFileSync(join(s, 'epsilon/h'), 'first\n');
    },
  });
  const c = farm.clients[0]!;
  await assertSettled(farm.all);
  for (let i = 0; i < 3; i++) {
    const from = i === 0 ? 'epsilon' : `sub${i - 1}`;
    await disconnect(farm, c);
    writeFileSync(join(c, `${from}/h`), `written ${i}\n`);
    await eventually(`${c}: trial ${i}: journals the write`, () => journalState(c).lml, (n) => n > 0);
    renameSync(join(c, from), join(c, `sub${i}`));
    mkdirSync(join(c, from)); // a directory at the old name again
    await eventually(`${c} journals the rename and the new directory`, () => journalState(c).lml, (n) => n >= 3);
    reconnect(c);
    await assertSettled(farm.all);
    for (const d of farm.all) {
      assert.equal(readOrNull(join(d, `sub${i}/h`)), `written ${i}\n`, `${d}: trial ${i}: h is in the renamed directory`);
      assert.equal(readOrNull(join(d, `${from}/h`)), null, `${d}: trial ${i}: not in the new directory at the old name`);
    }
  }
  assert.deepEqual(farm.logMessages(c, /does not apply|resync|differs|moved back to its name/i), [], 'no move back, no refusal, no resync');
});
