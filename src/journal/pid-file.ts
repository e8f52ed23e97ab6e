import { readFileSync, rmSync, writeFileSync } from 'node:fs';

/** The pid in `file` when that process is still alive; a stale file reads as undefined. */
export function readPidFile(file: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const pid = Number(text.trim());
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM' ? pid : undefined;
  }
}

/** Take the pid file for this process; returns the pid of a live holder instead when there is one. */
export function takePidFile(file: string): number | undefined {
  const holder = readPidFile(file);
  if (holder !== undefined && holder !== process.pid) return holder;
  try {
    writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    rmSync(file, { force: true }); // stale: its process is gone
    writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
  }
  return undefined;
}

export function releasePidFile(file: string): void {
  if (readPidFile(file) === process.pid) rmSync(file, { force: true });
}
