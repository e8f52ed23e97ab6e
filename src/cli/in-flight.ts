/**
 * What is in flight, for `intersync status`: the lag and the files and bytes waiting come from the
 * journal (journal/in-flight.ts, one definition for the status, the metrics and the client); conflict
 * counts from daemon/observe.ts; token scopes in words here.
 */
export { peerLag as lagOf, waitingAfter, waitingLocal, lagSeconds, NOTHING_WAITING, type Waiting } from '#journal/in-flight.js';
export { conflictsOf as conflictCounts } from '#daemon/observe.js';

/** "/" is the whole fileset; "/docs" the top-level folder docs. */
export function scopeWords(scope: string): string {
  return scope === '/' || scope === '' ? 'the whole fileset' : `the folder ${scope.replace(/^\//, '')}/ and everything below it`;
}
