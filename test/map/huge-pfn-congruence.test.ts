/**
 * Huge-PFN congruence end to end (issue 13.4): `address % A === fileOffset % A`, with A each page size's block
 * (4 KiB pages: 2 MiB and 1 GiB; 16 KiB: 32 MiB; 64 KiB: 512 MiB), for the mappings BarMapper makes (fake kernel,
 * every page size, mappings that start at odd offsets after an MSI-X hole) and for the addresses the real shim
 * returns for each block (memfd: the shim's placement does not depend on the host's page size).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BarMapper } from '../../src/map/index.js';
import { hugePfnPlacement } from '../../src/map/huge-pfn.js';
import { KvmVm } from '../../src/kvm/index.js';
import { VfioDevice } from '../../src/vfio/index.js';
import { planBarMappings } from '../../src/plan/index.js';
import type { DeviceDescription } from '../../src/vfio/description.js';
import { realSyscalls } from '../../src/sys/real-syscalls.js';
import { PROT } from '../../src/sys/syscalls.js';
import { qemuE1000e } from '../helpers/profiles.js';
import { FakeKernel } from '../fake/fake-kernel.js';
import { fakeSysfs } from '../vfio/fixtures.js';

const KIB = 1n << 10n;
const MIB = 1n << 20n;
const GIB = 1n << 30n;
const BLOCKS = new Map<bigint, readonly bigint[]>([[4n * KIB, [GIB, 2n * MIB]], [16n * KIB, [32n * MIB]], [64n * KIB, [512n * MIB]]]);
const EVERY_BLOCK = ['4096:2097152', '4096:1073741824', '16384:33554432', '65536:536870912'];
const BDF = qemuE1000e.bdf;
const ROOTS = fakeSysfs(BDF, '3');

/** e1000e with BAR0 grown to `size` and its MSI-X table (5 vectors, PBA in the same page) at `table` in BAR0. */
function bigBar0(size: bigint, table: bigint): DeviceDescription {
  return {
    ...qemuE1000e,
    regions: [{ ...qemuE1000e.regions[0]!, size }, ...qemuE1000e.regions.slice(1)],
    msix: {
      capOffset: 0xa0,
      vectors: 5,
      table: { bir: 0, offset: table, size: 0x50n },
      pba: { bir: 0, offset: table + 0x800n, size: 0x8n },
    },
  };
}

/** A page size, a BAR0 from the smallest block to 2 GiB, and the MSI-X table on a random page of it. */
const caseArb = fc.constantFrom(...BLOCKS.keys()).chain((page) => {
  const smallestLog2 = BLOCKS.get(page)!.at(-1)!.toString(2).length - 1;
  return fc.record({
    page: fc.constant(page),
    sizeLog2: fc.integer({ min: smallestLog2, max: 31 }),
    tableAt: fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
  });
});

describe('BarMapper places every direct mapping congruent to its file offset (fake kernel, property)', () => {
  it('for 4, 16 and 64 KiB pages, whatever the BAR size and wherever the MSI-X hole cuts it', () => {
    const exercised = new Set<string>();
    fc.assert(fc.property(caseArb, ({ page, sizeLog2, tableAt }) => {
      const size = 1n << BigInt(sizeLog2);
      const table = BigInt(Math.floor(tableAt * Number(size / page))) * page;
      const description = bigBar0(size, table);
      const kernel = new FakeKernel({ pageSize: Number(page), device: description, devRoot: ROOTS.devRoot, group: '3' });
      using device = VfioDevice.open(BDF, { ...ROOTS, syscalls: kernel, iommu: 'type1' });
      using vm = KvmVm.create({ syscalls: kernel, kvmPath: `${ROOTS.devRoot}/kvm` });
      using mapper = new BarMapper(device, vm);
      const barAddresses = { 0: 0x8000_0000n, 1: 0x1010_0000n, 3: 0x1020_0000n };
      const [bar0] = mapper.map(planBarMappings(description, { pageSize: Number(page), msix: 'hole', barAddresses }));
      for (const region of bar0!.regions) {
        const fileOffset = description.regions[0]!.offset + region.mapping.fileOffset;
        const placement = hugePfnPlacement(region.mapping.size, fileOffset, page);
        if (!placement) continue;
        expect(BLOCKS.get(page)).toContain(placement.align);
        expect(region.host.address % placement.align).toBe(fileOffset % placement.align);
        // The guest address agrees too (BAR0 is naturally aligned), so KVM can use the same block at stage 2.
        expect(region.mapping.gpa! % placement.align).toBe(fileOffset % placement.align);
        exercised.add(`${page}:${placement.align}`);
      }
      expect(mapper.warnings.filter((w) => w.code === 'HUGE_PFN_GPA_MISMATCH')).toEqual([]);
    }), { numRuns: 300 });
    expect([...exercised].sort()).toEqual([...EVERY_BLOCK].sort());
  });
});

describe('the real shim returns congruent addresses for every page size\'s block (memfd, property)', () => {
  const sys = realSyscalls();
  const HOST_PAGE = BigInt(sys.pageSize());

  it('address % A === fileOffset % A for placements of 2 MiB, 1 GiB, 32 MiB and 512 MiB blocks', () => {
    const fd = sys.memfdCreate('vfio-bars-congruence', 0);
    try {
      sys.ftruncate(fd, HOST_PAGE); // mmap may reach past the end of the file; nothing here touches the pages
      const exercised = new Set<string>();
      const arb = fc.record({
        page: fc.constantFrom(...BLOCKS.keys()),
        blocks: fc.integer({ min: 1, max: 2 }),
        offsetPages: fc.bigInt({ min: 0n, max: 1n << 16n }),
      });
      fc.assert(fc.property(arb, ({ page, blocks, offsetPages }) => {
        const block = BLOCKS.get(page)![0]!;
        const fileOffset = offsetPages * page;
        const size = BigInt(blocks) * block + (block - (fileOffset % block)) % block;
        const placement = hugePfnPlacement(size, fileOffset, page)!;
        expect(placement.align).toBe(block);
        const mapping = sys.mmap(fd, fileOffset, size, PROT.READ, { shared: true, ...placement });
        try {
          expect(mapping.address % block).toBe(fileOffset % block);
        } finally {
          sys.munmap(mapping);
        }
        exercised.add(`${page}:${block}`);
      }), { numRuns: 60 });
      // The 2 MiB block of 4 KiB pages, when no whole 1 GiB block fits:
      const small = hugePfnPlacement(4n * MIB, 0x1000n, 4n * KIB)!;
      const mapping = sys.mmap(fd, 0x1000n, 4n * MIB, PROT.READ, { shared: true, ...small });
      expect(mapping.address % (2n * MIB)).toBe(0x1000n);
      sys.munmap(mapping);
      exercised.add(`4096:${2n * MIB}`);
      expect([...exercised].sort()).toEqual([...EVERY_BLOCK].sort());
    } finally {
      sys.close(fd);
    }
  });
});
