// Reintegration benchmark (issue 4): a client journals operations while disconnected, then reconnects;
// how long until server and client agree, records per second, and how much the LML optimiser removes
// on a workload that creates and deletes temporary files.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { CLI, DAEMON_NODE_ARGS, benchStateDir, fmt, makeTmp, median, say, serverSecretFile, sleep, table } from './lib.js';

export interface ReintResult {
  readonly ops: number;
  readonly lmlRecords: number;
  readonly shipped: number;
  readonly convergeMs: number;
  readonly recordsPerSecond: number;
  readonly churn: { readonly lmlRecords: number; readonly optimisedAway: number; readonly shipped: number; readonly ratio: number };
  readonly ok: boolean;
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => res(typeof a === 'object' && a !== null ? a.port : 0));
    });
    s.on('error', rej);
  });
}

async function start(args: string[]): Promise<ChildProcess> {
  const child = spawn(process.execPath, [...DAEMON_NODE_ARGS, CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  await new Promise<void>((ok, fail) => {
    const t = setTimeout(() => fail(new Error(`not ready: ${out}`)), 300_000);
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('stop with Ctrl-C')) {
        clearTimeout(t);
        ok();
      }
    });
    child.once('exit', (code) => fail(new Error(`exited ${code}: ${out}`)));
  });
  child.removeAllListeners('exit');
  process.on('exit', () => child.kill('SIGKILL'));
  return child;
}

function meta(dir: string): { digest: string; lml: number; tid: string } {
  const db = new Database(join(dir, '.intermezzo/default/fileset.db'), { readonly: true, fileMustExist: true });
  try {
    const get = (k: string): string => (db.prepare('SELECT value FROM meta WHERE key = ?').pluck().get(k) as string | undefined) ?? '';
    return { digest: get('digest'), lml: Number(db.prepare('SELECT count(*) FROM lml').pluck().get()), tid: get('last_tid') };
  } finally {
    db.close();
  }
}

async function until(pred: () => boolean, timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    try {
      if (pred()) return;
    } catch {
      // a database mid-write: look again
    }
    if (Date.now() - t0 > timeoutMs) throw new Error('timed out waiting');
    await sleep(10);
  }
}

/** Wait until the client's capture has journaled everything (its LML stops growing). */
async function settled(dir: string): Promise<number> {
  let last = -1;
  for (let same = 0; same < 5;) {
    await sleep(200);
    const n = meta(dir).lml;
    same = n === last ? same + 1 : 0;
    last = n;
  }
  return last;
}

function cli(args: string[]): void {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`intersync ${args.join(' ')}: ${r.stderr}`);
}

async function round(ops: number, churn: boolean): Promise<{ lml: number; shipped: number; away: number; ms: number; ok: boolean }> {
  const srv = makeTmp('reint-srv');
  const cl = makeTmp('reint-cli');
  const logs = process.env.REINT_LOGS ?? makeTmp('reint-logs');
  const port = await freePort();
  benchStateDir();
  const server = await start(['--listen', `127.0.0.1:${port}`, '--log-dir', logs, srv]);
  const client = await start(['--server', `http://127.0.0.1:${port}`, '--secret-file', serverSecretFile(srv), '--log-dir', logs, cl]);
  try {
    // Files that exist on both sides before the client leaves.
    mkdirSync(join(cl, 'base'));
    for (let i = 0; i < 500; i++) writeFileSync(join(cl, 'base', `f${i}`), `base ${i}`);
    await until(() => meta(cl).lml === 0 && meta(srv).digest === meta(cl).digest, 120_000);
    cli(['disconnect', cl]);
    await sleep(500);
    let n = 0;
    if (!churn) {
      // Operations the optimiser cannot fold: creates, writes to existing files, renames and deletes of existing ones.
      for (let d = 0; n < ops; d++) {
        mkdirSync(join(cl, `d${d}`));
        n++;
        for (let i = 0; i < 100 && n < ops; i++, n++) writeFileSync(join(cl, `d${d}`, `f${i}`), `offline ${d}/${i} `.repeat(1 + (i % 20)));
      }
      for (let i = 0; i < 500; i += 2) writeFileSync(join(cl, 'base', `f${i}`), `changed offline ${i}`);
      for (let i = 1; i < 300; i += 4) renameSync(join(cl, 'base', `f${i}`), join(cl, 'base', `r${i}`));
      for (let i = 3; i < 300; i += 4) unlinkSync(join(cl, 'base', `f${i}`));
    } else {
      // A build-like churn: temporary files created and removed, a few real outputs rewritten several times.
      mkdirSync(join(cl, 'out'));
      for (let i = 0; i < ops; i++) {
        writeFileSync(join(cl, `tmp${i % 50}.o`), `temp ${i}`);
        if (i % 3 === 0) writeFileSync(join(cl, 'out', `obj${i % 100}`), `output ${i}`);
        if (i % 50 === 49) {
          for (let k = 0; k < 50; k++) unlinkSync(join(cl, `tmp${k}.o`));
          await sleep(30); // let capture see each generation
        }
      }
    }
    const lml = await settled(cl);
    const tidBefore = BigInt(meta(srv).tid);
    const t0 = performance.now();
    cli(['reconnect', cl, '--no-wait']); // the time is measured below, to convergence
    await until(() => {
      const a = meta(srv);
      const b = meta(cl);
      return b.lml === 0 && a.digest === b.digest && a.tid === b.tid;
    }, 600_000);
    const ms = performance.now() - t0;
    const shipped = Number(BigInt(meta(srv).tid) - tidBefore);
    await sleep(1200); // status.json is written every second
    const status = JSON.parse(spawnSync(process.execPath, [CLI, 'status', '--json', cl], { encoding: 'utf8' }).stdout) as { client: { refused: number } };
    const st = JSON.parse(spawnSync('cat', [join(cl, '.intermezzo/default/status.json')], { encoding: 'utf8' }).stdout) as { reint: { optimisedAway: number; sent: number } };
    const disk = spawnSync(process.execPath, [CLI, 'digest', '--scan', cl], { encoding: 'utf8' }).stdout.trim();
    const ok = disk === meta(srv).digest && status.client.refused === 0;
    return { lml, shipped, away: st.reint.optimisedAway, ms, ok };
  } finally {
    await stop(client);
    await stop(server);
  }
}

/** SIGTERM (the daemon flushes and exits), SIGKILL if it is still there after 10 s. */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((ok) => child.once('exit', () => ok()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await gone;
  clearTimeout(t);
}

export async function reintBench(o: { quick: boolean; rounds?: number }): Promise<ReintResult> {
  const ops = o.quick ? 1000 : 10_000;
  const rounds = o.rounds ?? (o.quick ? 1 : 3);
  say(`\n== reintegration after disconnection: ${fmt(ops)} operations journaled offline, ${rounds} round(s)`);
  const runs = [];
  for (let i = 0; i < rounds; i++) {
    const r = await round(ops, false);
    say(`  round ${i + 1}: ${fmt(r.lml)} LML records, converged in ${fmt(r.ms)} ms (${fmt((r.lml / r.ms) * 1000)} records/s) ${r.ok ? 'OK' : 'MISMATCH'}`);
    runs.push(r);
  }
  const churnOps = o.quick ? 1000 : 5000;
  const c = await round(churnOps, true);
  say(`  temp-file churn: ${fmt(c.lml)} LML records, optimiser removed ${fmt(c.away)} (${fmt((100 * c.away) / Math.max(1, c.lml), 1)}%), converged in ${fmt(c.ms)} ms ${c.ok ? 'OK' : 'MISMATCH'}`);
  const convergeMs = median(runs.map((r) => r.ms));
  const lml = median(runs.map((r) => r.lml));
  const result: ReintResult = {
    ops, lmlRecords: lml, shipped: median(runs.map((r) => r.shipped)), convergeMs, recordsPerSecond: (lml / convergeMs) * 1000,
    churn: { lmlRecords: c.lml, optimisedAway: c.away, shipped: c.shipped, ratio: c.away / Math.max(1, c.lml) },
    ok: runs.every((r) => r.ok) && c.ok,
  };
  say(table(['reintegration', 'value'], [
    ['operations made offline', fmt(ops)], ['LML records', fmt(result.lmlRecords)], ['time to converge (median)', `${fmt(convergeMs)} ms`],
    ['records per second', fmt(result.recordsPerSecond)], ['records the server received (median)', fmt(result.shipped)],
    ['churn: records removed by the optimiser', `${fmt(c.away)} of ${fmt(c.lml)} (server received ${fmt(c.shipped)})`],
    ['digests', result.ok ? 'OK' : 'MISMATCH'],
  ]));
  return result;
}

if (process.argv[1]?.endsWith('reint-bench.ts')) {
  const quick = process.argv.includes('--quick');
  reintBench({ quick }).then((r) => {
    if (process.argv.includes('--json')) process.stdout.write(`${JSON.stringify(r)}\n`);
    process.exit(r.ok ? 0 : 1);
  }, (e: unknown) => {
    process.stderr.write(`${(e as Error).stack}\n`);
    process.exit(1);
  });
}
