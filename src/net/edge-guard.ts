import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Clock } from '#core/clock.js';

/**
 * Bounds on what a peer can make the server hold: time, connections, bytes, log lines. Every one has a
 * default fit for a server farm; tests and `ListenOptions.limits` lower them.
 */
export interface EdgeLimits {
  /** A request's headers must be complete this long after its connection opened (or its last request ended). */
  readonly headersTimeoutMs: number;
  /** A request must be received whole (headers and body) within this (uploads of large files included). */
  readonly requestTimeoutMs: number;
  /** How often the HTTP server looks for connections past those timeouts. */
  readonly checkIntervalMs: number;
  /** Connections that have not yet carried a request with the secret, per remote address and in all. */
  readonly unauthPerAddress: number;
  readonly unauthTotal: number;
  /** Bytes of file content in one `/content` answer; the rest is asked for again (the answer says `more`). */
  readonly contentAnswerBytes: number;
  /** Bytes of uploads staged and not yet used, and how long an unused staged upload is kept. */
  readonly stagedQuotaBytes: number;
  readonly stagedTtlMs: number;
  /** Log lines about refused requests (a wrong secret) per window; the rest are counted in the next line. */
  readonly refusedLogLines: number;
  readonly refusedLogWindowMs: number;
}

export const DEFAULT_LIMITS: EdgeLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 600_000,
  checkIntervalMs: 1_000,
  unauthPerAddress: 64,
  unauthTotal: 512,
  contentAnswerBytes: 8 << 20,
  stagedQuotaBytes: 4 * 2 ** 30,
  stagedTtlMs: 60 * 60_000,
  refusedLogLines: 10,
  refusedLogWindowMs: 60_000,
};

/**
 * Caps connections that have not shown the secret yet. A connection counts as unauthenticated from its
 * accept until a request on it passes the secret check (`trust`). Past a cap the OLDEST such connection
 * is closed, never the new one: a legitimate client's fresh connection sends its headers at once, so
 * slow connections can take neither its place nor the server's file descriptors.
 */
export class ConnectionGuard {
  /** Unauthenticated connections by "address:port", oldest first (a Map keeps insertion order). */
  readonly #unauth = new Map<string, { readonly socket: Socket; readonly addr: string }>();
  readonly #perAddr = new Map<string, number>();
  readonly #limits: EdgeLimits;
  readonly #log: Logger;
  #evicted = 0;

  constructor(server: Server, limits: EdgeLimits, log: Logger) {
    this.#limits = limits;
    this.#log = log;
    // The raw TCP socket (under TLS too: 'connection' comes before the handshake, which counts as unauthenticated time).
    server.on('connection', (s: Socket) => this.#admit(s));
  }

  /** Connections closed for a cap so far. */
  get evicted(): number {
    return this.#evicted;
  }

  /** Unauthenticated connections open now. */
  get unauthenticated(): number {
    return this.#unauth.size;
  }

  /** A request on `socket` carried the secret: its connection is no longer capped. */
  trust(socket: Socket): void {
    const key = keyOf(socket);
    const e = this.#unauth.get(key);
    if (e !== undefined) this.#drop(key, e.addr);
  }

  #admit(s: Socket): void {
    const addr = s.remoteAddress ?? 'unknown';
    const key = keyOf(s);
    this.#unauth.set(key, { socket: s, addr });
    this.#perAddr.set(addr, (this.#perAddr.get(addr) ?? 0) + 1);
    s.once('close', () => {
      if (this.#unauth.get(key)?.socket === s) this.#drop(key, addr);
    });
    if ((this.#perAddr.get(addr) ?? 0) > this.#limits.unauthPerAddress) this.#evictOldest(addr);
    if (this.#unauth.size > this.#limits.unauthTotal) this.#evictOldest(null);
  }

  #evictOldest(addr: string | null): void {
    for (const [key, e] of this.#unauth) {
      if (addr !== null && e.addr !== addr) continue;
      this.#drop(key, e.addr);
      e.socket.destroy();
      if (this.#evicted++ % 100 === 0) {
        this.#log.warn({ ip: e.addr, evicted: this.#evicted, open: this.#unauth.size }, 'closed an unauthenticated connection: too many open');
      }
      return;
    }
  }

  #drop(key: string, addr: string): void {
    this.#unauth.delete(key);
    const n = (this.#perAddr.get(addr) ?? 1) - 1;
    if (n <= 0) this.#perAddr.delete(addr);
    else this.#perAddr.set(addr, n);
  }
}

function keyOf(s: Socket): string {
  return `${s.remoteAddress ?? '?'}:${s.remotePort ?? '?'}`;
}

/**
 * A log line at a bounded rate: at most `lines` per window; the first line of the next window says how
 * many were left out. Keyed by nothing: one limiter per kind of event.
 */
export class RateLimitedLog {
  readonly #clock: Clock;
  readonly #lines: number;
  readonly #windowMs: number;
  #windowStart = -Infinity;
  #inWindow = 0;
  #suppressed = 0;

  constructor(clock: Clock, lines: number, windowMs: number) {
    this.#clock = clock;
    this.#lines = lines;
    this.#windowMs = windowMs;
  }

  /** Call `write` with the count of lines left out since the last one, or count this one as left out. */
  hit(write: (suppressed: number) => void): void {
    const now = this.#clock.monotonic();
    if (now - this.#windowStart >= this.#windowMs) {
      this.#windowStart = now;
      this.#inWindow = 0;
    }
    if (this.#inWindow >= this.#lines) {
      this.#suppressed++;
      return;
    }
    this.#inWindow++;
    const n = this.#suppressed;
    this.#suppressed = 0;
    write(n);
  }
}
