/**
 * Random device descriptions for plan property tests: three BARs of power-of-two sizes (with or without
 * MMAP, WRITE, MSIX_MAPPABLE, sparse areas), 32- or 64-bit, and a valid MSI-X layout (table and PBA
 * inside their BARs, never overlapping each other, the PBA before or after the table or in another BAR).
 */
import fc from 'fast-check';
import type { DeviceDescription, MsixDescription, RegionCapability, RegionDescription } from '../../src/vfio/description.js';

export const PAGE_SIZES = [0x1000n, 0x4000n, 0x1_0000n] as const;

/** A BAR region of power-of-two size, with or without MMAP/WRITE/MSIX_MAPPABLE, sometimes with sparse areas. */
export const regionArb = (index: number): fc.Arbitrary<RegionDescription> =>
  fc.record({
    sizeLog2: fc.integer({ min: 7, max: 22 }),
    mmap: fc.boolean(),
    write: fc.boolean(),
    msixMappable: fc.boolean(),
    sparse: fc.option(
      fc.array(fc.record({ start: fc.integer({ min: 0, max: 255 }), length: fc.integer({ min: 1, max: 64 }) }), { maxLength: 4 }),
      { nil: undefined },
    ),
  }).map(({ sizeLog2, mmap, write, msixMappable, sparse }) => {
    const size = 1n << BigInt(sizeLog2);
    const capabilities: RegionCapability[] = [];
    if (msixMappable) capabilities.push({ kind: 'msix-mappable', id: 3, version: 1 });
    if (sparse) {
      // Areas in 1/256ths of the region, so they scale with it and sometimes fall below a page.
      const unit = size / 256n;
      capabilities.push({
        kind: 'sparse-mmap',
        id: 1,
        version: 1,
        areas: sparse.map((a) => ({ offset: BigInt(a.start) * unit, size: BigInt(a.length) * unit })),
      });
    }
    return {
      index,
      flags: 1 | (write ? 2 : 0) | (mmap ? 4 : 0) | (capabilities.length ? 8 : 0),
      size,
      offset: BigInt(index) << 40n,
      capabilities,
    };
  });

interface MsixChoice {
  readonly tableBir: number;
  readonly pbaBir: number;
  readonly vectors: number;
  readonly tablePos: number;
  readonly pbaPos: number;
}

const msixChoiceArb: fc.Arbitrary<MsixChoice> = fc.record({
  tableBir: fc.integer({ min: 0, max: 2 }),
  pbaBir: fc.integer({ min: 0, max: 2 }),
  vectors: fc.integer({ min: 1, max: 2048 }),
  tablePos: fc.double({ min: 0, max: 1, noNaN: true }),
  pbaPos: fc.double({ min: 0, max: 1, noNaN: true }),
});

/** A qword-aligned offset for `size` bytes at relative position `pos` of [lo, hi). */
function place(lo: bigint, hi: bigint, size: bigint, pos: number): bigint {
  const room = hi - lo - size;
  return lo + (BigInt(Math.floor(Number(room) * pos)) / 8n) * 8n;
}

function msixLayout(regions: readonly RegionDescription[], c: MsixChoice): MsixDescription {
  const tableRegion = regions[c.tableBir]!.size;
  const pbaRegion = regions[c.pbaBir]!.size;
  // Vectors that fit: the table in its BAR (in half of it when the PBA shares it), the PBA in its own.
  const sameBar = c.tableBir === c.pbaBir;
  const maxVectors = Math.min(Number((sameBar ? tableRegion / 2n : tableRegion) / 16n), Number(pbaRegion / 8n) * 64);
  const vectors = Math.max(1, Math.min(c.vectors, maxVectors));
  const tableSize = BigInt(vectors) * 16n;
  const pbaSize = BigInt(Math.ceil(vectors / 64)) * 8n;
  const tableOffset = place(0n, tableRegion, tableSize, c.tablePos);
  let pbaOffset = place(0n, pbaRegion, pbaSize, c.pbaPos);
  if (sameBar && pbaOffset < tableOffset + tableSize && tableOffset < pbaOffset + pbaSize) {
    // Overlap: put the PBA after the table when it fits there, else before it.
    const after = tableOffset + tableSize;
    pbaOffset = after + pbaSize <= pbaRegion ? place(after, pbaRegion, pbaSize, c.pbaPos) : place(0n, tableOffset, pbaSize, c.pbaPos);
  }
  const [tableBir, pbaBir] = [regions[c.tableBir]!.index, regions[c.pbaBir]!.index];
  return {
    capOffset: 0x40,
    vectors,
    table: { bir: tableBir, offset: tableOffset, size: tableSize },
    pba: { bir: pbaBir, offset: pbaOffset, size: pbaSize },
  };
}

/**
 * Three memory BARs, each 32- or 64-bit, laid out as real registers: a 64-bit BAR takes two register
 * slots (its upper half follows it), so BAR indices run 0-2 (all 32-bit) up to 0, 2, 4 (all 64-bit).
 */
export const deviceArb: fc.Arbitrary<DeviceDescription> = fc
  .record({
    regions: fc.tuple(regionArb(0), regionArb(1), regionArb(2)),
    is64: fc.tuple(fc.boolean(), fc.boolean(), fc.boolean()),
    msix: fc.option(msixChoiceArb, { nil: undefined }),
  })
  .map(({ regions: generated, is64, msix }) => {
    const bars: DeviceDescription['bars'][number][] = [];
    const regions = generated.map((region, i) => {
      const index = bars.length;
      bars.push({ index, kind: 'memory', is64Bit: is64[i]!, prefetchable: false, address: 0n });
      if (is64[i]) bars.push({ index: index + 1, kind: 'upper-half', is64Bit: true, prefetchable: false, address: 0n });
      return { ...region, index, offset: BigInt(index) << 40n };
    });
    return {
      bdf: '0000:00:01.0', flags: 3, numRegions: 9, numIrqs: 0, regions, irqs: [], bars,
      ...(msix && { msix: msixLayout(regions, msix) }),
    };
  });

/** How the BARs get their guest addresses in a scenario. */
export type Placement = 'unplaced' | 'placed' | 'suspended' | 'moved';
export const PLACEMENTS: readonly Placement[] = ['unplaced', 'placed', 'suspended', 'moved'];
