/**
 * Bytes read and written on a node's TCP connections, open ones included: a server counts the
 * connections its listener accepts, a client those its HTTP agent opens. Both count the same thing
 * (bytes on the socket, TLS included), so the two ends of a link can be compared.
 */
import type { Server, Socket } from 'node:net';

export class WireBytes {
  #closedIn = 0;
  #closedOut = 0;
  readonly #open = new Set<Socket>();

  /** Count every connection `server` accepts from now on. */
  watchServer(server: Server): void {
    server.on('connection', (s: Socket) => this.watchSocket(s));
  }

  /** Count this connection until it closes. */
  watchSocket(s: Socket): void {
    if (this.#open.has(s)) return;
    this.#open.add(s);
    s.once('close', () => {
      this.#open.delete(s);
      this.#closedIn += s.bytesRead;
      this.#closedOut += s.bytesWritten;
    });
  }

  get totals(): { in: number; out: number } {
    let i = this.#closedIn;
    let o = this.#closedOut;
    for (const s of this.#open) {
      i += s.bytesRead;
      o += s.bytesWritten;
    }
    return { in: i, out: o };
  }
}
