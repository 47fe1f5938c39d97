/**
 * Misuse on the real kernel and /dev/kvm (issue 11): mapping lifetimes that cannot be ended twice, the
 * VM closed before the mapper, memory decode off/on seen by a vCPU, a throwing logger, and an adopted
 * VM whose grant overlaps the VMM's RAM slot. A memfd stands in for the BAR.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BarMapper, MapError } from '../../src/map/index.js';
import { GuestMemoryProbe, KvmVm } from '../../src/kvm/index.js';
import { planBarMappings } from '../../src/plan/index.js';
import { realSyscalls } from '../../src/sys/real-syscalls.js';
import { SystemError } from '../../src/sys/system-error.js';
import { PROT } from '../../src/sys/syscalls.js';
import { describeKvm } from '../helpers/kvm-required.js';
import { MemfdDevice } from '../helpers/memfd-device.js';
import { captureError } from '../helpers/capture-error.js';

const sys = realSyscalls();
const PAGE = BigInt(sys.pageSize());
const BAR_GPA = 0x4000_0000n;
const MOVED_GPA = 0x5000_0000n;
const countMaps = (): number => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('vfio-bars-bar0')).length;

describe('realSyscalls: a mapping ends once (no KVM needed)', () => {
  it('a second munmap throws EINVAL and leaves the mapping that now lives at that address alone', () => {
    const fd = sys.memfdCreate('vfio-bars-lifetime', 0);
    try {
      sys.ftruncate(fd, 4n * PAGE);
      const first = sys.mmap(fd, 0n, 4n * PAGE, PROT.READ | PROT.WRITE);
      sys.munmap(first);
      const second = sys.mmap(fd, 0n, 4n * PAGE, PROT.READ | PROT.WRITE);
      new DataView(second.view!).setUint32(8, 0x1234_5678, true);
      const error = captureError(() => sys.munmap(first));
      expect(error).toBeInstanceOf(SystemError);
      expect(error).toMatchObject({ code: 'EINVAL', syscall: 'munmap' });
      // Had the address been unmapped, this read would be SIGSEGV and kill the test process.
      expect(new DataView(second.view!).getUint32(8, true)).toBe(0x1234_5678);
      // A copy of a live mapping is not the mapping: refused too, the original still works.
      expect(captureError(() => sys.munmap({ ...second }))).toMatchObject({ code: 'EINVAL' });
      expect(captureError(() => sys.munmap(null as never))).toMatchObject({ code: 'EINVAL' });
      expect(new DataView(second.view!).getUint32(8, true)).toBe(0x1234_5678);
      sys.munmap(second);
    } finally {
      sys.close(fd);
    }
  });
});

describeKvm('BarMapper misuse on the real /dev/kvm', () => {
  it('unmapping the mapper\'s exposed host mapping is refused; the guest still reads the BAR', () => {
    using device = new MemfdDevice(PAGE);
    device.writeU32(0x10n, 0xfeed_beef);
    using vm = KvmVm.create();
    using probe = GuestMemoryProbe.create(vm);
    using mapper = new BarMapper(device, vm);
    mapper.map(planBarMappings(device.describe(), { pageSize: PAGE, barAddresses: { 0: BAR_GPA } }));
    const host = mapper.bars.get(0)!.regions[0]!.host;
    expect(captureError(() => sys.munmap(host))).toMatchObject({ code: 'EINVAL' });
    expect(probe.read(BAR_GPA + 0x10n)).toEqual({ kind: 'value', value: 0xfeed_beefn });
  });

  it('VM closed before the mapper: unmap releases the mmaps (the slots died with the VM)', () => {
    using device = new MemfdDevice(4n * PAGE);
    const vm = KvmVm.create();
    const mapper = new BarMapper(device, vm);
    mapper.map(planBarMappings(device.describe(), { pageSize: PAGE, barAddresses: { 0: BAR_GPA } }));
    expect(countMaps()).toBe(1);
    vm.close();
    expect(captureError(() => mapper.move(0, MOVED_GPA))).toMatchObject({ name: 'MapError', code: 'CLOSED' });
    mapper[Symbol.dispose]();
    expect(countMaps()).toBe(0);
    expect(mapper.bars.size).toBe(0);
  });

  it('decode off: the vCPU gets an MMIO exit; a move meanwhile; decode on: it reads the BAR at the new GPA', () => {
    using device = new MemfdDevice(PAGE);
    device.writeU32(0x20n, 0x0bad_f00d);
    using vm = KvmVm.create();
    using probe = GuestMemoryProbe.create(vm);
    using mapper = new BarMapper(device, vm);
    mapper.map(planBarMappings(device.describe(), { pageSize: PAGE, barAddresses: { 0: BAR_GPA } }));
    mapper.setDecode(0, false);
    expect(probe.read(BAR_GPA + 0x20n)).toEqual({ kind: 'mmio', address: BAR_GPA + 0x20n, isWrite: false });
    expect(countMaps()).toBe(1);
    mapper.move(0, MOVED_GPA);
    mapper.setDecode(0, true);
    expect(probe.read(MOVED_GPA + 0x20n)).toEqual({ kind: 'value', value: 0x0bad_f00dn });
    expect(probe.read(BAR_GPA + 0x20n)).toEqual({ kind: 'mmio', address: BAR_GPA + 0x20n, isWrite: false });
  });

  it('a logger that throws changes nothing', () => {
    using device = new MemfdDevice(PAGE);
    device.writeU32(0n, 0x600d_600d);
    using vm = KvmVm.create();
    using probe = GuestMemoryProbe.create(vm);
    const explode = (): never => { throw new Error('logger down'); };
    const mapper = new BarMapper(device, vm, { logger: { debug: explode, info: explode, warn: explode } });
    mapper.map(planBarMappings(device.describe(), { pageSize: PAGE, barAddresses: { 0: BAR_GPA } }));
    mapper.move(0, MOVED_GPA);
    expect(probe.read(MOVED_GPA)).toEqual({ kind: 'value', value: 0x600d_600dn });
    mapper[Symbol.dispose]();
    expect(countMaps()).toBe(0);
    expect(vm.slotCount).toBe(1); // the probe's code page only
  });

  it('adopted VM whose grant overlaps the VMM RAM slot: map fails SLOT_IN_USE, the RAM slot stays, nothing leaks', () => {
    const kvm = sys.open('/dev/kvm', 2);
    const vmFd = sys.ioctl(kvm, 'KVM_CREATE_VM', 0);
    using device = new MemfdDevice(PAGE);
    try {
      // The VMM's RAM: slot 0 at GPA 0, backed by the very memfd the BAR comes from (same HVA size, the worst case).
      const ram = sys.mmap(device.fd, 0n, PAGE, PROT.READ | PROT.WRITE);
      try {
        sys.setUserMemoryRegion(vmFd, { slot: 0, flags: 0, guestPhysAddr: 0n, memorySize: PAGE, userspaceAddr: ram.address });
        const vm = KvmVm.adopt(vmFd, { slots: { first: 0, count: 4 } });
        const mapper = new BarMapper(device, vm);
        const error = captureError(() => mapper.map(planBarMappings(device.describe(), { pageSize: PAGE, barAddresses: { 0: BAR_GPA } })));
        expect(error).toBeInstanceOf(MapError);
        expect(error).toMatchObject({ code: 'SLOT_IN_USE', step: 'kvm-slot' });
        expect(countMaps()).toBe(1); // the VMM's own RAM mapping only
        // Slot 0 is still the VMM's, at GPA 0: an overlap there is EEXIST, the identical call is KVM's no-op.
        expect(
          captureError(
            () => sys.setUserMemoryRegion(vmFd, { slot: 9, flags: 0, guestPhysAddr: 0n, memorySize: PAGE, userspaceAddr: ram.address })
          )
        ).toMatchObject({ code: 'EEXIST' });
        sys.setUserMemoryRegion(vmFd, { slot: 0, flags: 0, guestPhysAddr: 0n, memorySize: PAGE, userspaceAddr: ram.address });
        mapper[Symbol.dispose]();
        vm.close();
      } finally {
        sys.munmap(ram);
      }
    } finally {
      sys.close(vmFd);
      sys.close(kvm);
    }
  });
});
