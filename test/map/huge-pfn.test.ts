/**
 * Huge-PFN placement (issue 13.4): the host address must be congruent to the region file offset modulo
 * the block, with the block each page size allows. Pure math by property; the shim's `alignOffset` on
 * the real kernel (memfd); the mapper asks for it.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { hugePfnBlock, hugePfnPlacement } from '../../src/map/huge-pfn.js';
import { realSyscalls } from '../../src/sys/real-syscalls.js';
import { PROT } from '../../src/sys/syscalls.js';

const KIB = 1n << 10n;
const MIB = 1n << 20n;
const GIB = 1n << 30n;
const PAGE_SIZES = [4n * KIB, 16n * KIB, 64n * KIB] as const;
const BLOCK_OF = new Map<bigint, bigint[]>([[4n * KIB, [GIB, 2n * MIB]], [16n * KIB, [32n * MIB]], [64n * KIB, [512n * MIB]]]);

const pageSizeArb = fc.constantFrom(...PAGE_SIZES);
/** Sizes and offsets in pages, up to 4 GiB worth, biased to the block boundaries. */
const pagesArb = fc.oneof(fc.bigInt({ min: 1n, max: 1n << 20n }), fc.constantFrom(1n, 512n, 2048n, 8192n, 262_144n, 262_145n, 524_288n));

describe('hugePfnBlock / hugePfnPlacement (pure)', () => {
  it('the block is the largest of the page size\'s blocks that the mapping holds, or none', () => {
    fc.assert(fc.property(pageSizeArb, pagesArb, (page, pages) => {
      const size = pages * page;
      const block = hugePfnBlock(size, page);
      const candidates = BLOCK_OF.get(page)!;
      expect(block).toBe(candidates.find((b) => size >= b));
    }), { numRuns: 2000 });
  });

  it('a placement is congruent to the file offset modulo the largest block that fits whole, and exists only then', () => {
    fc.assert(fc.property(pageSizeArb, pagesArb, pagesArb, fc.integer({ min: 0, max: 5 }), (page, pages, offsetPages, region) => {
      const size = pages * page;
      const fileOffset = (BigInt(region) << 40n) + offsetPages * page;
      const placement = hugePfnPlacement(size, fileOffset, page);
      const fits = (block: bigint): boolean => ((block - (fileOffset % block)) % block) + block <= size;
      const expected = BLOCK_OF.get(page)!.find(fits);
      expect(placement?.align).toBe(expected);
      if (!placement) return;
      if (hugePfnBlock(size, page) === undefined) throw new Error('a placement without a block');
      const { align, alignOffset } = placement;
      expect(BLOCK_OF.get(page)).toContain(align);
      expect(alignOffset).toBe(fileOffset % align);
      expect(alignOffset % page).toBe(0n); // a page multiple the shim accepts
      // Any address the shim may return (≡ alignOffset) makes at least one whole block usable.
      const address = 0x7f00_0000_0000n + alignOffset;
      const firstBlock = (address + align - 1n) / align * align;
      expect(firstBlock + align).toBeLessThanOrEqual(address + size);
    }), { numRuns: 3000 });
  });

  it('4 KiB pages fall back from 1 GiB to 2 MiB when no whole PUD fits after the offset', () => {
    expect(hugePfnPlacement(GIB, 0n, 4n * KIB)).toEqual({ align: GIB, alignOffset: 0n });
    expect(hugePfnPlacement(GIB, 2n * MIB, 4n * KIB)).toEqual({ align: 2n * MIB, alignOffset: 0n });
    expect(hugePfnPlacement(2n * GIB, 0x1000_3000n, 4n * KIB)).toEqual({ align: GIB, alignOffset: 0x1000_3000n });
    expect(hugePfnPlacement(4n * MIB, 0x1000n, 4n * KIB)).toEqual({ align: 2n * MIB, alignOffset: 0x1000n });
    expect(hugePfnPlacement(2n * MIB, 0x1000n, 4n * KIB)).toBeUndefined(); // no whole block after the offset
    expect(hugePfnPlacement(MIB, 0n, 4n * KIB)).toBeUndefined();
    expect(hugePfnPlacement(64n * MIB, 0x4000n, 16n * KIB)).toEqual({ align: 32n * MIB, alignOffset: 0x4000n });
    expect(hugePfnPlacement(GIB, 0x1_0000n, 64n * KIB)).toEqual({ align: 512n * MIB, alignOffset: 0x1_0000n });
    expect(hugePfnPlacement(256n * MIB, 0n, 64n * KIB)).toBeUndefined();
  });

  it('rejects non-bigint and non-positive inputs with RangeError', () => {
    expect(() => hugePfnBlock(0n, 4096n)).toThrow(RangeError);
    expect(() => hugePfnBlock(4096n, 0n)).toThrow(RangeError);
    expect(() => hugePfnPlacement(4096n, -1n, 4096n)).toThrow(RangeError);
    expect(() => hugePfnPlacement(4096 as never, 0n, 4096n)).toThrow(RangeError);
  });
});

describe('mmap alignOffset on the real kernel (memfd)', () => {
  const sys = realSyscalls();
  const PAGE = BigInt(sys.pageSize());

  it('places the mapping so address % align === alignOffset, for several offsets', () => {
    const fd = sys.memfdCreate('vfio-bars-align', 0);
    try {
      sys.ftruncate(fd, 8n * MIB);
      for (const alignOffset of [0n, PAGE, 5n * PAGE, 2n * MIB - PAGE]) {
        const mapping = sys.mmap(fd, alignOffset, 4n * MIB, PROT.READ | PROT.WRITE, { align: 2n * MIB, alignOffset });
        try {
          expect(mapping.address % (2n * MIB)).toBe(alignOffset);
          new DataView(mapping.view!).setUint32(0, 0xabcd_0123, true); // usable memory, not the reserve
          expect(new DataView(mapping.view!).getUint32(0, true)).toBe(0xabcd_0123);
        } finally {
          sys.munmap(mapping);
        }
      }
    } finally {
      sys.close(fd);
    }
  });

  it('a 1 GiB block with an offset: the address is congruent, the slack is given back', () => {
    const fd = sys.memfdCreate('vfio-bars-align', 0);
    try {
      sys.ftruncate(fd, 4n * MIB);
      const mapping = sys.mmap(fd, 0n, 2n * MIB, PROT.READ, { align: GIB, alignOffset: 0x20_3000n });
      expect(mapping.address % GIB).toBe(0x20_3000n);
      sys.munmap(mapping);
    } finally {
      sys.close(fd);
    }
  });

  it('rejects an alignOffset that is not a page multiple below align (RangeError), and the shim refuses it too', () => {
    const fd = sys.memfdCreate('vfio-bars-align', 0);
    try {
      sys.ftruncate(fd, 4n * MIB);
      expect(() => sys.mmap(fd, 0n, PAGE, PROT.READ, { align: 2n * MIB, alignOffset: 2n * MIB })).toThrow(RangeError);
      expect(() => sys.mmap(fd, 0n, PAGE, PROT.READ, { align: 2n * MIB, alignOffset: 0x800n })).toThrow(RangeError);
      expect(() => sys.mmap(fd, 0n, PAGE, PROT.READ, { align: 2n * MIB, alignOffset: -PAGE })).toThrow(RangeError);
    } finally {
      sys.close(fd);
    }
  });
});
