/** Alignment arithmetic on bigint, written out so each rounding direction is explicit. `alignment` must be > 0. */

/** The largest multiple of `alignment` that is <= `value`. */
export function alignDown(value: bigint, alignment: bigint): bigint {
  return value - (value % alignment);
}

/** The smallest multiple of `alignment` that is >= `value`. */
export function alignUp(value: bigint, alignment: bigint): bigint {
  const remainder = value % alignment;
  return remainder === 0n ? value : value + (alignment - remainder);
}
