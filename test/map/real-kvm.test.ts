import { readFileSync, readdirSync } from 'node:fs';
import { expect, it } from 'vitest';
import { BarMapper } from '../../src/map/index.js';
import { GuestMemoryProbe, KvmVm } from '../../src/kvm/index.js';
import { planBarMappings } from '../../src/plan/index.js';
import { realSyscalls } from '../../src/sys/real-syscalls.js';
import { describeKvm } from '../helpers/kvm-required.js';
import { MemfdDevice } from '../helpers/memfd-device.js';

const PAGE = BigInt(realSyscalls().pageSize());
const BAR_GPA = 0x4000_0000n;
const MOVED_GPA = 0x5000_0000n;

const openFds = (): number => readdirSync('/proc/self/fd').length;
/** VMAs of our stand-in BAR in /proc/self/maps: constant across moves means no mmap leaked or was redone. */
const countMaps = (): number => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('vfio-bars-bar0')).length;

describeKvm('BarMapper on the real /dev/kvm (memfd stands in for the BAR)', () => {
  it('a vCPU reads the BAR through the slot, again after a move, and gets an MMIO exit after unmap', () => {
    using device = new MemfdDevice(4n * PAGE);
    device.writeU32(0x10n, 0xfeed_beef);
    device.writeU32(3n * PAGE + 8n, 0x0bad_cafe);
    using vm = KvmVm.create();
    using probe = GuestMemoryProbe.create(vm);
    const mapper = new BarMapper(device, vm);
    const [bar] = mapper.map(planBarMappings(device.describe(), { pageSize: PAGE, barAddresses: { 0: BAR_GPA } }));
    expect(bar!.regions).toHaveLength(1);
    expect(probe.read(BAR_GPA + 0x10n)).toEqual({ kind: 'value', value: 0xfeed_beefn });
    expect(probe.read(BAR_GPA + 3n * PAGE + 8n)).toEqual({ kind: 'value', value: 0x0bad_cafen });

    expect(mapper.move(0, MOVED_GPA).state).toBe('direct');
    expect(probe.read(MOVED_GPA + 0x10n)).toEqual({ kind: 'value', value: 0xfeed_beefn });
    expect(probe.read(BAR_GPA + 0x10n)).toEqual({ kind: 'mmio', address: BAR_GPA + 0x10n, isWrite: false });

    // The mapping's view is the same memory the guest reads.
    new DataView(bar!.regions[0]!.host.view!).setUint32(0x20, 0x1234_5678, true);
    expect(probe.read(MOVED_GPA + 0x20n)).toEqual({ kind: 'value', value: 0x1234_5678n });

    const view = bar!.regions[0]!.host.view!;
    mapper.unmapAll();
    expect(probe.read(MOVED_GPA + 0x10n)).toEqual({ kind: 'mmio', address: MOVED_GPA + 0x10n, isWrite: false });
    expect(vm.slotCount).toBe(1); // only the probe's code page
    expect(() => new DataView(view).getUint32(0)).toThrow(TypeError); // detached, not a crash
  });

  it('sub-page BAR at the host page size: a 0x800-byte area is expanded to one page and reads through', () => {
    using device = new MemfdDevice(0x800n);
    device.writeU32(0x7fcn, 0x5a5a_a5a5);
    using vm = KvmVm.create();
    using probe = GuestMemoryProbe.create(vm);
    const plan = planBarMappings(device.describe(), { pageSize: PAGE, barAddresses: { 0: BAR_GPA } });
    expect(plan.bars[0]!.mappings).toMatchObject([{
      size: PAGE,
      reason: `expanded 0x800 -> 0x${PAGE.toString(16)}: sub-page BAR, page-aligned (kernel reserves the rest of the page)`,
    }]);
    using mapper = new BarMapper(device, vm);
    mapper.map(plan);
    expect(vm.slot(1)).toMatchObject({ memorySize: PAGE, guestPhysAddr: BAR_GPA });
    expect(probe.read(BAR_GPA + 0x7fcn)).toEqual({ kind: 'value', value: 0x5a5a_a5a5n });
  });

  it('100 000 move cycles keep slot count, fd count and mapping count constant', () => {
    using device = new MemfdDevice(PAGE);
    using vm = KvmVm.create();
    using mapper = new BarMapper(device, vm);
    mapper.map(planBarMappings(device.describe(), { pageSize: PAGE, barAddresses: { 0: BAR_GPA } }));
    const before = { slots: vm.slotCount, fds: openFds(), maps: countMaps() };
    const started = performance.now();
    for (let i = 0; i < 100_000; i++) mapper.move(0, i % 2 === 0 ? MOVED_GPA : BAR_GPA);
    const perMoveUs = ((performance.now() - started) * 1000) / 100_000;
    expect({ slots: vm.slotCount, fds: openFds(), maps: countMaps() }).toEqual(before);
    expect(mapper.bars.get(0)!.guestAddress).toBe(BAR_GPA);
    console.log(`100 000 BAR moves: ${perMoveUs.toFixed(2)} µs per move`);
  }, 120_000);
});

