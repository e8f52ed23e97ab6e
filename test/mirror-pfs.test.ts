// Invariant: pfs-status tells a fileset's part in mirroring; pfs-slave makes an empty slave bound to a master's
// shared-uuid; a mirror is refused, with a stable code and a hint, into a slave of another uuid or into a
// fileset that is no slave, and changes nothing there.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cli, journalState, settle, sleep, spawnDaemon, stopChild } from './helpers.js';
import { journalOf, lastJson, makeSlave, masterBox } from './mirror-fixture.js';

test('pfs-status of a server and of a slave; pfs-slave refuses a populated directory and a bad uuid', async (t) => {
  const b = await masterBox(t, 'intersync-mirror-pfs-');
  writeFileSync(join(b.master, 'a.txt'), 'alpha\n');
  await settle(b.node);
  const m = cli(['pfs-status', b.master, '--json']);
  assert.equal(m.code, 0, m.stderr);
  const ms = lastJson(m.stdout);
  const j = journalOf(b.master);
  assert.equal(ms.role, 'server');
  assert.equal(ms.mirrorRole, 'master');
  assert.equal(ms.sharedUuid, b.node.db.meta.uuid);
  assert.equal(ms.lastTid, `0x${j.tid.toString(16).padStart(16, '0')}`);
  assert.equal(ms.digest, j.digest);
  assert.equal(ms.history, 'off');
  assert.equal(ms.slave, null);
  const human = cli(['pfs-status', b.master]);
  assert.match(human.stdout, new RegExp(`shared-uuid=${b.node.db.meta.uuid}`));

  // A slave starts empty: a directory holding anything is refused, as is a uuid that is none.
  const full = join(b.root, 'full');
  mkdirSync(full);
  writeFileSync(join(full, 'x'), 'x');
  const r1 = cli(['pfs-slave', full, `shared-uuid=${b.node.db.meta.uuid}`]);
  assert.equal(r1.code, 1);
  assert.match(r1.stderr, /\[NOT_EMPTY\]/);
  assert.deepEqual(readdirSync(full), ['x']);
  const r2 = cli(['pfs-slave', b.slave, 'shared-uuid=nope']);
  assert.equal(r2.code, 2); // a bad command line
  assert.match(r2.stderr, /\[BAD_ARGUMENT\]/);

  makeSlave(b.slave, b.node.db.meta.uuid);
  const s = lastJson(cli(['pfs-status', b.slave, '--json']).stdout);
  assert.equal(s.role, 'slave');
  assert.equal(s.mirrorRole, 'slave');
  assert.equal(s.sharedUuid, b.node.db.meta.uuid);
  assert.equal(s.lastTid, '0x0000000000000000');
  assert.deepEqual(s.slave, { syncedTid: null, syncedFile: null, master: null, source: null, handChanges: [] });
});

test('a mirror into a slave of another uuid, or into a fileset that is no slave, is refused and changes nothing', async (t) => {
  const b = await masterBox(t, 'intersync-mirror-refuse-');
  writeFileSync(join(b.master, 'a.txt'), 'alpha\n');
  await settle(b.node);
  makeSlave(b.slave, '00000000-1111-2222-3333-444444444444');
  const before = journalOf(b.slave);
  const r = cli(['mirror-stream', '--once', b.master, b.slave]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /\[WRONG_MASTER\]/);
  assert.match(r.stderr, /pfs-slave/); // the hint says what to do
  assert.deepEqual(journalOf(b.slave), before);
  assert.deepEqual(readdirSync(b.slave), ['.intermezzo']);

  // Into a master (here: a second server fileset of the same uuid is no slave either).
  const other = join(b.root, 'other');
  mkdirSync(other);
  const mk = cli(['mkfs', other, '--state-dir', join(b.root, 'state')]);
  assert.equal(mk.code, 0, mk.stderr);
  const r2 = cli(['mirror-stream', '--once', '--json', b.master, other]);
  assert.equal(r2.code, 1);
  assert.equal((JSON.parse(r2.stderr.trim()) as { error: { code: string } }).error.code, 'NOT_A_SLAVE');
});

test('a daemon refuses to run on a slave; pfs-upgrade makes a synchronized slave a master that serves on from its TID', async (t) => {
  const b = await masterBox(t, 'intersync-mirror-upgrade-');
  writeFileSync(join(b.master, 'a.txt'), 'alpha\n');
  await settle(b.node);
  makeSlave(b.slave, b.node.db.meta.uuid);
  const logs = join(b.root, 'logs');
  mkdirSync(logs);
  await assert.rejects(spawnDaemon(b.slave, logs), /IS_A_SLAVE/);
  const early = cli(['pfs-upgrade', b.slave]);
  assert.equal(early.code, 1);
  assert.match(early.stderr, /no fully synchronized TID yet.*\[IS_A_SLAVE\]/);

  assert.equal(cli(['mirror-stream', '--once', b.master, b.slave]).code, 0);
  const copied = journalOf(b.slave).tid;
  writeFileSync(join(b.master, 'b.txt'), 'beta\n');
  await settle(b.node);
  assert.equal(cli(['mirror-stream', '--once', b.master, b.slave]).code, 0);
  const synced = journalOf(b.slave).tid;
  assert.ok(synced > copied);

  const up = cli(['pfs-upgrade', '--json', b.slave]);
  assert.equal(up.code, 0, up.stderr);
  assert.equal(lastJson(up.stdout).role, 'server');
  assert.equal(lastJson(cli(['pfs-status', '--json', b.slave]).stdout).role, 'server');
  // Its journal starts after the first copy: a node further behind is told to resync, not given a gap.
  assert.equal(journalState(b.slave).firstKept, copied + 1n);
  const again = cli(['pfs-upgrade', b.slave]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /\[NOT_A_SLAVE\]/);

  // Served, it journals its own changes after the master's last TID it held.
  const srv = await spawnDaemon(b.slave, logs);
  t.after(() => stopChild(srv));
  writeFileSync(join(b.slave, 'c.txt'), 'gamma\n');
  let tid = journalState(b.slave).lastTid;
  for (let i = 0; i < 100 && tid === synced; i++) {
    await sleep(100);
    tid = journalState(b.slave).lastTid;
  }
  assert.equal(tid, synced + 1n);
});
