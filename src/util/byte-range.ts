/** A byte range: `size` bytes starting at `offset` (within a region, a BAR or a capability). */
export interface ByteRange {
  /** Start, in bytes from the start of the region, BAR or capability. */
  readonly offset: bigint;
  /** Length in bytes. */
  readonly size: bigint;
}
