import { setTimeout as sleep } from 'node:timers/promises';
import { formatDigest } from '#core/digest.js';
import { formatTid, type Tid } from '#core/ids.js';
import { refusedFids, stricterThanServer } from '#copy/client-attrs.js';
import { catchUp, contentBehind } from './client-catch-up.js';
import type { ClientState } from './client-state.js';

/**
 * The check a client makes at each ping of the server (checkDigest (daemon/client-digest.ts)): content still behind is asked
 * for again, and a state digest that is not the server's with nothing pending leads to a rescan, then to a
 * resync. Its state is its own; it lives as long as the node's follow loop. The names with a # in the comments
 * are the ClientNode methods this was.
 */
export class DigestCheck {
  readonly #s: ClientState;
  #diverged: { tid: Tid; since: number } | null = null;
  /** The server TID at which a digest difference last had the disk rescanned, and whether that rescan runs (#checkDigest). */
  #rescannedFor: Tid | null = null;
  #rescanning = false;
  #catchUpAt: number | null = null;
  #divergedResyncAt: number | null = null;

  constructor(s: ClientState) {
    this.#s = s;
  }

  /**
   * Caught up with the server, with nothing pending here, this node's state is the server's at that TID: the
   * server's state digest (sent with each ping, else the one journaled with its record) must be this node's. When it is not, for two seconds
   * (the stream's pings), the node went astray without a refusal to show it (a path kept here that the server
   * does not have): it resyncs, which places the server's state. Counted in status like any resync.
   */
  check(serverTid: Tid, serverDigest: string | undefined): void {
    const db = this.#s.db;
    const now = this.#s.o.clock.monotonic();
    const want = serverDigest ?? db.kmlAt(serverTid)?.digest;
    // Files still behind (a stand-in here) when nothing else is to do: their content is asked for again every
    // few seconds, not only at the next connection (until then the node differed from the server, and the
    // check below, which leaves such a node alone, never repaired it).
    if (contentBehind(this.#s).size > 0 && db.lmlCount() === 0 && db.lastRcvdOf(this.#s.serverNode()) === serverTid
      && (this.#catchUpAt === null || now - this.#catchUpAt >= 5000)) {
      this.#catchUpAt = now;
      this.#s.exchange.run(() => catchUp(this.#s, [...contentBehind(this.#s)])).catch((e: unknown) => {
        this.#s.log.warn({ err: (e as Error).message }, 'cannot fetch the server\'s content of files behind yet');
      });
    }
    // A client that refused some of the server's objects (safe-links), or takes modes and owners more strictly
    // than the server, differs from it by design: a resync could not change that, so it does not check.
    if (db.lmlCount() > 0 || contentBehind(this.#s).size > 0 || db.lastRcvdOf(this.#s.serverNode()) !== serverTid || want === undefined
      || want === formatDigest(db.digest) || refusedFids(db).size > 0 || stricterThanServer(db)) {
      this.#diverged = null;
      return;
    }
    if (this.#diverged === null || this.#diverged.tid !== serverTid) {
      this.#diverged = { tid: serverTid, since: now };
      return;
    }
    if (now - this.#diverged.since < 2000) return;
    // This node's journal may lag its own disk (a name of a hard-linked inode whose row kept an older inode, so a
    // change made through another name did not reach it, and inotify said nothing of it): the disk is looked at
    // again first, and what the rescan journals is sent, then the digests are compared again. Once per server
    // TID: a difference the rescan does not explain resyncs as before. Before, the node resynced at once (chaos
    // s50 seed 9250, c2: a chmod through one name; test/long/journal-lags-disk.test.ts).
    if (this.#rescanning) return;
    if (this.#rescannedFor !== serverTid && this.#s.capture.status().state === 'watching') {
      this.#rescannedFor = serverTid;
      this.#rescanning = true;
      this.#s.log.warn({ tid: formatTid(serverTid), server: want, here: formatDigest(db.digest) },
        'journal digest is not the server\'s with nothing pending: rescanning this node\'s disk before anything else');
      this.#s.capture.rescan();
      // Bounded, as before a resync (#resync): a tree that never goes quiet still gets its answer.
      void Promise.race([this.#s.capture.idle(), sleep(10_000, undefined, { ref: false })]).then(() => {
        this.#rescanning = false;
        // The rescan journaled what the disk holds (sent now, compared again at the next ping), or something
        // else moved meanwhile: nothing more here. Else the difference is not this node's disk: resync.
        if (this.#s.stopped || db.lmlCount() > 0 || db.lastRcvdOf(this.#s.serverNode()) !== serverTid || formatDigest(db.digest) === want) {
          this.#diverged = null;
          return;
        }
        this.#resyncDiverged(serverTid, want);
      }).catch((e: unknown) => {
        this.#rescanning = false;
        this.#s.log.warn({ err: (e as Error).message }, 'rescan before a digest resync failed; the next ping decides');
      });
      return;
    }
    this.#resyncDiverged(serverTid, want);
  }

  /** #checkDigest: the difference stands; resync (at most once a minute). */
  #resyncDiverged(serverTid: Tid, want: string): void {
    const now = this.#s.o.clock.monotonic();
    // At most one such resync a minute: a difference a resync cannot take away (a policy that keeps a mode
    // apart here) must not turn into a resync loop.
    if (this.#divergedResyncAt !== null && now - this.#divergedResyncAt < 60_000) return;
    this.#s.log.error({ tid: formatTid(serverTid), server: want, here: formatDigest(this.#s.db.digest) },
      'state differs from the server\'s at the same TID with nothing pending: resyncing the whole fileset');
    this.#diverged = null;
    this.#divergedResyncAt = now;
    this.#s.resyncRequested = true;
    this.#s.abort.abort(); // the follow loop runs the resync
  }
}
