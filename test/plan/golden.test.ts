import { describe, expect, it } from 'vitest';
import { checkPlanInvariants, planBarMappings, planToJSON, planFromJSON, replan, PlanError } from '../../src/plan/index.js';
import { qemuE1000e, qemuNvme, qemuNvme64kBar, qemuNvmeUnaligned } from '../helpers/profiles.js';
import type { DeviceDescription } from '../../src/vfio/description.js';

const K4 = 0x1000, K16 = 0x4000, K64 = 0x1_0000;
const BAR0_GPA = 0x80_0000_0000n;

function bar0(description: DeviceDescription, pageSize: number, msix: 'relocate' | 'hole' = 'relocate') {
  const plan = planBarMappings(description, { pageSize, msix, barAddresses: { 0: BAR0_GPA } });
  expect(checkPlanInvariants(plan, description)).toEqual([]);
  const bar = plan.bars.find((b) => b.index === 0)!;
  return { plan, bar };
}

describe('the seed: QEMU NVMe 16 KiB BAR0 with MSI-X inside', () => {
  it('64 KiB pages: one 0x10000 mapping at offset 0, MSI-X relocated into a trapped upper half at 0x10000', () => {
    const { bar } = bar0(qemuNvme, K64);
    expect(bar.guestSize).toBe(0x2_0000n);
    expect(bar.regionSize).toBe(0x4000n);
    expect(bar.mappings).toEqual([
      {
        fileOffset: 0n,
        barOffset: 0n,
        size: 0x1_0000n,
        gpa: BAR0_GPA,
        prot: 'read-write',
        reason: 'expanded 0x4000 -> 0x10000: sub-page BAR, page-aligned (kernel reserves the rest of the page)',
      },
    ]);
    expect(bar.msix).toMatchObject({
      relocated: true,
      table: { offset: 0x1_0000n, size: 0x410n },
      pba: { offset: 0x1_1000n, size: 0x10n },
    });
    // The upper half: the table and PBA as the guest sees them (naming the device's own offsets), padding around them.
    expect(bar.trapped.map(({ reason: _reason, ...t }) => t)).toEqual([
      { barOffset: 0x1_0000n, size: 0x410n, kind: 'msix-table', fileOffset: 0x2000n, cause: 'msix-relocated' },
      { barOffset: 0x1_0410n, size: 0xbf0n, kind: 'padding', cause: 'msix-relocated' },
      { barOffset: 0x1_1000n, size: 0x10n, kind: 'msix-pba', fileOffset: 0x3000n, cause: 'msix-relocated' },
      { barOffset: 0x1_1010n, size: 0xeff0n, kind: 'padding', cause: 'msix-relocated' },
    ]);
    expect(bar.sizeMask).toBe(0xffff_ffff_fffe_0000n);
  });

  it('64 KiB pages, golden JSON', () => {
    const { plan } = bar0(qemuNvme, K64);
    const json = planToJSON(plan) as { bars: unknown[] };
    expect(json.bars[0]).toEqual({
      index: 0, regionOffset: '0x0', regionSize: '0x4000', guestSize: '0x20000', guestAddress: '0x8000000000',
      sizeMask: '0xfffffffffffe0000',
      is64Bit: true, prefetchable: false,
      msix: {
        table: { offset: '0x10000', size: '0x410' },
        pba: { offset: '0x11000', size: '0x10' },
        relocated: true,
        reason: 'MSI-X table 0x2000+0x410, PBA 0x3000+0x10 relocated to the upper half of a 0x20000 guest BAR: '
          + 'its pages would cut the direct mapping',
      },
      mappings: [{
        fileOffset: '0x0',
        barOffset: '0x0',
        size: '0x10000',
        gpa: '0x8000000000',
        prot: 'read-write',
        reason: 'expanded 0x4000 -> 0x10000: sub-page BAR, page-aligned (kernel reserves the rest of the page)',
      }],
      trapped: [
        {
          barOffset: '0x10000',
          size: '0x410',
          kind: 'msix-table',
          fileOffset: '0x2000',
          cause: 'msix-relocated',
          reason: 'relocated MSI-X (table 0x2000+0x410, PBA 0x3000+0x10) in the upper half: MSI-X table, emulated',
        },
        {
          barOffset: '0x10410',
          size: '0xbf0',
          kind: 'padding',
          cause: 'msix-relocated',
          reason: 'relocated MSI-X (table 0x2000+0x410, PBA 0x3000+0x10) in the upper half: padding (reads return 0, writes are dropped)',
        },
        {
          barOffset: '0x11000',
          size: '0x10',
          kind: 'msix-pba',
          fileOffset: '0x3000',
          cause: 'msix-relocated',
          reason: 'relocated MSI-X (table 0x2000+0x410, PBA 0x3000+0x10) in the upper half: MSI-X PBA, emulated',
        },
        {
          barOffset: '0x11010',
          size: '0xeff0',
          kind: 'padding',
          cause: 'msix-relocated',
          reason: 'relocated MSI-X (table 0x2000+0x410, PBA 0x3000+0x10) in the upper half: padding (reads return 0, writes are dropped)',
        },
      ],
      reasons: [
        { code: 'whole-region-mmappable', message: 'whole region is mmappable' },
        {
          code: 'msix-relocated',
          message: 'MSI-X table 0x2000+0x410, PBA 0x3000+0x10 relocated to the upper half of a 0x20000 guest BAR: '
          + 'its pages would cut the direct mapping',
        },
        { code: 'guest-size', message: 'guest BAR size 0x20000 (device region 0x4000)' },
      ],
    });
    expect(planFromJSON(JSON.parse(JSON.stringify(json)))).toEqual(plan);
  });

  it('16 KiB pages: the BAR is exactly one page; MSI-X relocated to a 0x8000 BAR', () => {
    const { bar } = bar0(qemuNvme, K16);
    expect(bar.guestSize).toBe(0x8000n);
    expect(bar.mappings).toMatchObject([{ fileOffset: 0n, size: 0x4000n, reason: 'direct: 0x0+0x4000' }]);
    expect(bar.msix).toMatchObject({ relocated: true, table: { offset: 0x4000n }, pba: { offset: 0x5000n } });
  });

  it('4 KiB pages: relocating keeps all 4 pages mapped (hole would trap 2 of them)', () => {
    const relocated = bar0(qemuNvme, K4).bar;
    expect(relocated.guestSize).toBe(0x8000n);
    expect(relocated.mappings.map((m) => [m.barOffset, m.size])).toEqual([[0n, 0x4000n]]);
    const holed = bar0(qemuNvme, K4, 'hole').bar;
    expect(holed.guestSize).toBe(0x4000n);
    expect(holed.mappings.map((m) => [m.barOffset, m.size])).toEqual([[0n, 0x2000n]]);
    // The two MSI-X pages: table and PBA emulated, the rest of each page forwarded to the device.
    expect(holed.trapped.map((t) => [t.barOffset, t.size, t.kind, t.fileOffset])).toEqual([
      [0x2000n, 0x410n, 'msix-table', 0x2000n], [0x2410n, 0xbf0n, 'device', 0x2410n],
      [0x3000n, 0x10n, 'msix-pba', 0x3000n], [0x3010n, 0xff0n, 'device', 0x3010n],
    ]);
  });

  it("'hole' on 64 KiB pages leaves no direct mapping at all, and the plan says so", () => {
    const { plan, bar } = bar0(qemuNvme, K64, 'hole');
    expect(bar.mappings).toEqual([]);
    expect(bar.guestSize).toBe(0x1_0000n);
    // The NVMe registers sharing the 64 KiB page with the table are forwarded to the device, not emulated.
    expect(bar.trapped.map((t) => [t.barOffset, t.size, t.kind, t.fileOffset, t.cause])).toEqual([
      [0n, 0x2000n, 'device', 0n, 'msix-page'],
      [0x2000n, 0x410n, 'msix-table', 0x2000n, 'msix-page'],
      [0x2410n, 0xbf0n, 'device', 0x2410n, 'msix-page'],
      [0x3000n, 0x10n, 'msix-pba', 0x3000n, 'msix-page'],
      [0x3010n, 0xff0n, 'device', 0x3010n, 'msix-page'],
      [0x4000n, 0xc000n, 'padding', undefined, 'beyond-region'],
    ]);
    expect(plan.warnings).toContainEqual({
      bar: 0,
      code: 'no-direct-mapping',
      message: 'no direct mapping at all; every access is trapped',
    });
  });
});

describe('other layouts', () => {
  it('msix_qsize=2048: a 64 KiB BAR0 on 64 KiB pages is relocated into a 0x20000 BAR and fully mapped', () => {
    const { bar } = bar0(qemuNvme64kBar, K64);
    expect(bar.mappings).toMatchObject([{ barOffset: 0n, size: 0x1_0000n, reason: 'direct: 0x0+0x10000' }]);
    expect(bar.guestSize).toBe(0x2_0000n);
    expect(bar.msix).toMatchObject({ table: { offset: 0x1_0000n, size: 0x8000n }, pba: { offset: 0x1_8000n, size: 0x100n } });
  });

  it('MSI-X in its own BAR: relocated within that BAR; the register BARs are fully mapped', () => {
    for (const page of [K4, K16, K64]) {
      const plan = planBarMappings(qemuE1000e, { pageSize: page });
      expect(checkPlanInvariants(plan, qemuE1000e)).toEqual([]);
      const [b0, b1, b3] = [0, 1, 3].map((i) => plan.bars.find((b) => b.index === i)!);
      expect(b0!.mappings).toMatchObject([{ barOffset: 0n, size: 0x2_0000n }]);
      expect(b0!.msix).toBeUndefined();
      expect(b1!.mappings).toMatchObject([{ barOffset: 0n, size: 0x2_0000n }]);
      expect(plan.skipped).toContainEqual({ index: 2, code: 'io-bar', reason: 'I/O port BAR: not MMIO, the VMM emulates port I/O' });
      // Table at 0 and PBA at 0x2000 keep their relative placement in the upper half.
      const half = b3!.guestSize / 2n;
      expect(b3!.msix).toMatchObject({
        relocated: true,
        table: { offset: half, size: 0x50n },
        pba: { offset: half + 0x2000n, size: 0x8n },
      });
      expect(b3!.guestSize).toBe(page === K4 ? 0x8000n : 2n * BigInt(page));
    }
  });

  it("MSI-X in its own BAR with 'hole': the MSI-X pages are trapped in place", () => {
    const plan = planBarMappings(qemuE1000e, { pageSize: K4, msix: 'hole' });
    const b3 = plan.bars.find((b) => b.index === 3)!;
    expect(b3.msix).toMatchObject({ relocated: false, table: { offset: 0n }, pba: { offset: 0x2000n } });
    expect(b3.mappings).toMatchObject([{ barOffset: 0x1000n, size: 0x1000n }, { barOffset: 0x3000n, size: 0x1000n }]);
    expect(checkPlanInvariants(plan, qemuE1000e)).toEqual([]);
  });

  it('a 32-bit BAR that doubling would push past 1 GiB falls back to hole, with a warning', () => {
    const big: DeviceDescription = {
      ...qemuNvme,
      regions: [
        { index: 0, flags: 0xf, size: 1n << 30n, offset: 0n, capabilities: [{ kind: 'msix-mappable', id: 3, version: 1 }] },
        ...qemuNvme.regions.slice(1)
      ],
      bars: [{ index: 0, kind: 'memory', is64Bit: false, prefetchable: false, address: 0n }],
    };
    const plan = planBarMappings(big, { pageSize: K64 });
    expect(checkPlanInvariants(plan, big)).toEqual([]);
    const bar = plan.bars[0]!;
    expect(bar.guestSize).toBe(1n << 30n);
    expect(bar.msix?.relocated).toBe(false);
    expect(plan.warnings).toContainEqual({
      bar: 0,
      code: 'msix-relocation-refused',
      message: expect.stringContaining('relocating would make a 32-bit BAR 0x80000000') as string,
    });
    // Only the 64 KiB page holding table and PBA is cut out.
    expect(bar.mappings.map((m) => [m.barOffset, m.size])).toEqual([[0x1_0000n, (1n << 30n) - 0x1_0000n]]);
    // The same BAR as 64-bit is relocated.
    const as64 = planBarMappings({ ...big, bars: [{ ...big.bars[0]!, is64Bit: true }] }, { pageSize: K64 });
    expect(as64.bars[0]!.msix?.relocated).toBe(true);
  });

  it('a region without MMAP is trapped whole, with the reason', () => {
    for (const page of [K4, K16, K64]) {
      const { plan, bar } = bar0(qemuNvmeUnaligned, page);
      expect(bar.mappings).toEqual([]);
      // Every byte of the region is forwarded to the device (the table and PBA emulated), the rest is padding.
      expect(bar.trapped.filter((t) => t.kind === 'device').every((t) => t.cause === 'no-mmap')).toBe(true);
      expect(bar.trapped.filter((t) => t.kind !== 'padding').reduce((n, t) => n + t.size, 0n)).toBe(bar.regionSize);
      expect(plan.warnings).toContainEqual({ bar: 0, code: 'no-mmap', message: expect.stringContaining('no MMAP flag') as string });
    }
  });

  it('SPARSE_MMAP areas are mapped as given; sub-page areas not at the region end are trapped with a warning', () => {
    const sparse: DeviceDescription = {
      ...qemuE1000e,
      msix: undefined,
      regions: [{
        index: 0,
        flags: 0xf,
        size: 0x2_0000n,
        offset: 0n,
        capabilities: [{
          kind: 'sparse-mmap',
          id: 1,
          version: 1,
          areas: [{ offset: 0n, size: 0x8000n }, { offset: 0x1_0000n, size: 0x800n }],
        }],
      }],
      bars: [qemuE1000e.bars[0]!],
    };
    const plan = planBarMappings(sparse, { pageSize: K4 });
    expect(checkPlanInvariants(plan, sparse)).toEqual([]);
    const bar = plan.bars[0]!;
    expect(bar.mappings).toMatchObject([{ barOffset: 0n, size: 0x8000n }]);
    expect(plan.warnings).toContainEqual({
      bar: 0,
      code: 'sub-page-unmappable',
      message: expect.stringContaining('area 0x10000+0x800 is smaller than a page') as string,
    });
    expect(bar.trapped).toContainEqual(
      expect.objectContaining({ barOffset: 0x1_0000n, size: 0x800n, kind: 'device', fileOffset: 0x1_0000n, cause: 'sub-page-unmappable' })
    );
    expect(bar.trapped).toContainEqual(
      expect.objectContaining({ barOffset: 0x8000n, size: 0x8000n, kind: 'device', fileOffset: 0x8000n, cause: 'outside-sparse-areas' })
    );
  });

  it('a sub-page area at a non-page-aligned offset is not mapped and the reason names the offset', () => {
    const odd: DeviceDescription = {
      ...qemuNvme,
      msix: undefined,
      regions: [{
        index: 0,
        flags: 0xf,
        size: 0x4000n,
        offset: 0n,
        capabilities: [{ kind: 'sparse-mmap', id: 1, version: 1, areas: [{ offset: 0x3000n, size: 0x1000n }] }],
      }],
    };
    const plan = planBarMappings(odd, { pageSize: K64 });
    expect(plan.bars[0]!.mappings).toEqual([]);
    expect(plan.warnings.map((w) => w.code)).toEqual(['sub-page-unmappable', 'no-direct-mapping']);
    expect(plan.warnings[0]!.message).toContain('its offset 0x3000 is not page-aligned');
  });
});

describe('guest addresses', () => {
  it('without addresses the plan is relative', () => {
    const plan = planBarMappings(qemuNvme, { pageSize: K64 });
    expect(plan.bars[0]!.mappings[0]!.gpa).toBeUndefined();
    expect(plan.bars[0]!.guestAddress).toBeUndefined();
  });

  it('an unaligned address suspends the mappings (trapped, warning); replan to an aligned address restores them', () => {
    const aligned = planBarMappings(qemuNvme, { pageSize: K64, barAddresses: new Map([[0, BAR0_GPA]]) });
    const moved = replan(aligned, 0, BAR0_GPA + 0x4000n);
    const bar = moved.bars[0]!;
    expect(bar.mappings).toEqual([]);
    expect(bar.suspended).toHaveLength(1);
    expect(moved.warnings.map((w) => [w.bar, w.code])).toEqual([[0, 'unaligned-guest-address'], [0, 'suspended']]);
    // The suspended mapping (expanded to 64 KiB) is trapped: the region forwarded, the rest of its page padding.
    expect(bar.trapped.filter((t) => t.cause === 'suspended').map((t) => [t.barOffset, t.size, t.kind, t.fileOffset])).toEqual([
      [0n, 0x4000n, 'device', 0n], [0x4000n, 0xc000n, 'padding', undefined],
    ]);
    expect(checkPlanInvariants(moved, qemuNvme)).toEqual([]);
    const back = replan(moved, 0, 0x90_0000_0000n);
    expect(back.bars[0]!.mappings).toMatchObject([{ gpa: 0x90_0000_0000n, size: 0x1_0000n }]);
    expect(back.bars[0]!.trapped).toEqual(aligned.bars[0]!.trapped);
    expect(back.warnings).toEqual([]);
    expect(checkPlanInvariants(back, qemuNvme)).toEqual([]);
  });

  it('replan changes only GPAs', () => {
    const a = planBarMappings(qemuNvme, { pageSize: K64, barAddresses: { 0: BAR0_GPA } });
    const b = replan(a, 0, BAR0_GPA + 0x10_0000n);
    expect(b.bars[0]!.mappings.map((m) => m.gpa)).toEqual([BAR0_GPA + 0x10_0000n]);
    expect({ ...b.bars[0]!, mappings: [], guestAddress: 0n }).toEqual({ ...a.bars[0]!, mappings: [], guestAddress: 0n });
  });

  it('rejects invalid options with PlanError', () => {
    expect(() => planBarMappings(qemuNvme, { pageSize: 3000 })).toThrow(PlanError);
    expect(() => planBarMappings(qemuNvme, { pageSize: 2048 })).toThrow(/power of two >= 4096/);
    expect(() => planBarMappings(qemuNvme, { pageSize: K4, barAddresses: { 2: 0n } })).toThrow(PlanError);
    expect(() => replan(planBarMappings(qemuNvme, { pageSize: K4 }), 3, 0n)).toThrow(/BAR3 is not in the plan/);
  });
});
