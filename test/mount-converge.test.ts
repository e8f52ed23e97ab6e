// Invariant: what programs do through a mount takes the one road to the other node: a server mounted with
// `intersync mount` and a client mounted with `intersync mount --server`, each changed through its mount
// (cp -a, an editor-style save, a moved directory, removals), converge to the same tree and journal digest,
// and each journal equals the scan of its own DIR. Fails if the mount's changes do not reach the server's
// KML or the client's LML (the other node never converges).
import assert from 'node:assert/strict';
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { freePort, secretFile, waitConverged } from './helpers.js';
import { assertJournaled, mountDirs, run, spawnMount } from './mount-fixture.js';

test('a server and a client, both changed through their mounts, converge', { timeout: 300_000 }, async (t) => {
  const srv = mountDirs();
  const cl = mountDirs();
  t.after(async () => {
    await cl.cleanup();
    await srv.cleanup();
  });
  const port = await freePort();
  srv.track(await spawnMount(srv.dir, srv.mnt, srv.logs, ['--listen', `127.0.0.1:${port}`]));
  cl.track(await spawnMount(cl.dir, cl.mnt, cl.logs, ['--server', `http://127.0.0.1:${port}`, '--secret-file', secretFile(srv.dir)]));

  // On the server, through its mount.
  mkdirSync(join(srv.mnt, 'site/css'), { recursive: true });
  writeFileSync(join(srv.mnt, 'site/index.html'), '<h1>hello</h1>\n');
  writeFileSync(join(srv.mnt, 'site/css/main.css'), 'body { color: black }\n');
  run('cp', ['-a', join(srv.mnt, 'site'), join(srv.mnt, 'site-copy')], srv.mnt);
  await waitConverged([srv.dir, cl.dir]);

  // On the client, through its mount: an editor save over a file the server made, a move, a removal.
  const tmp = join(cl.mnt, 'site/.index.html.swp');
  const fd = openSync(tmp, 'w', 0o644);
  writeSync(fd, '<h1>hello from the client</h1>\n');
  fsyncSync(fd);
  closeSync(fd);
  renameSync(tmp, join(cl.mnt, 'site/index.html'));
  run('mv', [join(cl.mnt, 'site-copy'), join(cl.mnt, 'site-old')], cl.mnt);
  rmSync(join(cl.mnt, 'site-old/css'), { recursive: true });
  await waitConverged([srv.dir, cl.dir]);

  run('diff', ['-r', '--exclude=.intermezzo', srv.dir, cl.dir], srv.dir);
  run('diff', ['-r', srv.mnt, cl.mnt], srv.dir);
  assert.equal(run('cat', [join(srv.mnt, 'site/index.html')], srv.dir), '<h1>hello from the client</h1>\n');
  await assertJournaled(srv.dir, 'server');
  await assertJournaled(cl.dir, 'client');
});
