import { describe, expect, it } from 'vitest';
import { constants } from 'node:os';
import { BarMapper, MapError } from '../../src/map/index.js';
import { KvmVm } from '../../src/kvm/index.js';
import { VfioDevice } from '../../src/vfio/index.js';
import { planBarMappings } from '../../src/plan/index.js';
import { qemuE1000e } from '../helpers/profiles.js';
import { FakeKernel } from '../fake/fake-kernel.js';
import { fakeSysfs } from '../vfio/fixtures.js';

const E = constants.errno;
const BDF = qemuE1000e.bdf;
const ADDRESSES = { 0: 0x1000_0000n, 1: 0x1010_0000n, 3: 0x1020_0000n };
const MOVED = 0x2000_0000n;

/** A device with three MMIO BARs (one relocated MSI-X BAR) in a type1 container, a VM, and a mapper with DMA. */
function world(pageSize = 0x1000) {
  const roots = fakeSysfs(BDF, '3');
  const kernel = new FakeKernel({ pageSize, device: qemuE1000e, devRoot: roots.devRoot, group: '3' });
  const device = VfioDevice.open(BDF, { ...roots, syscalls: kernel, iommu: 'type1' });
  const vm = KvmVm.create({ syscalls: kernel, kvmPath: `${roots.devRoot}/kvm` });
  const mapper = new BarMapper(device, vm, { dmaMap: true });
  const plan = planBarMappings(qemuE1000e, { pageSize, barAddresses: ADDRESSES });
  const baseline = kernel.live();
  return { kernel, device, vm, mapper, plan, baseline };
}

/** The whole life of a mapping: map, move a BAR, move it back, unmap everything. */
function lifecycle(w: ReturnType<typeof world>): void {
  w.mapper.map(w.plan);
  w.mapper.move(0, MOVED);
  w.mapper.move(0, ADDRESSES[0]);
  w.mapper.unmapAll();
}

describe('BarMapper under fault injection (fake kernel)', () => {
  it('maps, moves and unmaps a 3-BAR plan with DMA, leaving nothing behind', () => {
    const w = world();
    w.mapper.map(w.plan);
    const live = w.kernel.live();
    expect(live.mmaps).toBe(3);
    expect(live.slots).toBe(3);
    expect(live.dmaMaps).toBe(3);
    expect(w.kernel.slotsOf(w.vm.fd).map((s) => s.guestPhysAddr).sort()).toEqual([0x1000_0000n, 0x1010_0000n, 0x1020_0000n]);
    w.mapper.move(0, MOVED);
    expect(w.kernel.slotsOf(w.vm.fd).map((s) => s.guestPhysAddr)).toContain(MOVED);
    w.mapper.unmapAll();
    expect(w.kernel.live()).toEqual(w.baseline);
  });

  const errnos = [['EINVAL', E.EINVAL], ['ENOMEM', E.ENOMEM], ['EINTR', E.EINTR]] as const;
  for (const [name, errno] of errnos) {
    it(`every syscall of map/move/unmap failing with ${name} in turn: one typed error, no leaks, a retry succeeds`, () => {
      const reference = world();
      const first = reference.kernel.calls.length;
      lifecycle(reference);
      const calls = reference.kernel.calls.slice(first);
      expect(calls.length).toBeGreaterThan(20);

      for (const call of calls) {
        const w = world();
        w.kernel.failAt(call.index, errno);
        let failure: unknown;
        try {
          lifecycle(w);
        } catch (error) {
          failure = error;
        }
        expect(failure, `call ${call.index} ${call.name}`).toBeInstanceOf(MapError);
        expect((failure as MapError).code, `call ${call.index} ${call.name}`).toBe(name);
        // Finish the job without faults: whatever state the failure left must be completable...
        w.kernel.clearFaults();
        for (const bar of w.mapper.bars.keys()) w.mapper.unmap(bar);
        expect(w.kernel.live(), `leak after failing call ${call.index} ${call.name}`).toEqual(w.baseline);
        // ...and the same work succeeds on retry.
        lifecycle(w);
        expect(w.kernel.live()).toEqual(w.baseline);
      }
    });
  }

  it('a failed map names the step, BAR, GPA and errno, and leaves the VM as before', () => {
    const w = world();
    w.kernel.failWhen((c) => c.name === 'KVM_SET_USER_MEMORY_REGION' && c.detail.includes('gpa 10100000'), E.EEXIST, true);
    let error: unknown;
    try {
      w.mapper.map(w.plan);
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ step: 'kvm-slot', bar: 1, gpa: 0x1010_0000n, code: 'EEXIST', errno: E.EEXIST });
    expect((error as Error).message).toContain('kvm-slot failed for BAR1 at gpa 0x10100000');
    expect(w.kernel.live()).toEqual(w.baseline);
    expect(w.vm.slotCount).toBe(0);
  });

  it('moving a sub-page BAR to an unaligned GPA downgrades it to trapped; moving back maps it again', () => {
    const w = world(0x1_0000);
    w.mapper.map(w.plan);
    const before = w.kernel.live();
    const down = w.mapper.move(3, 0x3000_4000n);
    expect(down.state).toBe('trapped');
    expect(down.reason).toContain('not page-aligned');
    expect(w.kernel.live().slots).toBe(before.slots - 1);
    expect(w.kernel.live().mmaps).toBe(before.mmaps);
    const up = w.mapper.move(3, 0x3000_0000n);
    expect(up.state).toBe('direct');
    expect(w.kernel.live()).toEqual(before);
    expect(w.kernel.slotsOf(w.vm.fd).map((s) => s.guestPhysAddr)).toContain(0x3000_0000n);
    w.mapper.unmapAll();
    expect(w.kernel.live()).toEqual(w.baseline);
  });
});

describe('BarMapper logging', () => {
  it('reports each decision that changes the guest to the injected logger', () => {
    const roots = fakeSysfs(BDF, '3');
    const kernel = new FakeKernel({ pageSize: 0x1_0000, device: qemuE1000e, devRoot: roots.devRoot, group: '3' });
    using device = VfioDevice.open(BDF, { ...roots, syscalls: kernel, iommu: 'type1' });
    using vm = KvmVm.create({ syscalls: kernel, kvmPath: `${roots.devRoot}/kvm` });
    const lines: string[] = [];
    const logger = {
      debug: (m: string) => lines.push(`debug ${m}`),
      info: (m: string) => lines.push(`info ${m}`),
      warn: (m: string) => lines.push(`warn ${m}`),
    };
    using mapper = new BarMapper(device, vm, { logger });
    mapper.map(planBarMappings(qemuE1000e, { pageSize: 0x1_0000, barAddresses: ADDRESSES }));
    mapper.move(3, 0x3000_4000n);
    mapper.move(3, 0x3000_0000n);
    expect(lines).toContain(
      'info BAR3: mapped 0x0+0x10000 at gpa 0x10200000: '
        + 'expanded 0x4000 -> 0x10000: sub-page BAR, page-aligned (kernel reserves the rest of the page)',
    );
    expect(lines.some((l) => l.startsWith('info BAR3: MSI-X table 0x0+0x50, PBA 0x2000+0x8 relocated'))).toBe(true);
    expect(lines.some((l) => l.startsWith('warn BAR3: moved to 0x30004000, now trapped'))).toBe(true);
    expect(lines).toContain('info BAR3: mapped again at 0x30000000');
    expect(lines.some((l) => l.startsWith('debug BAR3: trapped 0x10000+0x50: relocated MSI-X'))).toBe(true);
  });
});
