/**
 * The shape of every long-running part of a node (after zero-cache's services): `run` works until the part is
 * stopped and resolves then; `stop` asks it to end at its next turn and resolves once `run` has returned.
 * Invariants: `run` is called once; `stop` may come before, during or after it and more than once; `stop`
 * never rejects (a failure of the work is `run`'s to report); the part owns its retries and their backoff,
 * with its clock and randomness injected. Implemented by net/record-follower.ts (RecordFollower) and
 * reint/reintegrator.ts (Reintegrator); docs/architecture.md ("Services") says which parts are not loops.
 */
export interface Service {
  run(): Promise<void>;
  stop(): Promise<void>;
}
