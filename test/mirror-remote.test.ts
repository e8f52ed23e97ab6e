// Invariant: a mirror's master can be a daemon elsewhere, reached as a join token or HOST:PORT/DIR (no ssh): the
// slave enrols as a node of its own, copies and follows the server's own record stream, checks the digest after
// each record, and acknowledges what it applied (the server counts it among its nodes).
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cli, diskDigest, freePort, secretFile, sleep, spawnServer, stopChild, tmpDir, journalState } from './helpers.js';
import { journalOf, lastJson, makeSlave, syncedOf } from './mirror-fixture.js';

const hex = (t: bigint): string => `0x${t.toString(16).padStart(16, '0')}`;

/** Wait until the server's journal stays at one TID for a few looks (its capture has journaled what was written). */
async function quiet(dir: string): Promise<void> {
  let last = -1n;
  for (let stable = 0; stable < 3;) {
    await sleep(150);
    const now = journalState(dir).lastTid;
    stable = now === last ? stable + 1 : 0;
    last = now;
  }
}

test('a remote master by join token, then by HOST:PORT/DIR with the fileset secret: copy, records, acks', async (t) => {
  const box = tmpDir('intersync-mirror-remote-');
  const logs = tmpDir('intersync-mirror-remote-logs-');
  const srv = join(box.path, 'srv');
  const slave = join(box.path, 'slave');
  const slave2 = join(box.path, 'slave2');
  const state = join(box.path, 'state');
  for (const d of [srv, slave, slave2]) mkdirSync(d);
  mkdirSync(join(srv, 'site'));
  for (let i = 0; i < 40; i++) writeFileSync(join(srv, 'site', `p${i}.html`), `<p>${i}</p>\n`.repeat(i + 1));
  writeFileSync(join(srv, 'big.bin'), Buffer.alloc(3 << 20, 5));
  const port = await freePort();
  const server = await spawnServer(srv, logs.path, port);
  t.after(async () => {
    await stopChild(server);
    box.cleanup();
    logs.cleanup();
  });
  await quiet(srv);
  const inv = cli(['invite', srv, '--json']);
  assert.equal(inv.code, 0, inv.stderr);
  const token = (JSON.parse(inv.stdout) as { token: string }).token;
  const uuid = (lastJson(cli(['pfs-status', '--json', srv]).stdout) as { sharedUuid: string }).sharedUuid;
  makeSlave(slave, uuid);

  const r1 = cli(['mirror-stream', '--once', '--json', '--state-dir', state, token, slave]);
  assert.equal(r1.code, 0, r1.stderr);
  const m1 = journalOf(srv);
  assert.equal(lastJson(r1.stdout).syncedTid, hex(m1.tid));
  assert.equal(journalOf(slave).digest, m1.digest);

  writeFileSync(join(srv, 'site/p1.html'), 'changed\n');
  renameSync(join(srv, 'site'), join(srv, 'www'));
  const big = Buffer.alloc(3 << 20, 5);
  big.fill(1, 100, 5000);
  writeFileSync(join(srv, 'big.bin'), big);
  await quiet(srv);
  const m2 = journalOf(srv);
  // The credential kept in the state directory: the invitation is used up, none is needed again.
  const r2 = cli(['mirror-stream', '--once', '--json', '--state-dir', state, `127.0.0.1:${port}${srv}`, slave]);
  assert.equal(r2.code, 0, r2.stderr);
  const j2 = lastJson(r2.stdout);
  assert.equal(j2.syncedTid, hex(m2.tid));
  assert.equal(j2.records, Number(m2.tid - m1.tid));
  assert.equal(j2.verified, j2.records);
  assert.equal(journalOf(slave).digest, m2.digest);
  assert.equal(await diskDigest(slave), await diskDigest(srv));
  assert.equal(syncedOf(slave), hex(m2.tid));
  // The server counts the slave as a node, acknowledged where it is.
  const slaveNode = (lastJson(cli(['pfs-status', '--json', slave]).stdout) as { nodeId: string }).nodeId;
  let acked = '';
  for (let i = 0; i < 50 && acked !== hex(m2.tid); i++) {
    const st = JSON.parse(cli(['status', '--json', srv]).stdout) as { server: { peers: Array<{ node: string; lastRcvd: string }> } };
    acked = st.server.peers.find((p) => p.node === slaveNode)?.lastRcvd ?? '';
    if (acked !== hex(m2.tid)) await sleep(100);
  }
  assert.equal(acked, hex(m2.tid));

  // A second slave, enrolled with the fileset secret through HOST:PORT/DIR.
  makeSlave(slave2, uuid);
  const r3 = cli(['mirror-stream', '--once', '--json', '--state-dir', state, '--secret-file', secretFile(srv), `127.0.0.1:${port}/srv`, slave2]);
  assert.equal(r3.code, 0, r3.stderr);
  assert.equal(journalOf(slave2).digest, m2.digest);
});
