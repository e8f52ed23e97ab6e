// Invariant: only relative, normalised paths inside the fileset and outside .intermezzo are accepted.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkRelPath, depthOf, isUnder, joinRel, parentOf } from '#core/paths.js';
import { IntersyncError } from '#core/errors.js';
import { formatTid, parseTid } from '#core/ids.js';

test('checkRelPath refuses every escaping or malformed path', () => {
  const bad = ['', '/etc/passwd', '../x', 'a/../../x', 'a/./b', 'a//b', 'a/', 'a\0b', '.intermezzo/default/fileset.db', '.intermezzo', '..', '.'];
  for (const p of bad) {
    assert.throws(() => checkRelPath(p), (e: unknown) => e instanceof IntersyncError && e.code === 'BAD_PATH', `accepted ${JSON.stringify(p)}`);
  }
});

test('checkRelPath accepts ordinary relative paths', () => {
  for (const p of ['a', 'a/b/c.txt', '.hidden', 'x/.intermezzo', 'dir with space/f', '..a', 'a..']) {
    assert.equal(checkRelPath(p), p);
  }
});

test('path helpers', () => {
  assert.equal(joinRel('', 'a'), 'a');
  assert.equal(joinRel('a/b', 'c'), 'a/b/c');
  assert.equal(parentOf('a/b/c'), 'a/b');
  assert.equal(parentOf('a'), '');
  assert.equal(depthOf('a/b/c'), 2);
  assert.ok(isUnder('a/b', 'a'));
  assert.ok(isUnder('a', 'a'));
  assert.ok(!isUnder('ab', 'a'));
});

test('TIDs print as 0x%016x and parse back', () => {
  assert.equal(formatTid(255n), '0x00000000000000ff');
  assert.equal(parseTid('0x00000000000000ff'), 255n);
  assert.equal(parseTid('16'), 16n);
  for (const bad of ['abc', '-1', '0x', '0x10000000000000000', '1.5']) assert.equal(parseTid(bad), undefined, bad);
});
