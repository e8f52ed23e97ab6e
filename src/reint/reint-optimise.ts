import { optimiseLml } from './lml-optimiser.js';
import type { ReintState } from './reint-state.js';
import type { ReintegratorDeps } from './reint-types.js';

const OPTIMISE_WINDOW = 20_000;

/** Run the optimiser over what is pending (once there is more than one record) and keep its result. */
export function optimise(d: Pick<ReintegratorDeps, 'db' | 'log'>, s: ReintState): void {
  if (d.db.lmlCount() < 2) return;
  // Never touch a record that may have reached the server already (an answer lost with the connection):
  // only what was never sent is optimised.
  const sent = BigInt(d.db.getMeta('lml_sent_max') ?? '0');
  // Records sent only leave the window: run again only when the window reaches records the last run did
  // not cover, or the sent guard moved back, or after a refusal or a resync (which reset ReintState#optimisedAt).
  const last = BigInt(d.db.getMeta('lml_seq') ?? '0');
  const prev = s.optimisedAt;
  if (prev !== null && prev.covered >= last && sent >= prev.sent) return;
  const all = d.db.readLml(sent, OPTIMISE_WINDOW);
  s.optimisedAt = { covered: all.length < OPTIMISE_WINDOW ? last : (all.at(-1)?.seq ?? last), sent };
  if (all.length < 2) return;
  const { ship, dropped } = optimiseLml(all);
  if (dropped.length === 0) return;
  const before = new Map(all.map((r) => [r.seq, r]));
  const rewritten = ship.filter((r) => before.get(r.seq) !== r);
  d.db.rewriteLml(rewritten, dropped);
  s.optimisedAway += dropped.length;
  d.log.info({ pending: all.length, dropped: dropped.length, rewritten: rewritten.length }, 'LML optimised');
}
