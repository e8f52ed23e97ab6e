import type { Writable } from 'node:stream';

/**
 * Resolve when `w` can take more bytes (`drain`) or will never take any (`close`, `error`), removing
 * every listener it added whichever comes first. A long-lived response (the forwarded stream, a first
 * copy) waits here once per burst of records: `once('drain', …).once('close', …)` left a `close`
 * listener behind at each wait, so a busy stream piled them up (MaxListenersExceededWarning) and kept
 * every resolved wait's closure alive until the response closed.
 */
export function drained(w: Writable): Promise<void> {
  if (w.destroyed || w.writableEnded) return Promise.resolve();
  return new Promise<void>((res) => {
    const done = (): void => {
      w.off('drain', done);
      w.off('close', done);
      w.off('error', done);
      res();
    };
    w.on('drain', done);
    w.on('close', done);
    w.on('error', done);
  });
}

/** Write `buf` to `w`, waiting for the peer when its window is full (see `drained`). */
export async function writeOrWait(w: Writable, buf: Buffer): Promise<void> {
  if (!w.write(buf)) await drained(w);
}
