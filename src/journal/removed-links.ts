import type { Fid } from '#core/ids.js';
import type { Statements } from './statements.js';

/** Meta key of the names of hard-linked files removed here, their removal not back from the stream yet (see removedLinksOf). */
const REMOVED_LINKS = 'removed_links';

/**
 * The side table of hard-linked names removed here, kept in meta as JSON (fid -> inode). Its writes are
 * single statements: a caller that needs them atomic with a commit runs them inside FilesetDb's transaction.
 */
export class RemovedLinks {
  readonly #st: Statements;

  constructor(st: Statements) {
    this.#st = st;
  }

  /**
   * Client side: names of hard-linked files removed here whose removal the stream has not brought back yet
   * (pending, or accepted by the server's answer only), by the inode they had (kept in meta: the LML does not
   * say which inode a removed name was of). A change of that inode from the server reaches them too (see
   * ObjectTable#applyToObjects and the conflict step), and a server link to one joins the inode (applyResolved (daemon/client-apply.ts)).
   */
  removedLinksOf(ino: string): Fid[] {
    const all = JSON.parse(this.#get() ?? '{}') as Record<string, string>;
    return Object.entries(all).filter(([, i]) => i === ino).map(([fid]) => fid as Fid);
  }

  /** The inode a hard-linked name removed here had, until the stream brings its removal back (see removedLinksOf). */
  removedLinkIno(fid: Fid): string | null {
    const all = JSON.parse(this.#get() ?? '{}') as Record<string, string>;
    return all[fid] ?? null;
  }

  /** The names of inode `from` that a new file took over with its content now hold inode `to` (ApplyPath, a peer's write): so do the names removed here that it had. */
  inodeReplaced(from: string, to: string): void {
    const all = JSON.parse(this.#get() ?? '{}') as Record<string, string>;
    const moved = Object.keys(all).filter((fid) => all[fid] === from);
    if (moved.length === 0) return;
    for (const fid of moved) all[fid] = to;
    this.#st.setMeta.run(REMOVED_LINKS, JSON.stringify(all));
  }

  /** The names removed here that were noted with inode `ino` are names of no inode here any more (see removedLinksOf). */
  forgetRemovedLinksAt(ino: string): void {
    const noted = this.#get();
    if (noted === undefined || !noted.includes(`"${ino}"`)) return;
    const all = JSON.parse(noted) as Record<string, string>;
    for (const fid of Object.keys(all)) if (all[fid] === ino) delete all[fid];
    this.#st.setMeta.run(REMOVED_LINKS, JSON.stringify(all));
  }

  /** Note that the removed name `fid` had inode `ino`; null: it is no removed name of any inode (any more). */
  noteRemovedLink(fid: Fid, ino: string | null): void {
    const all = JSON.parse(this.#get() ?? '{}') as Record<string, string>;
    if (ino === null && !(fid in all)) return;
    if (ino === null) delete all[fid];
    else all[fid] = ino;
    this.#st.setMeta.run(REMOVED_LINKS, JSON.stringify(all));
  }

  /** The noted names as stored (FilesetTables#getMeta's statement). */
  #get(): string | undefined {
    return this.#st.metaGet.pluck().get(REMOVED_LINKS) as string | undefined;
  }
}
