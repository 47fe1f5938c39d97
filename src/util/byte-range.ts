/** A byte range: `size` bytes starting at `offset` (within a region, a BAR or a capability). */
export interface ByteRange {
  readonly offset: bigint;
  readonly size: bigint;
}
