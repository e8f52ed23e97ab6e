// Invariant: conflict decisions are pure and deterministic: the same facts give the same decision in any
// order, newest-wins breaks ties by node id symmetrically, and an unusable hook answer keeps both.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { conflictKind, decide, parsePolicy, type ConflictFacts, type LocalSide, type PolicyConfig } from '#policy/conflict-policy.js';
import { conflictName } from '#core/conflict-name.js';

const facts = (over: Partial<ConflictFacts> = {}): ConflictFacts => ({
  kind: 'write/write', path: 'a.txt', localNode: 'aaaaaaaaaaaaaaaa', remoteNode: 'bbbbbbbbbbbbbbbb', localMtimeMs: 1000, remoteMtimeMs: 2000, ...over,
});
const P = (text: string): PolicyConfig => parsePolicy(text)!;

test('conflict kind table: what each pair of changes is called (write/rename merges, as write/setattr does)', () => {
  const none: LocalSide = { removedHere: false, contentHere: false, renamedHere: false, modeHere: false };
  const rows: Array<[Partial<LocalSide>, string, string]> = [
    [{ contentHere: true }, 'write', 'write/write'],
    [{ contentHere: true }, 'truncate', 'write/write'],
    [{ contentHere: true }, 'unlink', 'write/unlink'],
    [{ contentHere: true }, 'setattr', 'write/setattr'],
    [{ contentHere: true }, 'rename', 'write/rename'],
    [{ contentHere: true, renamedHere: true }, 'rename', 'rename/rename'],
    [{ removedHere: true }, 'write', 'unlink/write'],
    [{ removedHere: true }, 'rename', 'unlink/write'],
    [{ removedHere: true }, 'unlink', 'other'],
    [{ modeHere: true }, 'write', 'setattr/write'],
    [{ modeHere: true }, 'rename', 'other'],
    [{ renamedHere: true }, 'write', 'other'],
  ];
  for (const [over, remote, want] of rows) assert.equal(conflictKind({ ...none, ...over }, remote), want, `${JSON.stringify(over)} vs ${remote}`);
});

test('decision table', () => {
  const rows: Array<[string, Partial<ConflictFacts>, string | undefined, string]> = [
    ['keep-both', {}, undefined, 'keep-both'],
    ['server-wins', {}, undefined, 'remote'],
    ['client-wins', {}, undefined, 'local'],
    ['newest-wins', { localMtimeMs: 3000 }, undefined, 'local'],
    ['newest-wins', { localMtimeMs: 1000 }, undefined, 'remote'],
    ['newest-wins', { localMtimeMs: 2000, localNode: 'cccccccccccccccc' }, undefined, 'local'],
    ['newest-wins', { localMtimeMs: 2000, localNode: '0000000000000001' }, undefined, 'remote'],
    ['hook', {}, 'local', 'local'],
    ['hook', {}, 'remote', 'remote'],
    ['hook', {}, 'both', 'keep-both'],
    ['hook', {}, 'garbage', 'keep-both'],
    ['hook', {}, undefined, 'keep-both'],
  ];
  for (const [policy, over, hook, want] of rows) assert.equal(decide(P(policy), facts(over), hook), want, `${policy} ${JSON.stringify(over)} ${hook}`);
});

test('newest-wins is antisymmetric: swapping the sides swaps the winner', () => {
  fc.assert(
    fc.property(fc.integer(), fc.integer(), fc.constantFrom('1111111111111111', '2222222222222222'), (a, b, n) => {
      const other = n === '1111111111111111' ? '2222222222222222' : '1111111111111111';
      const d1 = decide(P('newest-wins'), facts({ localMtimeMs: a, remoteMtimeMs: b, localNode: n, remoteNode: other }));
      const d2 = decide(P('newest-wins'), facts({ localMtimeMs: b, remoteMtimeMs: a, localNode: other, remoteNode: n }));
      assert.notEqual(d1, d2);
    }),
    { seed: 11 },
  );
});

test('policy names parse, with :discard only where it means something', () => {
  assert.deepEqual(parsePolicy('server-wins:discard'), { name: 'server-wins', discard: true });
  for (const bad of ['keep-both:discard', 'hook:discard', 'latest', '', 'server-wins:keep']) assert.equal(parsePolicy(bad), undefined, bad);
});

test('conflict copies keep the extension last and never take a used name', () => {
  const taken = new Set(['docs/report.conflict-aaaaaaaaaaaaaaaa-1f.pdf']);
  assert.equal(conflictName('docs/report.pdf', 'aaaaaaaaaaaaaaaa', 0x1fn as never, (p) => taken.has(p)), 'docs/report.conflict-aaaaaaaaaaaaaaaa-1f-1.pdf');
  assert.equal(conflictName('Makefile', 'aaaaaaaaaaaaaaaa', 0x20n as never, () => false), 'Makefile.conflict-aaaaaaaaaaaaaaaa-20');
  assert.equal(conflictName('.bashrc', 'aaaaaaaaaaaaaaaa', 0x20n as never, () => false), '.bashrc.conflict-aaaaaaaaaaaaaaaa-20');
  // A copy of a copy keeps one tag (seed 5001 of the widened chaos run: a directory's name grew with each
  // resync until lstat failed with ENAMETOOLONG). Fails without the fix: the tags pile up.
  let name = 'beta';
  for (let i = 1; i <= 40; i++) name = conflictName(name, 'aaaaaaaaaaaaaaaa', BigInt(i) as never, () => false);
  assert.equal(name, 'beta.conflict-aaaaaaaaaaaaaaaa-28');
  assert.equal(conflictName('d/g.conflict-bbbbbbbbbbbbbbbb-4c.txt', 'aaaaaaaaaaaaaaaa', 0x5n as never, () => false), 'd/g.conflict-aaaaaaaaaaaaaaaa-5.txt');
});
