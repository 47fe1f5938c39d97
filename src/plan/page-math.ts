/** Page and power-of-two arithmetic on bigint, written out so each rounding direction is explicit. */
import { PlanError } from './errors.js';

export function alignDown(value: bigint, alignment: bigint): bigint {
  return value - (value % alignment);
}

export function alignUp(value: bigint, alignment: bigint): bigint {
  const remainder = value % alignment;
  return remainder === 0n ? value : value + (alignment - remainder);
}

export function isAligned(value: bigint, alignment: bigint): boolean {
  return value % alignment === 0n;
}

export function isPowerOfTwo(value: bigint): boolean {
  return value > 0n && (value & (value - 1n)) === 0n;
}

/** Largest BAR (guest or device) the planner accepts: 2^63, so a size mask is never 0 and no size reaches 2^64. */
export const MAX_BAR_SIZE = 1n << 63n;
/** Host page sizes accepted: 4 KiB to 1 GiB (arm64 uses 4K, 16K, 64K). */
export const MIN_PAGE_SIZE = 4096n;
export const MAX_PAGE_SIZE = 1n << 30n;

/**
 * Smallest power of two >= `value`, for 0 < value <= 2^64, in O(64) (the bit length, never a loop that a
 * huge or non-finite input could make endless).
 * @throws PlanError `VALUE_OUT_OF_RANGE` for anything else, including a number (e.g. Infinity).
 */
export function nextPowerOfTwo(value: bigint): bigint {
  if (typeof value !== 'bigint' || value <= 0n || value > 1n << 64n) {
    throw new PlanError('VALUE_OUT_OF_RANGE', `nextPowerOfTwo(${String(value)}): needs a bigint in (0, 2^64]`);
  }
  return value === 1n ? 1n : 1n << BigInt((value - 1n).toString(2).length);
}

export function maxOf(...values: bigint[]): bigint {
  return values.reduce((a, b) => (a > b ? a : b));
}

/**
 * Checks a host page size: a power of two from 4 KiB to 1 GiB, given as a bigint or a safe integer.
 * @throws PlanError `BAD_PAGE_SIZE` otherwise (0, negative, fractional, non-finite, oversize, wrong type).
 */
export function validatePageSize(pageSize: number | bigint): bigint {
  const value = typeof pageSize === 'bigint' ? pageSize : Number.isSafeInteger(pageSize) ? BigInt(pageSize) : -1n;
  if (value < MIN_PAGE_SIZE || value > MAX_PAGE_SIZE || !isPowerOfTwo(value)) {
    throw new PlanError('BAD_PAGE_SIZE', `page size ${describeValue(pageSize)} is not a power of two >= 4096 and <= 1 GiB`);
  }
  return value;
}

/** A short, safe rendering of an untrusted value for an error message (never its full length). */
export function describeValue(value: unknown): string {
  const text = typeof value === 'bigint' ? `${value}n`
    : typeof value === 'string' ? JSON.stringify(value)
    : Array.isArray(value) ? 'an array'
    : typeof value === 'object' && value !== null ? 'an object'
    : String(value);
  return text.length > 40 ? `${text.slice(0, 40)}...` : text;
}
