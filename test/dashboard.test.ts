// Invariant: the dashboard works end to end in a real browser (Debian's chromium driven by playwright-core,
// no browser download): nothing shows before login; a change made on a client appears live in the server's
// KML tail; a conflict resolved by a click is settled on disk; the lag plot draws. Screenshots are kept in
// test/artifacts/.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { ROOT, cli, freePort, journalState, secretFile, sleep, spawnClient, spawnServer, stopChild, tmpDir, waitConverged } from './helpers.js';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = join(ROOT, 'test', 'artifacts');

async function until(what: string, fn: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const t0 = Date.now();
  while (!(await fn())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

test('log in, see a client change live, resolve a conflict by a click, see the lag plot', async (t) => {
  // CI installs chromium (.ci/run): its absence is a failure, not a skip.
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`);
  mkdirSync(ARTIFACTS, { recursive: true });
  const [srv, cl, logs] = [tmpDir('intersync-srv-'), tmpDir('intersync-cli-'), tmpDir('intersync-logs-')];
  const [port, mport] = [await freePort(), await freePort()];
  const pw = join(logs.path, 'admin-password');
  writeFileSync(pw, 'correct horse battery staple\n', { mode: 0o600 });
  writeFileSync(join(srv.path, 'doc.txt'), 'first\n');
  const server = await spawnServer(srv.path, logs.path, port, ['--ui']);
  const client = await spawnClient(cl.path, logs.path, port, secretFile(srv.path), ['--metrics', `127.0.0.1:${mport}`, '--ui', '--admin-password-file', pw]);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
  t.after(async () => {
    await browser.close();
    await stopChild(client, 'SIGKILL');
    await stopChild(server, 'SIGKILL');
    for (const d of [srv, cl, logs]) d.cleanup();
  });
  await waitConverged([srv.path, cl.path]);

  // The server's dashboard: login first, nothing before it.
  const page = await browser.newPage({ viewport: { width: 1200, height: 1000 } });
  page.on('pageerror', (e) => console.log(`# server page error: ${e.message}`));
  page.on('console', (m) => { if (m.text().startsWith('dashboard:')) console.log(`# server page: ${m.text()}`); });
  await page.goto(`http://127.0.0.1:${port}/ui/`);
  await page.waitForSelector('#login:not([hidden])');
  assert.equal(await page.isVisible('#main'), false);
  await page.fill('#password', 'wrong');
  await page.click('#login button');
  await page.waitForSelector('#login-error:has-text("wrong password")');
  await page.fill('#password', readFileSync(secretFile(srv.path), 'utf8').trim());
  await page.click('#login button');
  await page.waitForSelector('#main:not([hidden])');
  await page.waitForSelector('#fileset :text("server")');

  // A change made on the client appears live in the server's KML tail.
  writeFileSync(join(cl.path, 'from-the-client.html'), '<p>hello</p>\n');
  await page.waitForSelector('#kml td.path:text-is("from-the-client.html")', { timeout: 30_000 });
  // The lag plot draws: uPlot's canvas is there and its data has points.
  await until('lag samples', async () => (await page.evaluate('series.t.length')) as number >= 3);
  const plotted = await page.evaluate(() => {
    const c = document.querySelector('#plot-lag canvas') as HTMLCanvasElement | null;
    if (c === null) return 0;
    const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    let inked = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i]! > 0) inked++;
    return inked;
  });
  assert.ok(plotted > 100, `the lag plot drew ${plotted} pixels`);
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard-server.png'), fullPage: true });

  // A conflict on the client: both sides change doc.txt while it is offline.
  assert.equal(cli(['disconnect', cl.path]).code, 0);
  await sleep(500);
  writeFileSync(join(cl.path, 'doc.txt'), 'local version\n');
  writeFileSync(join(srv.path, 'doc.txt'), 'remote version\n');
  await until('the server journals its change', () => journalState(srv.path).records >= 3);
  await until('the client journals its change', () => journalState(cl.path).lml >= 1);
  assert.equal(cli(['reconnect', cl.path]).code, 0);
  const open = (): Array<{ id: number; path: string; kept: string | null }> =>
    cli(['conflicts', cl.path, '--json']).stdout.trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { id: number; path: string; kept: string | null });
  await until('an open conflict on the client', () => open().length === 1);
  const conflict = open()[0]!;
  assert.equal(conflict.path, 'doc.txt');

  const cpage = await browser.newPage({ viewport: { width: 1200, height: 1000 } });
  cpage.on('pageerror', (e) => console.log(`# client page error: ${e.message}`));
  cpage.on('console', (m) => { if (m.text().startsWith('dashboard:')) console.log(`# client page: ${m.text()}`); });
  await cpage.goto(`http://127.0.0.1:${mport}/ui/`);
  await cpage.fill('#password', 'correct horse battery staple');
  await cpage.click('#login button');
  const box = `.conflict[data-id="${conflict.id}"]`;
  await cpage.waitForSelector(`${box} pre:text("remote version")`);
  await cpage.waitForSelector(`${box} pre:text("local version")`);
  await cpage.screenshot({ path: join(ARTIFACTS, 'dashboard-conflict.png'), fullPage: true });
  await cpage.click(`${box} button[data-keep="local"]`);
  await cpage.waitForSelector(box, { state: 'detached' });
  // On disk: the local version took the name, its kept copy is gone, the conflict is settled.
  assert.equal(readFileSync(join(cl.path, 'doc.txt'), 'utf8'), 'local version\n');
  if (conflict.kept !== null) assert.equal(existsSync(join(cl.path, conflict.kept)), false);
  assert.equal(open().length, 0);
  await cpage.waitForSelector('#fileset :text("0 open, 1 settled")');
  // And it replicates like any change: the server gets the local version.
  await until('the server has the kept version', () => readFileSync(join(srv.path, 'doc.txt'), 'utf8') === 'local version\n');
});
