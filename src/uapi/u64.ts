/** Range-checked fixed-width integer helpers. DataView and koffi wrap silently; these never do. */

export const U64_MAX = (1n << 64n) - 1n;
export const U32_MAX = 0xffff_ffff;

/** Throws RangeError unless `value` is an integer bigint in [0, 2^64-1]. */
export function checkU64(name: string, value: bigint): bigint {
  if (typeof value !== 'bigint') throw new TypeError(`${name} must be a bigint, got ${typeof value}`);
  if (value < 0n || value > U64_MAX) throw new RangeError(`${name} ${value} is outside u64`);
  return value;
}

/** Throws RangeError unless `value` is an integer in [0, 2^32-1]. */
export function checkU32(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > U32_MAX) throw new RangeError(`${name} ${value} is outside u32`);
  return value;
}

/** Throws RangeError unless `value` is an integer in [0, 2^16-1]. */
export function checkU16(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff) throw new RangeError(`${name} ${value} is outside u16`);
  return value;
}

/** Throws RangeError unless `value` is an integer in [-2^31, 2^31-1]. */
export function checkI32(name: string, value: number): number {
  if (!Number.isInteger(value) || value < -(2 ** 31) || value > 2 ** 31 - 1) throw new RangeError(`${name} ${value} is outside i32`);
  return value;
}

/** Parses `"0x..."` (or decimal) into a bigint u64, as written by the JSON codecs. */
export function parseU64(name: string, text: string): bigint {
  if (typeof text !== 'string' || !/^(0x[0-9a-fA-F]+|[0-9]+)$/.test(text)) {
    throw new RangeError(`${name} ${JSON.stringify(text)} is not a u64 literal`);
  }
  return checkU64(name, BigInt(text));
}

/** Formats a u64 for JSON: `"0x..."`. */
export function formatU64(value: bigint): string {
  return `0x${value.toString(16)}`;
}
