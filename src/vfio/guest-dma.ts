/**
 * Argument checks for DMA-mapping guest RAM into an IOMMU address space, and the record of what is mapped.
 * Everything is checked before the kernel is asked, so a bad call is a typed VfioError naming the range.
 */
import { hex } from '../errors.js';
import { VfioError } from './errors.js';

const U64_LIMIT = 1n << 64n;

/** What device DMA may do to a guest RAM range: read it only, or read and write it. */
export type DmaProtection = 'read' | 'read-write';

/** One guest RAM range as the IOMMU sees it: device DMA to `iova` reaches host memory at `hostAddress`. */
export interface GuestDmaMapping {
  /** IO virtual address the device uses (the guest physical address when there is no vIOMMU). */
  readonly iova: bigint;
  /** Host virtual address of the VMM's mapping of that RAM. */
  readonly hostAddress: bigint;
  /** Length in bytes, a page multiple. */
  readonly size: bigint;
  /** What device DMA may do to it. */
  readonly prot: DmaProtection;
}

/** Validates a mapping request: bigints, page-aligned, non-empty, no wrap past 2^64, a known protection. */
export function checkGuestMapping(iova: unknown, hostAddress: unknown, size: unknown, prot: unknown, pageSize: bigint): GuestDmaMapping {
  checkRange(iova, size, pageSize);
  const host = checkAddress('hostAddress', hostAddress, pageSize);
  if (host + (size as bigint) > U64_LIMIT) {
    throw argument(`hostAddress ${hex(host)} + size ${hex(size as bigint)} wraps past 2^64`, iova as bigint, size as bigint);
  }
  if (prot !== 'read' && prot !== 'read-write') {
    throw argument(`prot must be 'read' or 'read-write', got ${String(prot)}`, iova as bigint, size as bigint);
  }
  return { iova: iova as bigint, hostAddress: host, size: size as bigint, prot };
}

/** Validates an unmap request's `iova` and `size` the same way. */
export function checkRange(iova: unknown, size: unknown, pageSize: bigint): void {
  const start = checkAddress('iova', iova, pageSize);
  if (typeof size !== 'bigint') throw argument(`size must be a bigint, got ${typeof size}`);
  if (size <= 0n) throw argument(`size must be positive, got ${size < 0n ? `-${hex(-size)}` : '0'}`, start, size);
  if (size % pageSize !== 0n) throw argument(`size ${hex(size)} is not a multiple of the ${hex(pageSize)} page size`, start, size);
  if (start + size > U64_LIMIT) throw argument(`iova ${hex(start)} + size ${hex(size)} wraps past 2^64`, start, size);
}

/** The tracked mapping that `[iova, iova + size)` overlaps, if any. */
export function findOverlap(mappings: Iterable<GuestDmaMapping>, iova: bigint, size: bigint): GuestDmaMapping | undefined {
  for (const m of mappings) if (iova < m.iova + m.size && m.iova < iova + size) return m;
  return undefined;
}

function checkAddress(what: string, value: unknown, pageSize: bigint): bigint {
  if (typeof value !== 'bigint') throw argument(`${what} must be a bigint, got ${typeof value}`);
  if (value < 0n || value >= U64_LIMIT) throw argument(`${what} ${value} is not a u64`);
  if (value % pageSize !== 0n) throw argument(`${what} ${hex(value)} is not aligned to the ${hex(pageSize)} page size`);
  return value;
}

function argument(message: string, iova?: bigint, size?: bigint): VfioError {
  return new VfioError(`DMA mapping: ${message}`, { code: 'BAD_ARGUMENT', iova, size });
}
