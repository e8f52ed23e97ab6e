// Figures of the edge's bounded resources (issue 12): a server's peak RSS under two 2,000-fid /content
// requests, the decoder's CPU for one 16 MiB frame sent in 4 KiB pieces, and the time an authenticated
// request takes while 1,000 slow-header connections without the secret are open.
//
//   node --conditions=development --import tsx bench/edge.ts [rss|frame|slow]...
//
// It runs the daemon from src/ (through tsx), so it measures the working tree as it is.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { request } from 'undici';
import { PROTOCOL_VERSION } from '#core/format.js';
import { encodeFrame, FrameDecoder, helloFrame } from '#net/protocol/frames.js';

const ROOT = resolve(import.meta.dirname, '..');
const CLI = join(ROOT, 'src/cli/main.ts');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Daemon {
  readonly child: ChildProcess;
  readonly base: string;
  readonly secret: string;
  readonly uuid: string;
  readonly dir: string;
}

async function startDaemon(box: string, port: number): Promise<Daemon> {
  const dir = join(box, 'data');
  const logs = join(box, 'logs');
  // The open-file limit of many a daemon's service unit (1,024) unless EDGE_NOFILE says otherwise.
  const nofile = Number(process.env.EDGE_NOFILE ?? '1024');
  const args = ['--conditions=development', '--import', 'tsx', CLI, '--log-dir', logs, '--listen', `127.0.0.1:${port}`, dir];
  const child = spawn('sh', ['-c', `ulimit -n ${nofile} && exec "$0" "$@"`, process.execPath, ...args], {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  await new Promise<void>((res, rej) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('stop with Ctrl-C')) res();
    });
    child.once('exit', (c) => rej(new Error(`daemon exited ${c}: ${out}`)));
  });
  const secretFile = /secret in (\S+)/.exec(out)?.[1] ?? join(dir, '.intermezzo', 'data', 'secret');
  const secret = readFileSync(secretFile, 'utf8').trim();
  const base = `http://127.0.0.1:${port}`;
  const h = await request(`${base}/v1/hello`, {
    method: 'POST', headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
    body: JSON.stringify({ node: 'b0b0b0b0b0b0b0b0', proto: PROTOCOL_VERSION }),
  });
  const uuid = ((await h.body.json()) as { uuid: string }).uuid;
  return { child, base, secret, uuid, dir };
}

function stop(d: Daemon): Promise<void> {
  return new Promise((res) => {
    if (d.child.exitCode !== null) return res();
    d.child.once('exit', () => res());
    d.child.kill('SIGTERM'); // by PID: the child we started
  });
}

function peakRssMb(pid: number): number {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+)/.exec(s)?.[1] ?? 'NaN') / 1024;
}

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((res) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => res(typeof a === 'object' && a !== null ? a.port : 0));
    });
  });
}

async function withDaemon<T>(prep: (dir: string) => void, fn: (d: Daemon) => Promise<T>): Promise<T> {
  const box = mkdtempSync(join(tmpdir(), 'intersync-edge-bench-'));
  mkdirSync(join(box, 'data'));
  prep(join(box, 'data'));
  const d = await startDaemon(box, await freePort());
  try {
    return await fn(d);
  } finally {
    await stop(d);
    rmSync(box, { recursive: true, force: true });
  }
}

/** Peak RSS of the server while it answers two /content requests naming one 1 MiB - 1 file 2,000 times. */
async function rss(): Promise<void> {
  await withDaemon((dir) => writeFileSync(join(dir, 'big'), Buffer.alloc((1 << 20) - 1, 7)), async (d) => {
    await sleep(500);
    const auth = { authorization: `Bearer ${d.secret}` };
    const snap = await request(`${d.base}/v1/filesets/${d.uuid}/snapshot`, { headers: auth });
    const entries = ((await snap.body.json()) as { entries: Array<{ fid: string; path: string }> }).entries;
    const fid = entries.find((e) => e.path === 'big')!.fid;
    const before = peakRssMb(d.child.pid!);
    const ask = async (): Promise<number> => {
      const r = await request(`${d.base}/v1/filesets/${d.uuid}/content`, {
        method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ fids: Array(2000).fill(fid) }),
        headersTimeout: 600_000, bodyTimeout: 600_000,
      });
      let n = 0;
      for await (const c of r.body) n += (c as Buffer).length;
      return n;
    };
    const t0 = performance.now();
    const sizes = await Promise.all([ask(), ask()]);
    console.log(`rss: peak ${peakRssMb(d.child.pid!).toFixed(0)} MB (at start ${before.toFixed(0)} MB); answers ${sizes.join(' + ')} bytes in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  });
}

/** CPU of decoding one 16 MiB frame fed in 4 KiB pieces. */
function frame(): void {
  const stream = Buffer.concat([helloFrame({}), encodeFrame('content', { fid: 'x' }, Buffer.alloc(16 << 20, 1))]);
  const dec = new FrameDecoder();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let frames = 0;
  for (let i = 0; i < stream.length; i += 4096) frames += dec.push(stream.subarray(i, i + 4096)).length;
  dec.end();
  const c = process.cpuUsage(c0);
  console.log(`frame: ${frames} frames, ${((c.user + c.system) / 1e6).toFixed(3)} CPU-s, ${((performance.now() - t0) / 1000).toFixed(3)} s wall`);
}

/** Time of an authenticated request while 1,000 connections dribble an unfinished header, one byte per second. */
async function slow(): Promise<void> {
  await withDaemon(() => undefined, async (d) => {
    const port = Number(new URL(d.base).port);
    const socks: Socket[] = [];
    let closed = 0;
    for (let i = 0; i < 1000; i++) {
      const s = connect({ host: '127.0.0.1', port });
      s.on('error', () => undefined);
      s.on('close', () => closed++);
      s.write(`GET /v1/filesets/${d.uuid}/status HTTP/1.1\r\nHost: x\r\n`);
      socks.push(s);
    }
    const drip = setInterval(() => {
      for (const s of socks) if (!s.destroyed) s.write('X');
    }, 1000);
    await sleep(1000);
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      const r = await request(`${d.base}/v1/filesets/${d.uuid}/status`, { headers: { authorization: `Bearer ${d.secret}` }, headersTimeout: 300_000 });
      await r.body.dump();
      times.push(performance.now() - t0);
      await sleep(200);
    }
    clearInterval(drip);
    console.log(`slow: authenticated request answered in ${times.map((t) => t.toFixed(0)).join(', ')} ms with 1,000 slow connections (${closed} of them closed by the server meanwhile)`);
    for (const s of socks) s.destroy();
  });
}

const which = process.argv.slice(2);
const all = which.length === 0;
if (all || which.includes('frame')) frame();
if (all || which.includes('rss')) await rss();
if (all || which.includes('slow')) await slow();
