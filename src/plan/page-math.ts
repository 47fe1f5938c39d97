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

/** Smallest power of two ≥ value (value ≥ 1). */
export function nextPowerOfTwo(value: bigint): bigint {
  let power = 1n;
  while (power < value) power <<= 1n;
  return power;
}

export function maxOf(...values: bigint[]): bigint {
  return values.reduce((a, b) => (a > b ? a : b));
}

/** Host page sizes are powers of two from 4 KiB up (4K, 16K, 64K on arm64). */
export function validatePageSize(pageSize: number | bigint): bigint {
  const value = typeof pageSize === 'bigint' ? pageSize : Number.isInteger(pageSize) ? BigInt(pageSize) : -1n;
  if (value < 4096n || !isPowerOfTwo(value)) {
    throw new PlanError('BAD_PAGE_SIZE', `page size ${String(pageSize)} is not a power of two >= 4096`);
  }
  return value;
}
