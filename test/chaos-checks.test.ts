// Invariant: the chaos harness's end checks can fail. The tree comparison reports every difference in names,
// types, modes, contents, symlink targets and hard-link groups between two hand-made trees (and none between
// equal ones, the metadata folder left out), and the "removed content came back" rule speaks only when no
// operation explains the end state (table of event histories).
import assert from 'node:assert/strict';
import { chmodSync, linkSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { compareTrees, historyAcrossMoves, linkGroupsOf, treeOf, undoneDeparture, type PathEvent } from './chaos/harness.js';
import { tmpDir } from './helpers.js';

/** The same small tree in a fresh folder: alpha/{a.txt, b.txt = hard link of a.txt, l -> a.txt}, beta/c. */
function build(): { path: string; cleanup: () => void } {
  const d = tmpDir('intersync-chaos-checks-');
  mkdirSync(join(d.path, 'alpha'));
  mkdirSync(join(d.path, 'beta/sub'), { recursive: true });
  mkdirSync(join(d.path, '.intermezzo/default'), { recursive: true });
  writeFileSync(join(d.path, '.intermezzo/default/x'), String(Math.random()));
  writeFileSync(join(d.path, 'alpha/a.txt'), 'a\n');
  chmodSync(join(d.path, 'alpha/a.txt'), 0o644);
  linkSync(join(d.path, 'alpha/a.txt'), join(d.path, 'alpha/b.txt'));
  symlinkSync('a.txt', join(d.path, 'alpha/l'));
  writeFileSync(join(d.path, 'beta/c'), 'c\n');
  chmodSync(join(d.path, 'beta/c'), 0o600);
  return d;
}

test('chaos checks: equal trees compare equal; the metadata folder is left out', (t) => {
  const a = build();
  const b = build();
  t.after(() => { a.cleanup(); b.cleanup(); });
  assert.deepEqual(compareTrees(treeOf(a.path), treeOf(b.path), 'A', 'B'), []);
  assert.equal(treeOf(a.path).has('.intermezzo'), false);
  assert.deepEqual(linkGroupsOf(treeOf(a.path)).get('alpha/b.txt'), ['alpha/a.txt', 'alpha/b.txt']);
});

test('chaos checks: each kind of difference is reported at its path', (t) => {
  const cases: { what: string; change: (dir: string) => void; want: RegExp[] }[] = [
    { what: 'a missing file', change: (d) => writeFileSync(join(d, 'beta/extra'), 'x'), want: [/^beta\/extra: A has nothing, B has file/] },
    { what: 'content', change: (d) => writeFileSync(join(d, 'beta/c'), 'other\n'), want: [/^beta\/c: content differ/] },
    { what: 'mode', change: (d) => chmodSync(join(d, 'beta/c'), 0o644), want: [/^beta\/c: mode differ: A has file 600 .*, B has file 644/] },
    { what: 'symlink target', change: (d) => { rmSync(join(d, 'alpha/l')); symlinkSync('b.txt', join(d, 'alpha/l')); }, want: [/^alpha\/l: symlink target differ: A has symlink -> a.txt, B has symlink -> b.txt$/] },
    { what: 'type', change: (d) => { rmSync(join(d, 'alpha/l')); writeFileSync(join(d, 'alpha/l'), 'a.txt'); }, want: [/^alpha\/l: A has symlink -> a.txt, B has file/] },
    { what: 'a directory mode', change: (d) => chmodSync(join(d, 'beta/sub'), 0o700), want: [/^beta\/sub: mode differ/] },
  ];
  for (const c of cases) {
    const a = build();
    const b = build();
    t.after(() => { a.cleanup(); b.cleanup(); });
    c.change(b.path);
    const diffs = compareTrees(treeOf(a.path), treeOf(b.path), 'A', 'B');
    for (const w of c.want) assert.ok(diffs.some((l) => w.test(l)), `${c.what}: want ${w} in ${JSON.stringify(diffs)}`);
  }
});

test('chaos checks: hard-link groups are compared, same names and contents notwithstanding', (t) => {
  const a = build();
  const b = build();
  t.after(() => { a.cleanup(); b.cleanup(); });
  // B: b.txt is a copy of a.txt, no longer a second name of it (same content, same mode).
  rmSync(join(b.path, 'alpha/b.txt'));
  writeFileSync(join(b.path, 'alpha/b.txt'), 'a\n');
  chmodSync(join(b.path, 'alpha/b.txt'), 0o644);
  const diffs = compareTrees(treeOf(a.path), treeOf(b.path), 'A', 'B');
  assert.deepEqual(diffs, [
    'alpha/a.txt: hard-link group differs: A {alpha/a.txt alpha/b.txt}, B {alpha/a.txt}',
    'alpha/b.txt: hard-link group differs: A {alpha/a.txt alpha/b.txt}, B {alpha/b.txt}',
  ]);
  // A third name on one side only.
  const c = build();
  t.after(() => c.cleanup());
  const d = build();
  t.after(() => d.cleanup());
  linkSync(join(d.path, 'alpha/a.txt'), join(d.path, 'beta/sub/a3'));
  writeFileSync(join(c.path, 'beta/sub/a3'), 'a\n');
  chmodSync(join(c.path, 'beta/sub/a3'), 0o644);
  const d2 = compareTrees(treeOf(c.path), treeOf(d.path), 'C', 'D');
  assert.equal(d2.length, 3, JSON.stringify(d2));
  assert.ok(d2.every((l) => l.includes('hard-link group differs')), JSON.stringify(d2));
});

const ev = (k: number, node: string, type: PathEvent['type']): PathEvent => ({ k, node, type });

test('chaos checks: a removed content back at its name is reported only when nothing explains it', () => {
  const table: { what: string; evs: PathEvent[]; want: number | null }[] = [
    { what: 'never removed', evs: [ev(1, 'c1', 'arrive')], want: null },
    { what: 'written on c1, deleted on c2', evs: [ev(1, 'c1', 'arrive'), ev(5, 'c2', 'depart')], want: 5 },
    { what: 'renamed away, then back', evs: [ev(1, 'c1', 'arrive'), ev(5, 'c2', 'depart'), ev(9, 'c1', 'arrive')], want: null },
    { what: 'deleted on c2 while c3 changed its mode (update beats delete)', evs: [ev(1, 'c1', 'arrive'), ev(4, 'c3', 'touch'), ev(5, 'c2', 'depart')], want: null },
    { what: 'c3 changed its mode after the delete', evs: [ev(1, 'c1', 'arrive'), ev(5, 'c2', 'depart'), ev(6, 'c3', 'touch')], want: null },
    { what: 'the deleting node changed its mode before', evs: [ev(1, 'c1', 'arrive'), ev(4, 'c2', 'touch'), ev(5, 'c2', 'depart')], want: 5 },
    { what: 'c3 changed it, then renamed it away; c2 deleted it', evs: [ev(1, 'c1', 'arrive'), ev(3, 'c3', 'touch'), ev(4, 'c3', 'depart'), ev(5, 'c2', 'depart')], want: 5 },
    { what: 'two arrivals in one lifetime (concurrent moves onto the name)', evs: [ev(1, 'c1', 'arrive'), ev(2, 'c3', 'arrive'), ev(5, 'c2', 'depart')], want: null },
    { what: 'a second lifetime ended by a delete', evs: [ev(1, 'c1', 'arrive'), ev(3, 'c1', 'depart'), ev(6, 'c2', 'arrive'), ev(8, 'server', 'depart')], want: 8 },
    { what: 'removed twice, concurrently', evs: [ev(1, 'c1', 'arrive'), ev(5, 'c2', 'depart'), ev(6, 'c3', 'depart')], want: 6 },
    { what: 'never seen arriving', evs: [ev(5, 'c2', 'depart')], want: null },
    { what: 'moved away (it or a directory above it) last: a concurrent move may bring it back', evs: [ev(1, 'c3', 'arrive'), ev(5, 'c3', 'leave')], want: null },
    { what: 'moved away, then deleted at the name by another node', evs: [ev(1, 'c1', 'arrive'), ev(3, 'c1', 'leave'), ev(6, 'c2', 'depart')], want: 6 },
    { what: 'a move ended the lifetime before: the next one counts', evs: [ev(1, 'c1', 'arrive'), ev(3, 'c1', 'leave'), ev(6, 'c2', 'arrive'), ev(8, 'server', 'depart')], want: 8 },
  ];
  for (const row of table) assert.equal(undoneDeparture(row.evs)?.k ?? null, row.want, row.what);
});

test('chaos checks: a change of mode at the name a file had before a move counts as one at its new name', () => {
  // Fails without historyAcrossMoves: chaos s41 seed 9265, c2 chmodded gamma/deep/d.md; c3, which had not seen
  // it, moved gamma/deep to alpha and removed alpha/d.md; the chmod brought it back (update beats delete),
  // reported as a resurrection.
  const events = new Map<string, PathEvent[]>([
    ['gamma/deep/d.md', [ev(181, 'server', 'arrive'), ev(268, 'c2', 'touch'), ev(293, 'c3', 'leave')]],
    ['alpha/d.md', [ev(293, 'c3', 'arrive'), ev(293, 'c3', 'depart')]],
  ]);
  const at = (p: string): readonly PathEvent[] => events.get(p) ?? [];
  const names = [...events.keys()];
  assert.deepEqual(historyAcrossMoves(at, names, 'alpha/d.md').map((e) => `${e.k}${e.type}`), ['181arrive', '268touch', '293depart']);
  assert.equal(undoneDeparture(historyAcrossMoves(at, names, 'alpha/d.md')), null, 'the chmod explains it');
  // Without the chmod, the removal after the move is a resurrection as before.
  events.set('gamma/deep/d.md', [ev(181, 'server', 'arrive'), ev(293, 'c3', 'leave')]);
  assert.equal(undoneDeparture(historyAcrossMoves(at, names, 'alpha/d.md'))?.k, 293, 'nothing explains it');
  // A name the content reached other than by that move keeps its own history.
  assert.deepEqual(historyAcrossMoves(at, names, 'gamma/deep/d.md').map((e) => `${e.k}${e.type}`), ['181arrive', '293leave']);
});

test('chaos checks: a move from a name no operation made counts as an arrival', () => {
  // Fails without historyAcrossMoves keeping the move when nothing is known of the old name (chaos s90 seed 9302):
  // the server removed alpha/sub/f.json (one name of a hard-linked file), then moved a directory a conflict step
  // had named, holding another name of the file, to alpha/sub; reported as a resurrection.
  const events = new Map<string, PathEvent[]>([
    ['alpha/sub/f.json', [ev(744, 'c4', 'arrive'), ev(887, 'server', 'depart'), ev(895, 'server', 'arrive')]],
    ['alpha/deep.conflict-x/f.json', [ev(895, 'server', 'leave')]],
  ]);
  const at = (p: string): readonly PathEvent[] => events.get(p) ?? [];
  const names = [...events.keys()];
  assert.equal(undoneDeparture(historyAcrossMoves(at, names, 'alpha/sub/f.json')), null, 'the move brought it back');
  // Without the move, the removal stands undone by nothing, as before.
  events.set('alpha/sub/f.json', [ev(744, 'c4', 'arrive'), ev(887, 'server', 'depart')]);
  assert.equal(undoneDeparture(historyAcrossMoves(at, names, 'alpha/sub/f.json'))?.k, 887, 'nothing explains it');
});

test('chaos checks: a change of mode at the old name after a move, by a node that had not seen it, counts at the new name', () => {
  // Fails without the concurrent touches in historyAcrossMoves: chaos s46 seed 9221, c2 removed g/a.txt (op123);
  // c1, which had seen neither, moved g to alpha/deep (op217) and alpha/deep/a.txt over delta/f.json (op221); the
  // server chmodded g/a.txt (op219), which brought it back (update beats delete), reported as a resurrection.
  const events = new Map<string, PathEvent[]>([
    ['g/a.txt', [ev(69, 'c3', 'arrive'), ev(123, 'c2', 'depart'), ev(217, 'c1', 'leave'), ev(219, 'server', 'touch')]],
    ['alpha/deep/a.txt', [ev(217, 'c1', 'arrive'), ev(221, 'c1', 'leave')]],
    ['delta/f.json', [ev(221, 'c1', 'arrive')]],
  ]);
  const at = (p: string): readonly PathEvent[] => events.get(p) ?? [];
  const names = [...events.keys()];
  assert.deepEqual(historyAcrossMoves(at, names, 'delta/f.json').map((e) => `${e.k}${e.type}`), ['69arrive', '123depart', '217touch', '219touch', '221touch']);
  assert.equal(undoneDeparture(historyAcrossMoves(at, names, 'delta/f.json')), null, 'the chmod (and c1\'s move, made without seeing the removal) explain it');
  // Moves made before a removal at the final name explain nothing: a comeback there is a resurrection.
  events.set('g/a.txt', [ev(69, 'c3', 'arrive'), ev(217, 'c1', 'leave')]);
  events.set('delta/f.json', [ev(221, 'c1', 'arrive'), ev(250, 'c2', 'depart')]);
  assert.deepEqual(historyAcrossMoves(at, names, 'delta/f.json').map((e) => `${e.k}${e.type}`), ['69arrive', '250depart']);
  assert.equal(undoneDeparture(historyAcrossMoves(at, names, 'delta/f.json'))?.k, 250, 'nothing explains it');
});

test('chaos checks: a move by a node that had not seen another node\'s removal of the file may keep it', () => {
  // Fails without the raced removal in historyAcrossMoves: chaos s46 seed 9224, c3 removed beta/deep/deep/g.txt
  // (op257); the server, which had not seen that, moved it over gamma/e (op280); the server's move brought it back
  // (update beats delete), reported as a resurrection.
  const events = new Map<string, PathEvent[]>([
    ['beta/deep/deep/g.txt', [ev(235, 'c3', 'arrive'), ev(257, 'c3', 'depart'), ev(280, 'server', 'leave')]],
    ['gamma/e', [ev(280, 'server', 'arrive')]],
  ]);
  const at = (p: string): readonly PathEvent[] => events.get(p) ?? [];
  const names = [...events.keys()];
  assert.equal(undoneDeparture(historyAcrossMoves(at, names, 'gamma/e')), null);
  // The same move before the removal, then the removal at the new name: a comeback there is a resurrection.
  events.set('beta/deep/deep/g.txt', [ev(235, 'c3', 'arrive'), ev(280, 'server', 'leave')]);
  events.set('gamma/e', [ev(280, 'server', 'arrive'), ev(290, 'c3', 'depart')]);
  assert.equal(undoneDeparture(historyAcrossMoves(at, names, 'gamma/e'))?.k, 290);
});
