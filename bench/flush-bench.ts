// 7. The flush before an acknowledgement: a run of 500 new files of 350 bytes (as the apply path leaves them: written
// in a temp folder, linked into a new directory), then made durable two ways: `sync -f` (syncfs, what
// ApplyPath#flush does) and fsync of each file and of the directories touched (what a per-run flush would do),
// each alone and while another process writes 200 MB into the same file system (a busy web server's logs). Rounds
// interleave the two ways; medians.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, fsyncSync, linkSync, mkdirSync, openSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fmt, makeTmp, median, say, sleep, table } from './lib.js';

export interface FlushOptions {
  readonly files: number;
  readonly writerBytes: number;
  readonly rounds: number;
}

export interface FlushResult {
  readonly options: FlushOptions;
  readonly median: { readonly syncfsMs: number; readonly fsyncMs: number; readonly syncfsBusyMs: number; readonly fsyncBusyMs: number };
}

/** A run's files, as the apply path places them: a temp file linked into its directory, the temp name removed. */
function placeRun(root: string, tmp: string, name: string, files: number): string[] {
  const dir = join(root, name);
  mkdirSync(dir);
  const out: string[] = [];
  const body = 'x'.repeat(350);
  for (let i = 0; i < files; i++) {
    const t = join(tmp, `t${i}`);
    writeFileSync(t, body);
    const at = join(dir, `f${i}.html`);
    linkSync(t, at);
    unlinkSync(t);
    out.push(at);
  }
  return out;
}

function syncfsMs(root: string): number {
  const t0 = performance.now();
  spawnSync('sync', ['-f', root], { stdio: 'ignore' });
  return performance.now() - t0;
}

function fsyncMs(paths: readonly string[], dirs: readonly string[]): number {
  const t0 = performance.now();
  for (const p of [...paths, ...dirs]) {
    const fd = openSync(p, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
  return performance.now() - t0;
}

/** Another process writing `bytes` into `file` (no sync of its own), as fast as it can. */
function startWriter(file: string, bytes: number): ChildProcess {
  return spawn('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M', `count=${Math.round(bytes / (1 << 20))}`, 'status=none'], { stdio: 'ignore' });
}

export async function flushBench(o: FlushOptions): Promise<FlushResult> {
  say(`== 7. Flush before an ack: ${fmt(o.files)} new files of 350 bytes in a new directory, made durable by sync -f (syncfs) or by fsync of ` +
    `each file and directory touched; alone and while dd writes ${fmt(o.writerBytes / 2 ** 20)} MB into the same file system; ${o.rounds} interleaved rounds`);
  const root = makeTmp('flush');
  const tmp = join(root, 'tmp');
  mkdirSync(tmp);
  const rows: Array<{ syncfs: number; fsync: number; syncfsBusy: number; fsyncBusy: number }> = [];
  let n = 0;
  for (let i = 0; i < o.rounds; i++) {
    const r = { syncfs: 0, fsync: 0, syncfsBusy: 0, fsyncBusy: 0 };
    for (const busy of [false, true]) {
      for (const way of ['syncfs', 'fsync'] as const) {
        spawnSync('sync', ['-f', root], { stdio: 'ignore' });
        const name = `run-${n++}`;
        const files = placeRun(root, tmp, name, o.files);
        let writer: ChildProcess | undefined;
        if (busy) {
          writer = startWriter(join(root, `log-${n}`), o.writerBytes);
          await sleep(200); // the writer under way, its dirty pages piling up
        }
        const ms = way === 'syncfs' ? syncfsMs(root) : fsyncMs(files, [join(root, name), tmp]);
        if (writer !== undefined) await new Promise((res) => (writer!.exitCode !== null ? res(null) : writer!.once('exit', res)));
        r[busy ? (way === 'syncfs' ? 'syncfsBusy' : 'fsyncBusy') : way] = ms;
      }
    }
    rows.push(r);
    say(`    round ${i + 1}/${o.rounds}  alone: syncfs ${fmt(r.syncfs)} ms, fsync ${fmt(r.fsync)} ms; with the writer: syncfs ${fmt(r.syncfsBusy)} ms, fsync ${fmt(r.fsyncBusy)} ms`);
  }
  const m = (f: (x: (typeof rows)[number]) => number): number => median(rows.map(f));
  const res: FlushResult = { options: o, median: { syncfsMs: m((x) => x.syncfs), fsyncMs: m((x) => x.fsync), syncfsBusyMs: m((x) => x.syncfsBusy), fsyncBusyMs: m((x) => x.fsyncBusy) } };
  say(table(['medians', 'sync -f (syncfs)', 'fsync each file and dir'], [
    ['alone', `${fmt(res.median.syncfsMs)} ms`, `${fmt(res.median.fsyncMs)} ms`],
    [`while ${fmt(o.writerBytes / 2 ** 20)} MB are written`, `${fmt(res.median.syncfsBusyMs)} ms`, `${fmt(res.median.fsyncBusyMs)} ms`],
  ]));
  return res;
}
