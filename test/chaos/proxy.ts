// A small TCP proxy on 127.0.0.1 that can cut the link: the chaos test puts one between each client and the
// server. cut() destroys every open connection and refuses new ones (accepted sockets are closed at once,
// so the client sees a reset, as with a dropped link); restore() lets connections through again.
// stallStreams() holds what the server sends on record streams (a client's `GET …&follow=1`) while requests
// pass: a client whose forwarded records lag behind its own reintegration.
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export class ChaosProxy {
  readonly targetPort: number;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #streams = new Map<Socket, Socket>(); // upstream → client, of record streams
  #port = 0;
  #cut = false;
  #stalled = false;
  /** How many times the link was cut (a cut while already cut does not count). */
  cuts = 0;
  /** Connections accepted and forwarded so far. */
  connections = 0;
  /** Connections refused while cut. */
  refused = 0;

  private constructor(targetPort: number) {
    this.targetPort = targetPort;
    this.#server = createServer({ noDelay: true }, (s) => this.#accept(s));
  }

  static async start(targetPort: number): Promise<ChaosProxy> {
    const p = new ChaosProxy(targetPort);
    await new Promise<void>((ok, fail) => {
      p.#server.once('error', fail);
      p.#server.listen(0, '127.0.0.1', () => {
        p.#server.off('error', fail);
        ok();
      });
    });
    const a = p.#server.address();
    if (a === null || typeof a !== 'object') throw new Error('proxy: no address');
    p.#port = a.port;
    return p;
  }

  get port(): number {
    return this.#port;
  }

  get isCut(): boolean {
    return this.#cut;
  }

  /** Drop every connection now and refuse new ones until restore(). */
  cut(): void {
    if (!this.#cut) this.cuts++;
    this.#cut = true;
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
  }

  restore(): void {
    this.#cut = false;
  }

  /** Hold the server's bytes on every record stream, open or opened later, until resumeStreams(). */
  stallStreams(): void {
    this.#stalled = true;
    for (const [up, client] of this.#streams) ChaosProxy.#hold(up, client);
  }

  resumeStreams(): void {
    this.#stalled = false;
    for (const [up, client] of this.#streams) {
      up.pipe(client);
      up.resume();
    }
  }

  static #hold(up: Socket, client: Socket): void {
    up.unpipe(client);
    up.pause();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((res) => this.#server.close(() => res()));
  }

  #accept(client: Socket): void {
    if (this.#cut) {
      this.refused++;
      client.on('error', () => {});
      client.resetAndDestroy();
      return;
    }
    this.connections++;
    const upstream = createConnection({ host: '127.0.0.1', port: this.targetPort, noDelay: true });
    this.#sockets.add(client);
    this.#sockets.add(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    // Any request on the connection (kept alive, it may carry others before the stream).
    client.on('data', (chunk: Buffer) => {
      if (this.#streams.has(upstream) || !chunk.includes('follow=1')) return;
      this.#streams.set(upstream, client);
      if (this.#stalled) ChaosProxy.#hold(upstream, client);
    });
    // Either side failing or closing ends both: the peers see it as they would a network failure.
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      this.#sockets.delete(client);
      this.#sockets.delete(upstream);
      this.#streams.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  }
}
