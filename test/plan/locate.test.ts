import { describe, expect, it } from 'vitest';
import {
  PlanError, locateGpa, locateInBar, planBarMappings, planFromJSON, planToJSON, replan, replanBar, type BarLocation,
} from '../../src/index.js';
import { qemuE1000e, qemuNvme } from '../helpers/profiles.js';
import { trappedRanges } from '../../src/plan/trapped-ranges.js';
import { span } from '../../src/plan/ranges.js';

const K4 = 0x1000n, K64 = 0x1_0000n;
const BAR0 = 0x80_0000_0000n;

/** The parts of a location a VMM dispatches on. */
function what(where: BarLocation | undefined): unknown {
  if (!where) return undefined;
  if (where.backing === 'mapped') return { bar: where.bar.index, barOffset: where.barOffset, mapped: where.mapping.fileOffset };
  return { bar: where.bar.index, barOffset: where.barOffset, kind: where.range.kind, fileOffset: where.range.fileOffset };
}

describe('locateGpa / locateInBar on the seed NVMe', () => {
  it('relocated on 64 KiB pages: registers are mapped; the upper half is table, PBA and padding', () => {
    const plan = planBarMappings(qemuNvme, { pageSize: K64, barAddresses: { 0: BAR0 } });
    expect(what(locateGpa(plan, BAR0 + 0x1000n))).toEqual({ bar: 0, barOffset: 0x1000n, mapped: 0n });
    // Vector 1's message data: guest table entry 1 (offset 0x10010 + 8) is the device's entry at 0x2018.
    const entry = locateGpa(plan, BAR0 + 0x1_0018n)!;
    expect(what(entry)).toEqual({ bar: 0, barOffset: 0x1_0018n, kind: 'msix-table', fileOffset: 0x2000n });
    expect(entry.backing === 'trapped' && entry.range.fileOffset! + (entry.barOffset - entry.range.barOffset)).toBe(0x2018n);
    expect(what(locateGpa(plan, BAR0 + 0x1_1008n))).toMatchObject({ kind: 'msix-pba', fileOffset: 0x3000n });
    expect(what(locateGpa(plan, BAR0 + 0x1_0800n))).toMatchObject({ kind: 'padding', fileOffset: undefined });
    expect(what(locateGpa(plan, BAR0 + 0x1_ffffn))).toMatchObject({ kind: 'padding' });
    expect(locateGpa(plan, BAR0 + 0x2_0000n)).toBeUndefined();
    expect(locateGpa(plan, BAR0 - 1n)).toBeUndefined();
  });

  it("'hole' on 64 KiB pages: an NVMe register sharing the MSI-X page is forwarded to the device", () => {
    const plan = planBarMappings(qemuNvme, { pageSize: K64, msix: 'hole', barAddresses: { 0: BAR0 } });
    // 0x1000 is the first doorbell (SQ0TDBL) on QEMU's NVMe: the device must see the write.
    expect(what(locateGpa(plan, BAR0 + 0x1000n))).toEqual({ bar: 0, barOffset: 0x1000n, kind: 'device', fileOffset: 0n });
    const doorbell = locateGpa(plan, BAR0 + 0x1000n)!;
    expect(doorbell.backing === 'trapped' && doorbell.range.fileOffset! + (doorbell.barOffset - doorbell.range.barOffset)).toBe(0x1000n);
    expect(what(locateGpa(plan, BAR0 + 0x2010n))).toMatchObject({ kind: 'msix-table', fileOffset: 0x2000n });
    expect(what(locateGpa(plan, BAR0 + 0x3000n))).toMatchObject({ kind: 'msix-pba', fileOffset: 0x3000n });
    expect(what(locateGpa(plan, BAR0 + 0x3ff8n))).toMatchObject({ kind: 'device', fileOffset: 0x3010n });
    expect(what(locateGpa(plan, BAR0 + 0x4000n))).toMatchObject({ kind: 'padding' });
  });

  it('follows a move; ignores BARs without a guest address; takes a list of bars', () => {
    const plan = planBarMappings(qemuE1000e, { pageSize: K4, barAddresses: { 0: 0x1000_0000n, 1: 0x1002_0000n, 3: 0x1004_0000n } });
    expect(locateGpa(plan, 0x1004_0000n)?.bar.index).toBe(3);
    const moved = replan(plan, 3, 0x2000_0000n);
    expect(locateGpa(moved, 0x1004_0000n)).toBeUndefined();
    expect(what(locateGpa(moved.bars, 0x2000_4000n))).toMatchObject({ bar: 3, kind: 'msix-table', fileOffset: 0n });
    expect(locateGpa(planBarMappings(qemuE1000e, { pageSize: K4 }), 0n)).toBeUndefined();
    expect(locateInBar(plan.bars[0]!, -1n)).toBeUndefined();
  });

  it('a suspended BAR: its mapping bytes are device (cause suspended), the rest of the expanded page padding', () => {
    const plan = replan(planBarMappings(qemuNvme, { pageSize: K64, barAddresses: { 0: BAR0 } }), 0, BAR0 + 0x4000n);
    const base = BAR0 + 0x4000n;
    expect(locateGpa(plan, base + 0x1000n)).toMatchObject({
      backing: 'trapped',
      range: { kind: 'device', fileOffset: 0n, cause: 'suspended' },
    });
    expect(locateGpa(plan, base + 0x8000n)).toMatchObject({ backing: 'trapped', range: { kind: 'padding', cause: 'suspended' } });
  });
});

describe('replanBar', () => {
  it('moves one BAR; fast path at aligned addresses; warnings only for an unaligned one', () => {
    const plan = planBarMappings(qemuNvme, { pageSize: K64, barAddresses: { 0: BAR0 } });
    const quick = replanBar(plan.bars[0]!, K64, 0x90_0000_0000n);
    expect(quick.warnings).toEqual([]);
    expect(quick.bar.mappings.map((m) => m.gpa)).toEqual([0x90_0000_0000n]);
    const slow = replanBar(plan.bars[0]!, K64, 0x90_0000_1000n);
    expect(slow.warnings.map((w) => [w.bar, w.code])).toEqual([[0, 'unaligned-guest-address'], [0, 'suspended']]);
    expect(slow.bar.reasons.map((r) => r.code).slice(-2)).toEqual(['unaligned-guest-address', 'suspended']);
    const back = replanBar(slow.bar, K64, BAR0);
    expect(back).toEqual({ bar: plan.bars[0], warnings: [] });
  });

  it('rejects a bad page size or address with PlanError', () => {
    const bar = planBarMappings(qemuNvme, { pageSize: K4 }).bars[0]!;
    expect(() => replanBar(bar, 0x800n, 0n)).toThrow(expect.objectContaining({ code: 'BAD_PAGE_SIZE' }) as Error);
    expect(() => replanBar(bar, K4, -1n)).toThrow(expect.objectContaining({ code: 'BAD_GUEST_ADDRESS', bar: 0 }) as Error);
    expect(() => replanBar(bar, K4, 1n << 64n)).toThrow(PlanError);
    expect(() => replanBar(bar, K4, 4096 as unknown as bigint)).toThrow(PlanError);
  });
});

describe('a table and PBA that overlap (malformed device): the table wins', () => {
  it('overlapping bytes are msix-table, the rest of the PBA msix-pba', () => {
    const device = { table: { offset: 0x100n, size: 0x40n }, pba: { offset: 0x120n, size: 0x40n } };
    const ranges = trappedRanges(
      { regionSize: 0x1000n, guestSize: 0x1000n, msix: { guest: device, device, relocated: false } },
      [],
      [{ span: span(0n, 0x1000n), cause: 'msix-page', why: 'test' }],
      { cause: 'outside-sparse-areas', why: 'test' },
    );
    expect(ranges.map((r) => [r.barOffset, r.size, r.kind, r.fileOffset])).toEqual([
      [0n, 0x100n, 'device', 0n], [0x100n, 0x40n, 'msix-table', 0x100n], [0x140n, 0x20n, 'msix-pba', 0x140n],
      [0x160n, 0xea0n, 'device', 0x160n],
    ]);
    // A PBA that starts first is cut where the table begins.
    const before = { table: { offset: 0x120n, size: 0x40n }, pba: { offset: 0x100n, size: 0x40n } };
    const cut = trappedRanges(
      { regionSize: 0x1000n, guestSize: 0x1000n, msix: { guest: before, device: before, relocated: false } },
      [],
      [],
      { cause: 'no-mmap', why: 'test' },
    );
    expect(cut.map((r) => [r.barOffset, r.size, r.kind])).toEqual([
      [0n, 0x100n, 'device'],
      [0x100n, 0x20n, 'msix-pba'],
      [0x120n, 0x40n, 'msix-table'],
      [0x160n, 0xea0n, 'device'],
    ]);
  });
});

describe('plan JSON carries kinds and codes, and rejects what it cannot type', () => {
  const json = (): { bars: { trapped: Record<string, unknown>[] }[]; warnings: unknown[] } =>
    JSON.parse(JSON.stringify(planToJSON(planBarMappings(qemuNvme, { pageSize: K64, msix: 'hole' })))) as never;

  it('round-trips a plan with warnings, codes and every trapped kind', () => {
    const plan = planBarMappings(qemuNvme, { pageSize: K64, msix: 'hole', barAddresses: { 0: BAR0 + 0x800n } });
    expect(new Set(plan.bars[0]!.trapped.map((t) => t.kind))).toEqual(new Set(['device', 'msix-table', 'msix-pba', 'padding']));
    expect(plan.warnings.length).toBeGreaterThan(0);
    expect(planFromJSON(JSON.parse(JSON.stringify(planToJSON(plan))))).toEqual(plan);
  });

  it.each([
    ['an unknown kind', (j: ReturnType<typeof json>) => { j.bars[0]!.trapped[0]!.kind = 'mmio'; }, /trapped\[0\]\.kind must be one of/],
    [
      'a device range without fileOffset',
      (j: ReturnType<typeof json>) => { delete j.bars[0]!.trapped[0]!.fileOffset; },
      /fileOffset must be present for kind device/,
    ],
    [
      'padding with a fileOffset',
      (j: ReturnType<typeof json>) => { j.bars[0]!.trapped.at(-1)!.fileOffset = '0x0'; },
      /fileOffset must be absent for padding/,
    ],
    ['an unknown cause', (j: ReturnType<typeof json>) => { j.bars[0]!.trapped[0]!.cause = 'because'; }, /cause must be one of/],
    [
      'a warning as a bare string',
      (j: ReturnType<typeof json>) => { j.warnings = ['BAR0: no direct mapping']; },
      /warnings\[0\] must be an object/,
    ],
  ])('rejects %s with PlanError BAD_PLAN_JSON', (_what, spoil, message) => {
    const j = json();
    spoil(j);
    expect(() => planFromJSON(j)).toThrow(message);
    expect(() => planFromJSON(j)).toThrow(expect.objectContaining({ code: 'BAD_PLAN_JSON' }) as Error);
  });
});
