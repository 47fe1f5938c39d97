/**
 * Where to put a BAR mapping in the host's address space so the kernel can back it with huge PFN
 * mappings (Linux 6.12+ vfio-pci): a PMD/PUD-sized block maps only when the virtual address and the
 * file offset agree modulo the block (`vaddr % A == fileOffset % A`). Aligning by size alone, as QEMU
 * and cloud-hypervisor do, misses every mapping whose offset in the region is not a block multiple.
 * Pure arithmetic: no I/O.
 */

const KIB = 1n << 10n;
const MIB = 1n << 20n;
const GIB = 1n << 30n;

/** An mmap placement request: the VA must satisfy `address % align === alignOffset`. */
export interface HugePfnPlacement {
  /** The block size A (a power of two). */
  readonly align: bigint;
  /** `fileOffset % align`: what the address must be congruent to. */
  readonly alignOffset: bigint;
}

/**
 * The largest huge block a mapping of `size` bytes can use with `pageSize` pages: 4 KiB pages → 1 GiB
 * (PUD) when the mapping holds one, else 2 MiB (PMD); 16 KiB pages → 32 MiB; 64 KiB pages → 512 MiB.
 * Returns undefined when the mapping is smaller than the block (or the page size has no huge blocks
 * we know of), because then no block fits and aligning would only waste address space.
 *
 * @throws RangeError when `size` or `pageSize` is not a positive bigint.
 */
export function hugePfnBlock(size: bigint, pageSize: bigint): bigint | undefined {
  checkPositive('size', size);
  checkPositive('pageSize', pageSize);
  const blocks = blocksFor(pageSize);
  return blocks.find((block) => size >= block);
}

/**
 * The placement for an mmap of `size` bytes at `fileOffset` in the device fd (region offset included):
 * the largest block of the page size such that at least one whole block of the mapping can be mapped
 * huge (the first block boundary lies `A - fileOffset % A` bytes in). Undefined when none can.
 *
 * @throws RangeError when an argument is negative, non-bigint, or `size`/`pageSize` is 0.
 * @example
 * hugePfnPlacement(0x4000_0000n, 0x1_0000_0020_0000n, 0x1000n) // { align: 0x200000n, alignOffset: 0n }
 */
export function hugePfnPlacement(size: bigint, fileOffset: bigint, pageSize: bigint): HugePfnPlacement | undefined {
  if (typeof fileOffset !== 'bigint' || fileOffset < 0n) {
    throw new RangeError(`fileOffset must be a non-negative bigint, got ${String(fileOffset)}`);
  }
  checkPositive('size', size);
  checkPositive('pageSize', pageSize);
  const align = blocksFor(pageSize).find((block) => leadIn(fileOffset, block) + block <= size);
  return align === undefined ? undefined : { align, alignOffset: fileOffset % align };
}

/** Bytes from the mapping's start to its first block boundary when VA ≡ fileOffset (mod block). */
function leadIn(fileOffset: bigint, block: bigint): bigint {
  return (block - (fileOffset % block)) % block;
}

function blocksFor(pageSize: bigint): readonly bigint[] {
  if (pageSize === 4n * KIB) return [GIB, 2n * MIB];
  if (pageSize === 16n * KIB) return [32n * MIB];
  if (pageSize === 64n * KIB) return [512n * MIB];
  return [];
}

function checkPositive(name: string, value: bigint): void {
  if (typeof value !== 'bigint' || value <= 0n) throw new RangeError(`${name} must be a positive bigint, got ${String(value)}`);
}

/**
 * min(largest power of two ≤ size, 1 GiB): the size-only alignment earlier versions used.
 *
 * @deprecated Aligning by size ignores the file offset; use {@link hugePfnPlacement}.
 */
export function hugePfnAlignment(size: bigint): bigint {
  let block = 1n;
  while (block * 2n <= size && block < GIB) block *= 2n;
  return block;
}
