/** Command-line parsing helpers: sizes, addresses, and the usage error (exit code 2). */
import { VfioBarsError } from '../index.js';

export class UsageError extends VfioBarsError {
  readonly code = 'USAGE';
}

export const USAGE = `usage:
  vfio-bars plan (--profile NAME | --description FILE) [--page-size 4K|16K|64K|N] [--bar-gpa I=ADDR]... [--msix relocate|hole] [--json]
  vfio-bars inspect BDF [--json]
  vfio-bars map BDF [--verify] [--json]
  vfio-bars profiles

exit codes: 0 ok, 1 mapping failed, 2 usage error. NODE_DEBUG=vfio-bars shows decisions and stacks.`;

/** `4K`, `16K`, `64K`, `0x10000` or `65536`. */
export function parseSize(text: string, what: string): bigint {
  const match = /^(\d+)([KMG])$/i.exec(text);
  if (match) {
    const shift = { K: 10n, M: 20n, G: 30n }[match[2]!.toUpperCase() as 'K' | 'M' | 'G'];
    return BigInt(match[1]!) << shift;
  }
  return parseAddress(text, what);
}

/** A u64 in hex (`0x...`) or decimal. */
export function parseAddress(text: string, what: string): bigint {
  if (!/^(0x[0-9a-f]+|\d+)$/i.test(text)) throw new UsageError(`${what}: ${JSON.stringify(text)} is not a number (use hex 0x... or decimal)`);
  const value = BigInt(text);
  if (value >= 1n << 64n) throw new UsageError(`${what}: ${text} does not fit in 64 bits`);
  return value;
}

/** `--bar-gpa 0=0x8000000000` → [0, 0x8000000000n]. */
export function parseBarGpa(text: string): [number, bigint] {
  const match = /^([0-5])=(.+)$/.exec(text);
  if (!match) throw new UsageError(`--bar-gpa ${JSON.stringify(text)}: expected I=ADDR with I in 0-5`);
  return [Number(match[1]), parseAddress(match[2]!, `--bar-gpa ${match[1]}`)];
}
