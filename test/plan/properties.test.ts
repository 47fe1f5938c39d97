import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { checkPlanInvariants, planBarMappings, planFromJSON, planToJSON, replan } from '../../src/plan/index.js';
import type { DeviceDescription } from '../../src/vfio/description.js';
import { regionArb } from './arbitraries.js';

const PAGE_SIZES = [0x1000, 0x4000, 0x1_0000] as const;

const deviceArb: fc.Arbitrary<DeviceDescription> = fc
  .boolean()
  .chain((is64) => {
    const indices = is64 ? [0, 2, 4] : [0, 1, 2];
    return fc.record({
      is64: fc.constant(is64),
      regions: fc.tuple(regionArb(indices[0]!), regionArb(indices[1]!), regionArb(indices[2]!)),
      msix: fc.option(
        fc.record({
          tableBar: fc.integer({ min: 0, max: 2 }),
          pbaBar: fc.integer({ min: 0, max: 2 }),
          vectors: fc.integer({ min: 1, max: 2048 }),
          tablePos: fc.double({ min: 0, max: 1, noNaN: true }),
          pbaPos: fc.double({ min: 0, max: 1, noNaN: true }),
        }),
        { nil: undefined },
      ),
    });
  })
  .map(({ regions, is64, msix }) => {
    const place = (regionSize: bigint, size: bigint, pos: number): bigint => {
      const room = regionSize > size ? regionSize - size : 0n;
      return (BigInt(Math.floor(Number(room) * pos)) / 8n) * 8n;
    };
    let msixDesc: DeviceDescription['msix'];
    if (msix) {
      const [tableRegion, pbaRegion] = [regions[msix.tableBar]!, regions[msix.pbaBar]!];
      // At most as many vectors as the table's BAR holds (a small BAR cannot hold 2048 x 16 bytes).
      const vectors = 1 + ((msix.vectors - 1) % Math.min(2048, Number(tableRegion.size / 16n)));
      const tableSize = BigInt(vectors) * 16n;
      const pbaSize = BigInt(Math.ceil(vectors / 64)) * 8n;
      const tableOffset = place(tableRegion.size, tableSize, msix.tablePos);
      let pbaOffset = place(pbaRegion.size, pbaSize, msix.pbaPos);
      const overlapsTable = pbaOffset < tableOffset + tableSize && pbaOffset + pbaSize > tableOffset;
      if (tableRegion === pbaRegion && overlapsTable) pbaOffset = tableOffset + tableSize;
      // A structure larger than its BAR cannot exist (the description validator refuses it): keep the fitting ones.
      if (tableOffset + tableSize <= tableRegion.size && pbaOffset + pbaSize <= pbaRegion.size) {
        msixDesc = {
          capOffset: 0x40,
          vectors,
          table: { bir: tableRegion.index, offset: tableOffset, size: tableSize },
          pba: { bir: pbaRegion.index, offset: pbaOffset, size: pbaSize },
        };
      }
    }
    const bars = regions.flatMap((r) => [
      { index: r.index, kind: 'memory' as const, is64Bit: is64, prefetchable: false, address: 0n },
      ...(is64 ? [{ index: r.index + 1, kind: 'upper-half' as const, is64Bit: true, prefetchable: false, address: 0n }] : []),
    ]);
    return {
      bdf: '0000:00:01.0', flags: 3, numRegions: 9, numIrqs: 0, regions, irqs: [], bars,
      ...(msixDesc && { msix: msixDesc }),
    };
  });

/** Naturally aligned guest slots: 64-bit BARs in a window at 64 GiB+, 32-bit ones below 4 GiB. */
function guestSlot(bar: { index: number; is64Bit: boolean }, window: number): bigint {
  return bar.is64Bit ? BigInt(bar.index + 1 + window) << 36n : BigInt(bar.index + 1 + window) << 28n;
}

describe('planner invariants over random devices', () => {
  for (const pageSize of PAGE_SIZES) {
    it(`hold at ${pageSize / 1024} KiB pages, both strategies, with and without guest addresses`, () => {
      const strategyArb = fc.constantFrom('relocate' as const, 'hole' as const);
      const slotArb = fc.option(fc.bigInt({ min: 0n, max: (1n << 20n) - 1n }), { nil: undefined });
      fc.assert(
        fc.property(deviceArb, strategyArb, slotArb, (device, msix, slot) => {
          // Guest addresses: either naturally aligned slots in a 64-bit window, or arbitrary ones.
          const relative = planBarMappings(device, { pageSize, msix });
          expect(checkPlanInvariants(relative, device)).toEqual([]);
          const addresses = new Map(relative.bars.map((b) => [b.index, guestSlot(b, 0) + (slot ?? 0n)]));
          const placed = planBarMappings(device, { pageSize, msix, barAddresses: addresses });
          expect(checkPlanInvariants(placed, device)).toEqual([]);
          for (const bar of placed.bars) {
            for (const m of bar.mappings) expect(m.gpa).toBe(addresses.get(bar.index)! + m.barOffset);
          }
          // Deterministic, JSON round-trips, replan to the original addresses is the identity.
          expect(planBarMappings(device, { pageSize, msix, barAddresses: addresses })).toEqual(placed);
          expect(planFromJSON(JSON.parse(JSON.stringify(planToJSON(placed))))).toEqual(placed);
          for (const bar of relative.bars) {
            const moved = replan(placed, bar.index, guestSlot(bar, 8));
            expect(checkPlanInvariants(moved, device)).toEqual([]);
          }
        }),
        { numRuns: 1000 },
      );
    });
  }

  it('the relocated MSI-X table never falls inside a directly mapped (possibly expanded) page', () => {
    fc.assert(
      fc.property(deviceArb, fc.constantFrom(...PAGE_SIZES), (device, pageSize) => {
        const plan = planBarMappings(device, { pageSize });
        for (const bar of plan.bars) {
          if (!bar.msix?.relocated) continue;
          for (const r of [bar.msix.table, bar.msix.pba]) {
            if (!r) continue;
            expect(r.offset).toBeGreaterThanOrEqual(bar.guestSize / 2n);
            expect(r.offset + r.size).toBeLessThanOrEqual(bar.guestSize);
            for (const m of bar.mappings) expect(m.barOffset + m.size).toBeLessThanOrEqual(bar.guestSize / 2n);
          }
        }
      }),
      { numRuns: 2000 },
    );
  });
});
