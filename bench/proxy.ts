// A TCP byte-counting proxy on 127.0.0.1, for the replication benchmark: put
// it between a client and its server and read how many bytes crossed the
// wire in each direction (HTTP headers, framing and all).
//
//   const p = await ByteProxy.start(serverPort);   // listens on a free port
//   ... client --server http://127.0.0.1:${p.port} ...
//   const before = p.counts(); ...; const sent = p.since(before);
//   await p.close();
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export interface ByteCounts {
  /** Client -> server bytes. */
  readonly up: number;
  /** Server -> client bytes. */
  readonly down: number;
  /** Connections accepted so far. */
  readonly connections: number;
}

export class ByteProxy {
  readonly targetPort: number;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #port = 0;
  #up = 0;
  #down = 0;
  #connections = 0;

  private constructor(targetPort: number) {
    this.targetPort = targetPort;
    this.#server = createServer({ noDelay: true }, (client) => this.#accept(client));
  }

  /** Where the proxy listens (on 127.0.0.1). */
  get port(): number {
    return this.#port;
  }

  /** Listen on 127.0.0.1 (a free port unless `port` is given) and forward every connection to 127.0.0.1:`targetPort`. */
  static async start(targetPort: number, port = 0): Promise<ByteProxy> {
    const p = new ByteProxy(targetPort);
    const server = p.#server;
    await new Promise<void>((ok, fail) => {
      server.once('error', fail);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', fail);
        ok();
      });
    });
    const addr = server.address();
    if (addr === null || typeof addr !== 'object') throw new Error('proxy: no address');
    p.#port = addr.port;
    return p;
  }

  #accept(client: Socket): void {
    this.#connections++;
    const upstream = createConnection({ host: '127.0.0.1', port: this.targetPort, noDelay: true });
    this.#sockets.add(client);
    this.#sockets.add(upstream);
    client.on('data', (b: Buffer) => {
      this.#up += b.length;
    });
    upstream.on('data', (b: Buffer) => {
      this.#down += b.length;
    });
    client.pipe(upstream);
    upstream.pipe(client);
    // Either side failing or closing ends both: the peers see the cut as they would a network failure.
    const end = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.on('close', () => this.#sockets.delete(client));
    upstream.on('close', () => this.#sockets.delete(upstream));
  }

  counts(): ByteCounts {
    return { up: this.#up, down: this.#down, connections: this.#connections };
  }

  /** Bytes since an earlier `counts()`. */
  since(before: ByteCounts): ByteCounts {
    return { up: this.#up - before.up, down: this.#down - before.down, connections: this.#connections - before.connections };
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
    await new Promise<void>((ok) => this.#server.close(() => ok()));
  }
}
