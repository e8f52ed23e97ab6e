// Invariant: the log says why a peer's mode is applied otherwise here: set-id bits the policy drops (a warning), or
// for a hard link the mode of the inode it joins (information). Before, both were "set-id bits from a peer
// dropped", for modes with none (chaos s45 seed 9282: "mode 664, applied 600" on a link). Fails without
// policy/attr-policy.ts modeChange (it does not exist).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { modeChange } from '#policy/attr-policy.js';

test('modeChange names each way a peer\'s mode is applied otherwise', () => {
  const rows: Array<[string, number, number, string | null, boolean | null]> = [
    ['create', 0o644, 0o644, null, null],
    ['create', 0o4755, 0o755, 'set-id bits from a peer dropped', true],
    ['setattr', 0o2775, 0o775, 'set-id bits from a peer dropped', true],
    ['link', 0o664, 0o600, 'a hard link from a peer takes the mode of the inode it joins here', false],
    ['link', 0o4755, 0o755, 'set-id bits from a peer dropped', true],
    ['create', 0o664, 0o600, 'a peer\'s mode applied otherwise here', true],
  ];
  for (const [kind, sent, applied, message, warn] of rows) {
    const got = modeChange(kind, sent, applied);
    assert.equal(got?.message ?? null, message, `${kind} ${sent.toString(8)} -> ${applied.toString(8)}`);
    assert.equal(got?.warn ?? null, warn, `${kind} ${sent.toString(8)} -> ${applied.toString(8)}: level`);
  }
});
