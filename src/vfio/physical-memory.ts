/**
 * Host physical addresses of host memory, from /proc/self/pagemap: what a device without an IOMMU (noiommu)
 * reaches when it DMAs, since nothing translates its addresses.
 */
import { realSyscalls } from '../sys/real-syscalls.js';
import { O_FLAGS, type Syscalls } from '../sys/syscalls.js';
import { hex } from '../errors.js';
import { VfioError } from './errors.js';

/** One physically contiguous piece of a host virtual range. */
export interface PhysicalExtent {
  /** Host virtual address of the piece's first byte. */
  readonly hostAddress: bigint;
  /** Host physical address of that byte. */
  readonly physicalAddress: bigint;
  /** Bytes, a multiple of the page size. */
  readonly size: bigint;
}

/** Options of {@link physicalExtents}. */
export interface PhysicalExtentsOptions {
  /** Kernel interface (tests pass a fake). Default: the real one. */
  syscalls?: Syscalls;
  /** Stop with `TOO_FRAGMENTED` beyond this many extents (bounds time and memory). Default 1024. */
  maxExtents?: number;
}

const PAGEMAP = '/proc/self/pagemap';
const ENTRY_BYTES = 8;
/** Entries read per pread: 64 KiB of pagemap. */
const CHUNK_ENTRIES = 8192;
const PRESENT = 1n << 63n;
const PFN_MASK = (1n << 55n) - 1n;
const DEFAULT_MAX_EXTENTS = 1024;

/**
 * The physically contiguous pieces of `[hostAddress, hostAddress + size)`, in address order. Every page must
 * be resident (touch or lock the memory first: a huge page, e.g. a `MFD_HUGETLB` memfd, stays where it is)
 * and the caller needs CAP_SYS_ADMIN, without which the kernel reports every PFN as 0.
 * @throws VfioError `BAD_ARGUMENT` (not a page-aligned, non-empty range), `NOT_RESIDENT` (a page is not in
 *   memory), `PAGEMAP_HIDDEN` (PFNs read as 0: no CAP_SYS_ADMIN), `TOO_FRAGMENTED`, or the errno of open/pread.
 * @example
 * // A VMM on a noiommu host places guest RAM at its physical address (IOVA = GPA = PA):
 * const [ram, ...rest] = physicalExtents(hugePage.address, hugePage.length, { maxExtents: 1 });
 * context.mapGuestMemory(ram.physicalAddress, ram.hostAddress, ram.size); // checks IOVA = PA
 */
export function physicalExtents(hostAddress: bigint, size: bigint, options: PhysicalExtentsOptions = {}): PhysicalExtent[] {
  const sys = options.syscalls ?? realSyscalls();
  const maxExtents = options.maxExtents ?? DEFAULT_MAX_EXTENTS;
  if (!Number.isSafeInteger(maxExtents) || maxExtents < 1) {
    throw new VfioError(`maxExtents must be a positive integer, got ${String(maxExtents)}`, { code: 'BAD_ARGUMENT' });
  }
  const page = BigInt(sys.pageSize());
  checkPageRange(hostAddress, size, page);
  const fd = sys.open(PAGEMAP, O_FLAGS.RDONLY);
  try {
    return readExtents(sys, fd, { hostAddress, size, page, maxExtents });
  } finally {
    sys.close(fd);
  }
}

function checkPageRange(hostAddress: bigint, size: bigint, page: bigint): void {
  const valid = typeof hostAddress === 'bigint' && typeof size === 'bigint' && size > 0n && hostAddress >= 0n
    && hostAddress % page === 0n && size % page === 0n && hostAddress + size <= 1n << 64n;
  if (!valid) {
    const message = `host range ${String(hostAddress)}+${String(size)} must be non-empty and page-aligned (${page} bytes)`;
    throw new VfioError(message, { code: 'BAD_ARGUMENT' });
  }
}

interface Walk {
  hostAddress: bigint;
  size: bigint;
  page: bigint;
  maxExtents: number;
}

function readExtents(sys: Syscalls, fd: number, walk: Walk): PhysicalExtent[] {
  const extents: { hostAddress: bigint; physicalAddress: bigint; size: bigint }[] = [];
  const pages = walk.size / walk.page;
  const buffer = Buffer.alloc(CHUNK_ENTRIES * ENTRY_BYTES);
  for (let done = 0n; done < pages;) {
    const count = Number(pages - done < BigInt(CHUNK_ENTRIES) ? pages - done : BigInt(CHUNK_ENTRIES));
    const firstVirtual = walk.hostAddress + done * walk.page;
    const chunk = buffer.subarray(0, count * ENTRY_BYTES);
    const read = sys.pread(fd, chunk, (firstVirtual / walk.page) * BigInt(ENTRY_BYTES));
    if (read !== chunk.length) {
      throw new VfioError(`short pagemap read at ${hex(firstVirtual)}: ${read} of ${chunk.length} bytes`, { code: 'NOT_RESIDENT' });
    }
    for (let i = 0; i < count; i++) {
      const virtual = firstVirtual + BigInt(i) * walk.page;
      appendPage(extents, virtual, physicalOf(chunk.readBigUInt64LE(i * ENTRY_BYTES), virtual, walk.page), walk);
    }
    done += BigInt(count);
  }
  return extents;
}

/** The physical address of one page from its pagemap entry. */
function physicalOf(entry: bigint, virtual: bigint, page: bigint): bigint {
  if ((entry & PRESENT) === 0n) {
    throw new VfioError(`host page ${hex(virtual)} is not resident (touch or lock it first)`, { code: 'NOT_RESIDENT' });
  }
  const pfn = entry & PFN_MASK;
  if (pfn === 0n) {
    throw new VfioError(`pagemap hides the physical address of ${hex(virtual)} (CAP_SYS_ADMIN needed)`, { code: 'PAGEMAP_HIDDEN' });
  }
  return pfn * page;
}

function appendPage(extents: { physicalAddress: bigint; size: bigint; hostAddress: bigint }[], virtual: bigint, physical: bigint,
  walk: Walk): void {
  const last = extents.at(-1);
  if (last && last.physicalAddress + last.size === physical) {
    last.size += walk.page;
    return;
  }
  if (extents.length >= walk.maxExtents) {
    const message = `host range ${hex(walk.hostAddress)}+${hex(walk.size)} has more than ${walk.maxExtents} physical extents`;
    throw new VfioError(message, { code: 'TOO_FRAGMENTED' });
  }
  extents.push({ hostAddress: virtual, physicalAddress: physical, size: walk.page });
}
