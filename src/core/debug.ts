import { IntersyncError } from './errors.js';

/** Debug flags of the InterSync HOWTO; `--debug X` takes their sum. */
export const D_INFO = 1;
export const D_KML = 2;
export const D_UPCALL = 4;
export const D_HTTP = 8;
export const D_REINT = 16;
export const D_ALL = D_INFO | D_KML | D_UPCALL | D_HTTP | D_REINT;

export const DEBUG_NAMES: ReadonlyArray<readonly [number, string]> = [
  [D_INFO, 'D_INFO'],
  [D_KML, 'D_KML'],
  [D_UPCALL, 'D_UPCALL'],
  [D_HTTP, 'D_HTTP'],
  [D_REINT, 'D_REINT'],
];

/** Parse a `--debug` value: a decimal or 0x sum of the flags. */
export function parseDebug(text: string): number {
  const t = text.trim();
  if (!/^(0x[0-9a-fA-F]+|[0-9]+)$/.test(t)) {
    throw IntersyncError.BAD_ARGUMENT(
      `--debug takes a number, got ${JSON.stringify(text)}`,
      'sum the flags: 1 D_INFO, 2 D_KML, 4 D_UPCALL, 8 D_HTTP, 16 D_REINT (for example --debug 3)',
    );
  }
  const n = Number(t);
  if (!Number.isSafeInteger(n) || n < 0 || (n & ~D_ALL) !== 0) {
    throw IntersyncError.BAD_ARGUMENT(
      `--debug ${text} names unknown flags`,
      'the flags sum to at most 31: 1 D_INFO, 2 D_KML, 4 D_UPCALL, 8 D_HTTP, 16 D_REINT',
    );
  }
  return n;
}

export function debugNames(mask: number): string[] {
  return DEBUG_NAMES.filter(([bit]) => (mask & bit) !== 0).map(([, name]) => name);
}
