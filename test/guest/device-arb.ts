/** Random device descriptions (the same generator as test/plan/properties.test.ts). */
import fc from 'fast-check';
import type { DeviceDescription, RegionCapability, RegionDescription } from '../../src/vfio/description.js';

/** A BAR region of power-of-two size, with or without MMAP, sometimes with sparse areas. */
const regionArb = (index: number): fc.Arbitrary<RegionDescription> =>
  fc.record({
    sizeLog2: fc.integer({ min: 7, max: 22 }),
    mmap: fc.boolean(),
    write: fc.boolean(),
    msixMappable: fc.boolean(),
    sparse: fc.option(fc.array(fc.record({ start: fc.integer({ min: 0, max: 255 }), length: fc.integer({ min: 1, max: 64 }) }), { maxLength: 4 }), { nil: undefined }),
  }).map(({ sizeLog2, mmap, write, msixMappable, sparse }) => {
    const size = 1n << BigInt(sizeLog2);
    const capabilities: RegionCapability[] = [];
    if (msixMappable) capabilities.push({ kind: 'msix-mappable', id: 3, version: 1 });
    if (sparse) {
      // Areas in 1/256ths of the region, so they scale with it and sometimes fall below a page.
      const unit = size / 256n > 0n ? size / 256n : 1n;
      capabilities.push({ kind: 'sparse-mmap', id: 1, version: 1, areas: sparse.map((a) => ({ offset: BigInt(a.start) * unit, size: BigInt(a.length) * unit })) });
    }
    return { index, flags: 1 | (write ? 2 : 0) | (mmap ? 4 : 0) | (capabilities.length ? 8 : 0), size, offset: BigInt(index) << 40n, capabilities };
  });

export const deviceArb: fc.Arbitrary<DeviceDescription> = fc
  .record({
    regions: fc.tuple(regionArb(0), regionArb(1), regionArb(2)),
    is64: fc.boolean(),
    msix: fc.option(fc.record({ tableBir: fc.integer({ min: 0, max: 2 }), pbaBir: fc.integer({ min: 0, max: 2 }), vectors: fc.integer({ min: 1, max: 2048 }), tablePos: fc.double({ min: 0, max: 1, noNaN: true }), pbaPos: fc.double({ min: 0, max: 1, noNaN: true }) }), { nil: undefined }),
  })
  .map(({ regions, is64, msix }) => {
    const place = (regionSize: bigint, size: bigint, pos: number): bigint => {
      const room = regionSize > size ? regionSize - size : 0n;
      return (BigInt(Math.floor(Number(room) * pos)) / 8n) * 8n;
    };
    let msixDesc: DeviceDescription['msix'];
    if (msix) {
      const tableSize = BigInt(msix.vectors) * 16n;
      const pbaSize = BigInt(Math.ceil(msix.vectors / 64)) * 8n;
      const tableOffset = place(regions[msix.tableBir]!.size, tableSize, msix.tablePos);
      let pbaOffset = place(regions[msix.pbaBir]!.size, pbaSize, msix.pbaPos);
      if (msix.tableBir === msix.pbaBir && pbaOffset < tableOffset + tableSize && pbaOffset + pbaSize > tableOffset) pbaOffset = tableOffset + tableSize;
      msixDesc = { capOffset: 0x40, vectors: msix.vectors, table: { bir: msix.tableBir, offset: tableOffset, size: tableSize }, pba: { bir: msix.pbaBir, offset: pbaOffset, size: pbaSize } };
    }
    return {
      bdf: '0000:00:01.0', flags: 3, numRegions: 9, numIrqs: 0, regions, irqs: [],
      bars: regions.map((r) => ({ index: r.index, kind: 'memory' as const, is64Bit: is64, prefetchable: false, address: 0n })),
      ...(msixDesc && { msix: msixDesc }),
    };
  });
