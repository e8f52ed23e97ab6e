/**
 * What a node is moving over the wire right now, per file: a large file's blocks going up (client to
 * server: a client's upload, which its server receives) or down (server to client: blocks a client
 * fetches, which its server sends), with the bytes moved so far. The direction is the link's, so both
 * ends of one transfer name it alike. Small files travel inline with their record and are never "in
 * transfer". Read by the status; the mover reports.
 * Invariant: a transfer is listed from `start` until its `end`, and its `bytes` never exceeds `total`.
 */
export type Direction = 'up' | 'down';

export interface Transfer {
  readonly direction: Direction;
  readonly path: string;
  /** The file's size. */
  readonly size: number;
  /** The bytes this transfer moves (a delta moves only the blocks the other side lacks). */
  readonly total: number;
  /** Bytes moved so far. */
  readonly bytes: number;
  /** Wall-clock ms when it started. */
  readonly since: number;
  /** On a server: the node at the other end (null: it authenticated with the shared secret). */
  readonly peer: string | null;
}

export interface TransferHandle {
  /** `n` more bytes moved. */
  add(n: number): void;
  end(): void;
}

export class Transfers {
  readonly #open = new Set<{ t: Transfer; bytes: number }>();
  readonly #now: () => number;

  constructor(now: () => number) {
    this.#now = now;
  }

  start(direction: Direction, path: string, size: number, total: number, peer: string | null = null): TransferHandle {
    const entry = { t: { direction, path, size, total, bytes: 0, since: this.#now(), peer }, bytes: 0 };
    this.#open.add(entry);
    return {
      add: (n) => {
        entry.bytes = Math.min(total, entry.bytes + n);
      },
      end: () => {
        this.#open.delete(entry);
      },
    };
  }

  /** The transfers in progress, oldest first. */
  current(): Transfer[] {
    return [...this.#open].map((e) => ({ ...e.t, bytes: e.bytes }));
  }
}
