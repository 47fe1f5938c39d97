/**
 * What backs every byte of every guest BAR, over random devices × page sizes × both MSI-X strategies ×
 * unplaced/placed/suspended/moved BARs. The oracle here is written from first principles (the guest's
 * MSI-X structures, the region size), independently of the planner's labelling.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  checkPlanInvariants, locateGpa, locateInBar, planBarMappings, planFromJSON, planToJSON, replan, replanBar,
  type BarLocation, type MappingPlan, type PlannedBar, type TrapKind,
} from '../../src/index.js';
import type { DeviceDescription } from '../../src/vfio/description.js';
import { deviceArb, PAGE_SIZES, PLACEMENTS, type Placement } from './arbitraries.js';

type Strategy = 'relocate' | 'hole';

/**
 * Naturally aligned addresses, one 64 MiB window per BAR (every guest BAR here is at most 8 MiB, plus a
 * skew below 16 MiB), all below 4 GiB so that 32-bit BARs are legal there too.
 */
const aligned = (index: number): bigint => BigInt(index + 1) << 26n;

function planFor(device: DeviceDescription, pageSize: bigint, msix: Strategy, placement: Placement, skew: bigint): MappingPlan {
  if (placement === 'unplaced') return planBarMappings(device, { pageSize, msix });
  const indices = planBarMappings(device, { pageSize, msix }).bars.map((b) => b.index);
  // 'suspended': off by a qword-aligned amount that is not a page multiple (KVM would refuse the slots).
  const off = placement === 'suspended' ? skew - (skew % pageSize === 0n ? 8n : 0n) + 8n : 0n;
  const placed = planBarMappings(device, { pageSize, msix, barAddresses: new Map(indices.map((i) => [i, aligned(i) + off])) });
  if (placement !== 'moved') return placed;
  // Moved: every BAR away to an unaligned address, then to a new aligned one (both paths of replanBar).
  return indices.reduce((plan, i) => replan(replan(plan, i, aligned(i + 8) + skew), i, aligned(i + 16)), placed);
}

/** What must back guest BAR offset `at` (for a trapped byte), from the guest's MSI-X layout and the region. */
function expectedKind(bar: PlannedBar, at: bigint): TrapKind {
  const inside = (r: { offset: bigint; size: bigint } | undefined): boolean => r !== undefined && at >= r.offset && at < r.offset + r.size;
  if (inside(bar.msix?.table)) return 'msix-table';
  if (inside(bar.msix?.pba)) return 'msix-pba';
  return at >= bar.regionSize ? 'padding' : 'device';
}

/** Offsets where `expectedKind` may change. */
function criticalPoints(bar: PlannedBar): bigint[] {
  const points = [bar.regionSize, bar.guestSize / 2n];
  for (const r of [bar.msix?.table, bar.msix?.pba]) if (r) points.push(r.offset, r.offset + r.size);
  return points;
}

function deviceOffsetOf(bar: PlannedBar, device: DeviceDescription, kind: 'msix-table' | 'msix-pba', at: bigint): bigint {
  const guest = kind === 'msix-table' ? bar.msix!.table! : bar.msix!.pba!;
  const own = kind === 'msix-table' ? device.msix!.table : device.msix!.pba;
  expect(own.bir).toBe(bar.index);
  return own.offset + (at - guest.offset);
}

function checkBar(bar: PlannedBar, device: DeviceDescription): void {
  // Tiling: mappings and trapped ranges, each sorted, together cover [0, guestSize) once.
  const pieces = [...bar.mappings, ...bar.trapped].sort((a, b) => (a.barOffset < b.barOffset ? -1 : 1));
  let cursor = 0n;
  for (const p of pieces) {
    expect(p.barOffset).toBe(cursor);
    expect(p.size).toBeGreaterThan(0n);
    cursor += p.size;
  }
  expect(cursor).toBe(bar.guestSize);
  for (const list of [
    bar.mappings,
    bar.trapped,
  ]) for (let i = 1; i < list.length; i++) expect(list[i - 1]!.barOffset).toBeLessThan(list[i]!.barOffset);

  // The guest's MSI-X structures are never directly mapped.
  for (const r of [bar.msix?.table, bar.msix?.pba]) {
    if (!r) continue;
    for (const m of bar.mappings) expect(m.barOffset + m.size <= r.offset || r.offset + r.size <= m.barOffset).toBe(true);
  }

  for (const t of bar.trapped) {
    // One kind per range, and the right one: check its start and both sides of every point inside it.
    expect(t.kind).toBe(expectedKind(bar, t.barOffset));
    for (const c of criticalPoints(bar)) if (c > t.barOffset && c < t.barOffset + t.size) expect(expectedKind(bar, c)).toBe(t.kind);
    if (t.kind === 'padding') {
      expect(t.fileOffset).toBeUndefined();
    } else if (t.kind === 'device') {
      // The planner never translates device bytes: guest offset = region offset, inside the region.
      expect(t.fileOffset).toBe(t.barOffset);
      expect(t.fileOffset! + t.size).toBeLessThanOrEqual(bar.regionSize);
    } else {
      expect(t.fileOffset).toBe(deviceOffsetOf(bar, device, t.kind, t.barOffset));
    }
  }

  // Exactly the guest's table bytes are 'msix-table', exactly its PBA bytes 'msix-pba'.
  const total = (kind: TrapKind): bigint => bar.trapped.filter((t) => t.kind === kind).reduce((n, t) => n + t.size, 0n);
  expect(total('msix-table')).toBe(bar.msix?.table?.size ?? 0n);
  expect(total('msix-pba')).toBe(bar.msix?.pba?.size ?? 0n);

  // Suspended mappings are replaced by 'suspended' ranges over exactly their bytes (device, or padding past the region).
  const suspendedBytes = (bar.suspended ?? []).reduce((n, m) => n + m.size, 0n);
  const suspendedRanges = bar.trapped.filter((t) => t.cause === 'suspended');
  expect(suspendedRanges.reduce((n, t) => n + t.size, 0n)).toBe(suspendedBytes);
  for (const t of suspendedRanges) {
    expect(['device', 'padding']).toContain(t.kind);
    expect(bar.suspended!.some((m) => t.barOffset >= m.barOffset && t.barOffset + t.size <= m.barOffset + m.size)).toBe(true);
  }
  if (bar.suspended) expect(bar.mappings).toEqual([]);
}

/** Linear scan: the reference for the binary searches of locateInBar. */
function scan(bar: PlannedBar, at: bigint): BarLocation | undefined {
  const range = bar.trapped.find((t) => at >= t.barOffset && at < t.barOffset + t.size);
  if (range) return { bar, barOffset: at, backing: 'trapped', range };
  const mapping = bar.mappings.find((m) => at >= m.barOffset && at < m.barOffset + m.size);
  return mapping && { bar, barOffset: at, backing: 'mapped', mapping };
}

function checkLocate(plan: MappingPlan, bar: PlannedBar, extra: bigint): void {
  const probes = [0n, bar.guestSize - 1n, extra % bar.guestSize, ...criticalPoints(bar).filter((c) => c < bar.guestSize)];
  for (const p of [...bar.mappings, ...bar.trapped]) probes.push(p.barOffset, p.barOffset + p.size - 1n);
  for (const at of probes) {
    const found = locateInBar(bar, at);
    expect(found).toEqual(scan(bar, at));
    expect(found).toBeDefined();
    if (bar.guestAddress !== undefined) expect(locateGpa(plan, bar.guestAddress + at)).toEqual(found);
  }
  expect(locateInBar(bar, bar.guestSize)).toBeUndefined();
  expect(locateInBar(bar, -1n)).toBeUndefined();
  if (bar.guestAddress !== undefined) expect(locateGpa(plan.bars, bar.guestAddress + bar.guestSize)?.bar.index).not.toBe(bar.index);
}

describe('trapped ranges say what backs every byte', () => {
  for (const pageSize of PAGE_SIZES) {
    it(`at ${pageSize / 1024n} KiB pages, both strategies, unplaced/placed/suspended/moved`, () => {
      fc.assert(
        fc.property(
          deviceArb, fc.constantFrom<Strategy>('relocate', 'hole'), fc.constantFrom(...PLACEMENTS),
          fc.bigInt({ min: 0n, max: (1n << 20n) - 1n }),
          (device, msix, placement, skew) => {
            const plan = planFor(device, pageSize, msix, placement, skew & ~7n);
            expect(checkPlanInvariants(plan, device)).toEqual([]);
            for (const bar of plan.bars) {
              checkBar(bar, device);
              checkLocate(plan, bar, skew);
            }
            expect(planFromJSON(JSON.parse(JSON.stringify(planToJSON(plan))))).toEqual(plan);
          },
        ),
        { numRuns: 300 },
      );
    });
  }
});

describe('replanBar', () => {
  it('is replan for one BAR; moving back to the original address restores the BAR exactly', () => {
    const pageSizeArb = fc.constantFrom(...PAGE_SIZES);
    const strategyArb = fc.constantFrom<Strategy>('relocate', 'hole');
    const skewArb = fc.bigInt({ min: 0n, max: (1n << 24n) - 1n });
    fc.assert(
      fc.property(deviceArb, pageSizeArb, strategyArb, skewArb, (device, pageSize, msix, skew) => {
        const indices = planBarMappings(device, { pageSize, msix }).bars.map((b) => b.index);
        const plan = planBarMappings(device, { pageSize, msix, barAddresses: new Map(indices.map((i) => [i, aligned(i)])) });
        for (const bar of plan.bars) {
          const target = aligned(bar.index + 8) + (skew & ~7n);
          const moved = replan(plan, bar.index, target);
          const single = replanBar(bar, pageSize, target);
          expect(moved.bars.find((b) => b.index === bar.index)).toEqual(single.bar);
          expect(
            moved.warnings.filter((w) => w.bar === bar.index && (w.code === 'suspended' || w.code === 'unaligned-guest-address'))
          ).toEqual(single.warnings);
          expect(replanBar(single.bar, pageSize, aligned(bar.index)).bar).toEqual(bar);
          expect(replan(moved, bar.index, aligned(bar.index))).toEqual(plan);
        }
      }),
      { numRuns: 300 },
    );
  });
});
