/**
 * `intersync mount DIR MOUNTPOINT`: the daemon of DIR (a server, or a client with --server) with the filter
 * mount (presto/fuse-capture.ts) on MOUNTPOINT; and `intersync umount MOUNTPOINT`, which stops that daemon
 * (it journals what is open, unmounts, and exits) or cleans a mount whose daemon died.
 */
import { realpathSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { parseDebug } from '#core/debug.js';
import { IntersyncError } from '#core/errors.js';
import { journalsNames } from '#presto/capture.js';
import { flagsGiven } from './config-cmd.js';
import { DaemonConfig } from './daemon-config.js';
import { optionsOf, positiveInt } from './daemon-cmd.js';
import { runDaemon, type RunOptions } from './run-daemon.js';

type Print = (line: string) => void;

/** MOUNTPOINT made absolute without a stat of it (a stale mount there fails every stat with ENOTCONN). */
export function mountpointOf(arg: string): string {
  const abs = resolve(arg);
  try {
    return join(realpathSync(dirname(abs)), basename(abs));
  } catch (e) {
    throw IntersyncError.MOUNT_FAILED(abs, `its parent ${dirname(abs)} does not exist`, e);
  }
}

export function addMountCommands(program: Command, print: Print): void {
  program
    .command('mount')
    .description('serve DIR\'s fileset (or be a client of --server) and show it on MOUNTPOINT: every change made there is journaled before it returns to the program')
    .argument('<DIR>', 'the backing directory: where the files live')
    .argument('<MOUNTPOINT>', 'an empty directory outside DIR, where the fileset is shown')
    .option('--server <URL|TOKEN>', 'client mode: a join token from intersync invite, or the server\'s https://HOST:PORT (once joined)')
    .option('--fileset <NAME>', 'fileset to serve (default: the only one in DIR, or a new one named "default")')
    .option('--listen <ADDR:PORT>', 'server: where to serve the fileset, or "none" (as intersync DIR)')
    .option('--secret-file <FILE>', 'client: enrol with the fileset secret instead of a token')
    .option('--connect-timeout <SECONDS>', 'client: give up waiting for the server after this long', positiveInt('--connect-timeout'))
    .option('--insecure-http', 'allow plain HTTP outside the loopback address', false)
    .option('--tls-ca <FILE>', 'client: trust this CA (PEM) for an https server')
    .option('--state-dir <DIR>', 'where secrets and credentials live, never in DIR')
    .option('--log-dir <DIR>', 'where logs go')
    .option('--settle-ms <N>', 'the watcher on DIR: quiet time (ms) before a batch of changes made behind the mount\'s back is journaled', positiveInt('--settle-ms'))
    .option('--config <FILE>', 'settings file, TOML or JSON (as intersync DIR)')
    .option('--debug <X>', 'debug flags, a sum of 1 D_INFO, 2 D_KML, 4 D_UPCALL (each change through the mount), 8 D_HTTP, 16 D_REINT', '0')
    .addHelpText('after', [
      '',
      'The daemon runs in the foreground, as intersync DIR does; the watcher stays on DIR, so what a program',
      'changes in DIR itself (not through the mount) is journaled as before. Stop with Ctrl-C, SIGTERM,',
      'intersync umount MOUNTPOINT, or umount MOUNTPOINT. Needs /dev/fuse and libfuse2.',
      '',
      'Examples:',
      '  intersync mount /exports/site /mnt/site                       serve /exports/site, show it on /mnt/site',
      '  intersync mount --server https://srv:7777 /imports/site /mnt/site   a client that joined before, mounted',
      '  intersync umount /mnt/site                                    journal what is open, unmount, stop',
    ].join('\n'))
    .action(async (dir: string, mnt: string, o: Partial<RunOptions>, cmd: Command) => {
      const mountpoint = mountpointOf(mnt);
      const cfg = DaemonConfig.load(dir, flagsGiven(cmd, o as Record<string, unknown>), o.config);
      const opts = optionsOf(cfg);
      const debug = parseDebug(opts.debug);
      const { FuseCapture, FUSE_HIDDEN } = await import('#presto/fuse-capture.js');
      const ignore = [...(opts.ignore ?? []), FUSE_HIDDEN];
      await runDaemon(dir, { ...opts, ignore, ...(o.config === undefined ? {} : { config: o.config }) }, cfg, print, {
        attach: async (node, stopDaemon) => {
          const watch = node.capture;
          if (!journalsNames(watch)) throw IntersyncError.MOUNT_FAILED(mountpoint, `the ${watch.kind} capture of DIR cannot journal the mount's changes`);
          const fuse = new FuseCapture({
            root: node.paths.dir, mountpoint, log: node.log, debug,
            journal: (paths) => watch.journalNames(paths),
            onGone: () => stopDaemon('unmounted'),
          });
          await fuse.start();
          print(`intersync: fileset '${node.paths.name}' of ${node.paths.dir} mounted on ${mountpoint}; intersync umount ${mountpoint} to stop`);
          return () => fuse.stop();
        },
      });
    });

  program
    .command('umount')
    .alias('unmount')
    .description('unmount an intersync mount: its daemon journals what is open, unmounts and stops; a mount left by a crash is cleaned')
    .argument('<MOUNTPOINT>', 'where intersync mount showed the fileset')
    .option('--timeout <SECONDS>', 'wait at most this long for the daemon to stop', positiveInt('--timeout'), 60)
    .option('--json', 'print the result as one JSON object', false)
    .addHelpText('after', '\nExamples:\n  intersync umount /mnt/site\n  intersync umount --json /mnt/site')
    .action(async (mnt: string, o: { timeout: number; json: boolean }) => {
      const { cleanStaleMount, mountAt, MOUNT_FSTYPE, servesMounts } = await import('#presto/mount-table.js');
      const mountpoint = mountpointOf(mnt);
      const e = mountAt(mountpoint);
      if (e === null || e.fstype !== MOUNT_FSTYPE) throw IntersyncError.NOT_MOUNTED(mountpoint);
      let how: 'stopped' | 'cleaned';
      if (e.pid !== null && servesMounts(e.pid)) {
        process.kill(e.pid, 'SIGTERM');
        const until = Date.now() + o.timeout * 1000;
        while (servesMounts(e.pid) || mountAt(mountpoint)?.pid === e.pid) {
          if (Date.now() > until) throw IntersyncError.MOUNT_BUSY(mountpoint, `its daemon, pid ${e.pid}, did not stop in ${o.timeout} s`);
          await sleep(50);
        }
        how = 'stopped';
      } else {
        cleanStaleMount(mountpoint);
        how = 'cleaned';
      }
      if (o.json) print(JSON.stringify({ mountpoint, pid: e.pid, result: how }));
      else print(how === 'stopped' ? `unmounted ${mountpoint} (daemon pid ${e.pid} stopped)` : `cleaned the stale mount on ${mountpoint} (its daemon had died)`);
    });
}
