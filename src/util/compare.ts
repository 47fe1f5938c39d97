/** Three-way comparison of bigints for `Array.prototype.sort` (subtraction would not fit a number). */
export function compareBigint(a: bigint, b: bigint): -1 | 0 | 1 {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * A sort comparator ordering items by a bigint key, ascending.
 * @example ranges.sort(byBigint((r) => r.offset))
 */
export function byBigint<T>(key: (item: T) => bigint): (a: T, b: T) => -1 | 0 | 1 {
  return (a, b) => compareBigint(key(a), key(b));
}
