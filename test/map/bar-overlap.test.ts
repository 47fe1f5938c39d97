/**
 * Overlapping BAR placements (issue 14) on the fake kernel: a BAR moved over a sibling, over a foreign
 * slot or a foreign DMA map is parked (no slots, typed reason, one warning), never an error; parked BARs
 * get their slots back when the overlap ends; every syscall failed in turn leaks nothing and leaves the
 * mapper's view equal to the kernel's.
 */
import { describe, expect, it } from 'vitest';
import { constants } from 'node:os';
import { BarMapper, MapError, type MappedBar } from '../../src/map/index.js';
import { KvmVm } from '../../src/kvm/index.js';
import { VfioDevice } from '../../src/vfio/index.js';
import { planBarMappings, type MappingPlan } from '../../src/plan/index.js';
import { qemuE1000e } from '../helpers/profiles.js';
import { FakeKernel } from '../fake/fake-kernel.js';
import { fakeSysfs } from '../vfio/fixtures.js';
import { captureError } from '../helpers/capture-error.js';

const E = constants.errno;
const BDF = qemuE1000e.bdf;
/** e1000e on 4 KiB pages: BAR0 and BAR1 are 128 KiB, BAR3 (MSI-X relocated) 32 KiB with 16 KiB mapped. */
const ADDRESSES = { 0: 0x1000_0000n, 1: 0x1010_0000n, 3: 0x1020_0000n };
const ROOTS = fakeSysfs(BDF, '3');
/** A page-aligned host address no mapping uses: the fake only checks alignment for a foreign slot. */
const FOREIGN_HVA = 0x7e00_0000_0000n;

interface World {
  kernel: FakeKernel;
  device: VfioDevice;
  vm: KvmVm;
  mapper: BarMapper;
  plan: MappingPlan;
  lines: string[];
  baseline: ReturnType<FakeKernel['live']>;
}

function world(): World {
  const kernel = new FakeKernel({ pageSize: 0x1000, device: qemuE1000e, devRoot: ROOTS.devRoot, group: '3' });
  const device = VfioDevice.open(BDF, { ...ROOTS, syscalls: kernel, iommu: 'type1' });
  const vm = KvmVm.create({ syscalls: kernel, kvmPath: `${ROOTS.devRoot}/kvm` });
  const lines: string[] = [];
  const logger = { debug: () => undefined, info: (m: string) => lines.push(`info ${m}`), warn: (m: string) => lines.push(`warn ${m}`) };
  const mapper = new BarMapper(device, vm, { dmaMap: true, logger });
  const plan = planBarMappings(qemuE1000e, { pageSize: 0x1000, barAddresses: ADDRESSES });
  return { kernel, device, vm, mapper, plan, lines, baseline: kernel.live() };
}

function closeAll(w: World): void {
  w.mapper[Symbol.dispose]();
  w.vm.close();
  w.device.close();
}

function bar(w: World, index: number): MappedBar {
  return w.mapper.bars.get(index)!;
}

/** The GPAs of the VM's slots, sorted. */
function slotGpas(w: World): bigint[] {
  return w.kernel.slotsOf(w.vm.fd).map((s) => s.guestPhysAddr).sort((a, b) => (a < b ? -1 : 1));
}

/**
 * The mapper's view equals the kernel's: a BAR that decodes and is not parked has a slot (and a DMA map)
 * per direct mapping, at its planned GPA; every other BAR has none; BARs that hold their ranges never
 * overlap; nothing else is in the VM but `foreign` slots.
 */
function expectConsistent(w: World, foreign = 0, where = ''): void {
  const slots = new Map(w.kernel.slotsOf(w.vm.fd).map((s) => [s.slot, s]));
  let ours = 0;
  let dma = 0;
  const holders: MappedBar[] = [];
  for (const b of w.mapper.bars.values()) {
    const attached = b.decode && !b.parked && b.planned.mappings.length > 0;
    if (b.decode && !b.parked) holders.push(b);
    if (b.parked) expect(b.state, where).toBe('trapped');
    for (const region of b.regions) {
      expect(region.slot !== undefined, `${where} BAR${b.index} slot`).toBe(attached);
      expect(region.iova !== undefined, `${where} BAR${b.index} DMA map`).toBe(attached);
      if (region.slot === undefined) continue;
      ours++;
      dma++;
      expect(slots.get(region.slot)?.guestPhysAddr, `${where} BAR${b.index} slot gpa`).toBe(region.mapping.gpa);
    }
    if (attached) expect(b.regions.length, `${where} BAR${b.index} regions`).toBe(b.planned.mappings.length);
  }
  expect(slots.size, `${where} slots in the VM`).toBe(ours + foreign);
  expect(w.kernel.live().dmaMaps, `${where} DMA maps`).toBe(dma);
  for (const a of holders) {
    for (const b of holders) {
      if (a === b) continue;
      const apart = a.guestAddress! + a.planned.guestSize <= b.guestAddress! || b.guestAddress! + b.planned.guestSize <= a.guestAddress!;
      expect(apart, `${where} BAR${a.index} and BAR${b.index} both hold an overlapping range`).toBe(true);
    }
  }
}

describe('BarMapper: a BAR moved over a sibling BAR is parked', () => {
  it('parks the newcomer (no slot, no DMA map, mmaps kept), keeps the sibling, warns once, and restores it when moved away', () => {
    const w = world();
    w.mapper.map(w.plan);
    const mapped = w.kernel.live();
    const result = w.mapper.move(1, ADDRESSES[0]);
    expect(result).toMatchObject({ state: 'trapped', parked: { code: 'OVERLAPS_BAR', bar: 0 } });
    expect(result.reason).toContain('overlaps BAR0');
    expect(bar(w, 1)).toMatchObject({
      state: 'trapped', decode: true, guestAddress: ADDRESSES[0], parked: { code: 'OVERLAPS_BAR', bar: 0 },
    });
    expect(w.mapper.parking(1)).toEqual(bar(w, 1).parked);
    expect(w.mapper.parking(0)).toBeUndefined();
    expect(bar(w, 0).state).toBe('direct');
    expect(bar(w, 1).regions[0]!.slot).toBeUndefined();
    expect(w.kernel.live()).toEqual({ ...mapped, slots: mapped.slots - 1, dmaMaps: mapped.dmaMaps - 1 });
    expect(slotGpas(w)).toEqual([ADDRESSES[0], ADDRESSES[3]]);
    expectConsistent(w);
    expect(w.mapper.warnings.filter((x) => x.code === 'OVERLAPS_BAR')).toEqual([
      { bar: 1, code: 'OVERLAPS_BAR', message: result.reason },
    ]);
    expect(w.lines.filter((l) => l.startsWith('warn BAR1'))).toEqual([`warn ${result.reason}`]);

    const back = w.mapper.move(1, 0x2000_0000n);
    expect(back).toEqual({ state: 'direct', reason: 'BAR1: mapped again at 0x20000000' });
    expect(bar(w, 1).parked).toBeUndefined();
    expect(w.kernel.live()).toEqual(mapped);
    expect(slotGpas(w)).toEqual([ADDRESSES[0], ADDRESSES[3], 0x2000_0000n]);
    expectConsistent(w);
    closeAll(w);
    expect(w.kernel.live()).toEqual({ fds: 0, mmaps: 0, slots: 0, dmaMaps: 0, kvmFiles: 0 });
  });

  it('a partial overlap parks too; the sibling moving away hands the range over (the parked BAR gets its slot back)', () => {
    const w = world();
    w.mapper.map(w.plan);
    // BAR3 (32 KiB) inside BAR0 (128 KiB): a naturally aligned placement a guest can program.
    expect(w.mapper.move(3, ADDRESSES[0] + 0x8000n).parked).toMatchObject({ code: 'OVERLAPS_BAR', bar: 0 });
    // BAR0 moves away: BAR3 is retried and gets its slot where it is; BAR0 has its slot at the new place.
    expect(w.mapper.move(0, 0x3000_0000n).state).toBe('direct');
    expect(bar(w, 3)).toMatchObject({ state: 'direct' });
    expect(bar(w, 3).parked).toBeUndefined();
    expect(slotGpas(w)).toEqual([ADDRESSES[0] + 0x8000n, ADDRESSES[1], 0x3000_0000n]);
    expect(w.lines).toContain(`info BAR3: no longer parked (OVERLAPS_BAR): slots restored at ${hexOf(ADDRESSES[0] + 0x8000n)}`);
    expectConsistent(w);
    // Now BAR0 comes back over BAR3: BAR3 holds the range, BAR0 (the one moving) is parked.
    expect(w.mapper.move(0, ADDRESSES[0]).parked).toMatchObject({ code: 'OVERLAPS_BAR', bar: 3 });
    expect(bar(w, 3).state).toBe('direct');
    expectConsistent(w);
    closeAll(w);
  });

  it('repeated moves: staying parked over the same sibling warns once; over another sibling is a new warning', () => {
    const w = world();
    w.mapper.map(w.plan);
    w.mapper.move(3, ADDRESSES[0]);
    w.mapper.move(3, ADDRESSES[0] + 0x8000n);
    w.mapper.move(3, ADDRESSES[0] + 0x1_0000n);
    expect(w.mapper.warnings.map((x) => `${x.bar} ${x.code}`)).toEqual(['3 OVERLAPS_BAR']);
    expect(w.lines).toContain(`info BAR3: moved to ${hexOf(ADDRESSES[0] + 0x1_0000n)}, still parked`);
    expect(w.mapper.move(3, ADDRESSES[1]).parked).toMatchObject({ code: 'OVERLAPS_BAR', bar: 1 });
    expect(w.mapper.warnings.map((x) => `${x.bar} ${x.code}`)).toEqual(['3 OVERLAPS_BAR', '3 OVERLAPS_BAR']);
    for (let i = 0; i < 50; i++) {
      w.mapper.move(3, i % 2 === 0 ? ADDRESSES[1] : 0x4000_0000n);
      expectConsistent(w, 0, `cycle ${i}`);
    }
    expect(bar(w, 3).state).toBe('direct');
    expect(w.kernel.live().mmaps).toBe(3);
    closeAll(w);
    expect(w.kernel.live().mmaps).toBe(0);
  });

  it('two BARs parked over one holder: when it leaves, the one parked first gets the range, the other stays parked under it', () => {
    const w = world();
    w.mapper.map(w.plan);
    w.mapper.move(3, ADDRESSES[0]); // parked first
    w.mapper.move(1, ADDRESSES[0]); // parked second
    w.mapper.move(0, 0x3000_0000n);
    expect(bar(w, 3)).toMatchObject({ state: 'direct' });
    expect(bar(w, 3).parked).toBeUndefined();
    expect(bar(w, 1).parked).toMatchObject({ code: 'OVERLAPS_BAR', bar: 3 });
    expectConsistent(w);
    expect(w.mapper.retryParked()).toBe(0);
    w.mapper.unmap(3); // the holder goes: BAR1 gets its slot
    expect(bar(w, 1)).toMatchObject({ state: 'direct' });
    expect(bar(w, 1).parked).toBeUndefined();
    expectConsistent(w);
    closeAll(w);
  });
});

describe('BarMapper: decode changes and parking', () => {
  it('decode off ends the parking; on again re-decides; the holder turning decode off hands the range over', () => {
    const w = world();
    w.mapper.map(w.plan);
    w.mapper.move(1, ADDRESSES[0]);
    w.mapper.setDecode(1, false);
    expect(bar(w, 1)).toMatchObject({ state: 'direct', decode: false });
    expect(bar(w, 1).parked).toBeUndefined();
    expectConsistent(w);
    w.mapper.setDecode(1, true);
    expect(bar(w, 1).parked).toMatchObject({ code: 'OVERLAPS_BAR', bar: 0 });
    expectConsistent(w);
    // The holder stops decoding: the parked BAR takes the range; when the holder decodes again it is parked.
    w.mapper.setDecode(0, false);
    expect(bar(w, 1)).toMatchObject({ state: 'direct' });
    expect(bar(w, 1).parked).toBeUndefined();
    expect(slotGpas(w)).toEqual([ADDRESSES[0], ADDRESSES[3]]);
    expectConsistent(w);
    w.mapper.setDecode(0, true);
    expect(bar(w, 0).parked).toMatchObject({ code: 'OVERLAPS_BAR', bar: 1 });
    expectConsistent(w);
    // A move while decode is off never parks (nothing is decoded there yet).
    w.mapper.setDecode(3, false);
    expect(w.mapper.move(3, ADDRESSES[0]).parked).toBeUndefined();
    w.mapper.setDecode(3, true);
    expect(bar(w, 3).parked).toMatchObject({ code: 'OVERLAPS_BAR', bar: 1 });
    expectConsistent(w);
    closeAll(w);
  });

  it('an unaligned (trapped) BAR holds its range too; a parked one reports its parking, then trapped again when freed', () => {
    const w = world();
    w.mapper.map(w.plan);
    expect(w.mapper.move(3, 0x3000_0800n).state).toBe('trapped'); // not page-aligned: suspended
    expect(bar(w, 3).parked).toBeUndefined();
    expect(w.mapper.move(0, 0x3000_0000n).parked).toMatchObject({ code: 'OVERLAPS_BAR', bar: 3 });
    w.mapper.move(3, ADDRESSES[3]);
    expect(bar(w, 0)).toMatchObject({ state: 'direct' });
    expect(bar(w, 0).parked).toBeUndefined();
    expectConsistent(w);
    w.mapper.move(0, ADDRESSES[0]);
    w.mapper.move(3, ADDRESSES[0] + 0x800n); // unaligned and over BAR0
    expect(bar(w, 3)).toMatchObject({ state: 'trapped', parked: { code: 'OVERLAPS_BAR', bar: 0 } });
    w.mapper.move(0, 0x3000_0000n);
    expect(bar(w, 3)).toMatchObject({ state: 'trapped' });
    expect(bar(w, 3).parked).toBeUndefined(); // still unaligned: suspended
    expectConsistent(w);
    closeAll(w);
  });
});

describe('BarMapper: a BAR moved over a foreign slot or DMA map is parked', () => {
  it('KVM EEXIST (a VMM slot) parks with OVERLAPS_SLOT; retryParked restores it once the slot is gone', () => {
    const w = world();
    w.mapper.map(w.plan);
    const foreign = w.vm.addSlot({ guestPhysAddr: 0x3000_0000n, memorySize: 0x1000n, userspaceAddr: FOREIGN_HVA });
    const result = w.mapper.move(0, 0x3000_0000n);
    expect(result).toMatchObject({ state: 'trapped', parked: { code: 'OVERLAPS_SLOT' } });
    expect(result.parked!.bar).toBeUndefined();
    expect(result.reason).toContain('EEXIST');
    expectConsistent(w, 1);
    expect(w.mapper.retryParked()).toBe(0);
    // A sibling's move retries it too: still refused, and not warned again.
    w.mapper.move(1, 0x5000_0000n);
    expect(w.mapper.warnings.filter((x) => x.code === 'OVERLAPS_SLOT')).toHaveLength(1);
    w.vm.removeSlot(foreign);
    expect(w.mapper.retryParked()).toBe(1);
    expect(bar(w, 0)).toMatchObject({ state: 'direct', guestAddress: 0x3000_0000n });
    expect(bar(w, 0).parked).toBeUndefined();
    expectConsistent(w);
    closeAll(w);
    expect(w.kernel.live()).toEqual({ fds: 0, mmaps: 0, slots: 0, dmaMaps: 0, kvmFiles: 0 });
  });

  it('the slot refused when decode turns on: parked, and the BAR itself is restored by its next move', () => {
    const w = world();
    w.mapper.map(w.plan);
    w.mapper.setDecode(3, false);
    w.mapper.move(3, 0x3000_0000n);
    w.vm.addSlot({ guestPhysAddr: 0x3000_4000n - 0x1000n, memorySize: 0x1000n, userspaceAddr: FOREIGN_HVA });
    w.mapper.setDecode(3, true);
    expect(bar(w, 3).parked).toMatchObject({ code: 'OVERLAPS_SLOT' });
    expectConsistent(w, 1);
    expect(w.mapper.move(3, 0x3001_0000n)).toMatchObject({ state: 'direct', reason: 'BAR3: mapped again at 0x30010000' });
    expectConsistent(w, 1);
    closeAll(w);
  });

  it('IOMMU EEXIST (the IOVA is DMA-mapped already) parks with OVERLAPS_IOVA, the slot it had added removed', () => {
    const w = world();
    w.mapper.map(w.plan);
    w.device.dma!.mapDma(0x3000_0000n, FOREIGN_HVA, 0x1000n, 'read-write');
    expect(w.mapper.move(1, 0x3000_0000n).parked).toMatchObject({ code: 'OVERLAPS_IOVA' });
    expect(slotGpas(w)).toEqual([ADDRESSES[0], ADDRESSES[3]]);
    expect(w.kernel.live().dmaMaps).toBe(3); // ours for BAR0 and BAR3, and the foreign one
    w.device.dma!.unmapDma(0x3000_0000n, 0x1000n);
    expect(w.mapper.retryParked()).toBe(1);
    expectConsistent(w);
    closeAll(w);
  });

  it('map() is the VMM\'s own placement: an overlap with a decoding BAR mapped earlier is OVERLAPS_BAR, with a slot EEXIST', () => {
    const w = world();
    w.mapper.map({ ...w.plan, bars: w.plan.bars.filter((b) => b.index === 0) });
    const over = planBarMappings(qemuE1000e, { pageSize: 0x1000, barAddresses: { 0: 0x5000_0000n, 1: ADDRESSES[0] } });
    const error = captureError(() => w.mapper.map({ ...over, bars: over.bars.filter((b) => b.index === 1) }));
    expect(error).toBeInstanceOf(MapError);
    expect(error).toMatchObject({ code: 'OVERLAPS_BAR', step: 'validate', bar: 1 });
    w.vm.addSlot({ guestPhysAddr: ADDRESSES[3], memorySize: 0x1000n, userspaceAddr: FOREIGN_HVA });
    expect(captureError(() => w.mapper.map({ ...w.plan, bars: w.plan.bars.filter((b) => b.index === 3) })))
      .toMatchObject({ code: 'EEXIST', step: 'kvm-slot', bar: 3 });
    expectConsistent(w, 1);
    closeAll(w);
  });
});

describe('BarMapper overlaps under fault injection', () => {
  /**
   * Parks over a sibling, hands the range over (a retry), decode off and on while parked, parks over a
   * foreign slot and restores: every path that parks, unparks or retries (unmap failures are misuse.test.ts's).
   */
  function scenario(w: World): void {
    w.mapper.map(w.plan);
    w.mapper.move(1, ADDRESSES[0]);
    w.mapper.move(0, 0x3000_0000n); // BAR1 retried: gets the range
    w.mapper.setDecode(1, false);
    w.mapper.move(0, ADDRESSES[0]);
    w.mapper.setDecode(1, true); // BAR1 parked under BAR0
    w.mapper.setDecode(0, false); // BAR1 retried
    w.mapper.setDecode(0, true); // BAR0 parked under BAR1
    w.mapper.move(1, ADDRESSES[1]); // BAR0 retried
    w.mapper.move(3, 0x6000_0000n); // over the foreign slot
    w.mapper.move(3, ADDRESSES[3]);
  }

  function withForeign(w: World): number {
    return w.vm.addSlot({ guestPhysAddr: 0x6000_0000n, memorySize: 0x1000n, userspaceAddr: FOREIGN_HVA });
  }

  const errnos = [['EINVAL', E.EINVAL], ['ENOMEM', E.ENOMEM], ['EEXIST', E.EEXIST]] as const;
  for (const [name, errno] of errnos) {
    it(`every syscall failing with ${name} in turn: a typed error or a parked BAR, the mapper equal to the kernel, no leaks`, () => {
      const reference = world();
      withForeign(reference);
      const first = reference.kernel.calls.length;
      scenario(reference);
      const calls = reference.kernel.calls.slice(first);
      expect(calls.length).toBeGreaterThan(30);
      let thrown = 0;
      let retryWarnings = 0;
      for (const call of calls) {
        const w = world();
        const foreign = withForeign(w);
        w.kernel.failAt(call.index, errno);
        const where = `call ${call.index} ${call.name} ${call.detail}`;
        try {
          scenario(w);
        } catch (error) {
          thrown++;
          expect(error, where).toBeInstanceOf(MapError);
          expect((error as MapError).rollbackErrors, where).toEqual([]);
        }
        // A failed retry is no error of the call that triggered it: the BAR stays parked, one warning says why.
        retryWarnings += w.mapper.warnings.filter((x) => x.code === 'RETRY_FAILED').length;
        expectConsistent(w, 1, where);
        w.kernel.clearFaults();
        w.mapper.unmapAll();
        w.vm.removeSlot(foreign);
        expect(w.kernel.live(), `leak after failing ${where}`).toEqual(w.baseline);
        withForeign(w);
        scenario(w);
        closeAll(w);
        expect(w.kernel.live()).toEqual({ fds: 0, mmaps: 0, slots: 0, dmaMaps: 0, kvmFiles: 0 });
      }
      expect(thrown).toBeGreaterThan(0);
      if (name !== 'EEXIST') expect(retryWarnings).toBeGreaterThan(0);
    });
  }
});

function hexOf(value: bigint): string {
  return `0x${value.toString(16)}`;
}
